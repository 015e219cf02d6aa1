"""How the report writes numbers: metrics, bytes, counts, rates and durations ("n/a" for a missing value)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

NOT_AVAILABLE = "n/a"


def finite(value: Any) -> float | None:
    """A number to compare and format, or None for absent, null, NaN and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def format_metric(value: float | None, digits: int = 4) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _scaled(value: float, step: float, units: Sequence[str]) -> str:
    index = 0
    while abs(value) >= step and index < len(units) - 1:
        value /= step
        index += 1
    if index == 0:
        return f"{value:.0f} {units[0]}".rstrip()
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {units[index]}"


def format_bytes(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else _scaled(value, 1024, ("B", "KiB", "MiB", "GiB", "TiB"))


def format_count(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else _scaled(value, 1000, ("", "K", "M", "B"))


def format_rate(value: float | None) -> str:
    if value is None:
        return NOT_AVAILABLE
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_AVAILABLE
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_difference(value: float) -> str:
    return f"{round(value, 4) + 0.0:+.4f}"  # + 0.0: no "-0.0000"
