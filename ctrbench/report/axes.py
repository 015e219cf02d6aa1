"""Chart axes: a data range with round ticks, linear (round in a unit such as MiB, or whole numbers), log (powers of
a base) or byte-sized (log over a wide spread); ``Axis.fraction`` maps a value to [0, 1] of the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# A wider spread than this (max / min) is drawn on a log axis, or the small values pile up at zero.
LOG_SCALE_RATIO = 10.0


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    ticks: tuple[float, ...]
    log: bool = False

    def fraction(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def tick_label(self, value: float) -> str:
        """Just enough decimals that neighbouring ticks read differently (0.775, 0.780; 1, 2, 3)."""
        step = self.ticks[1] - self.ticks[0] if len(self.ticks) > 1 else 1.0
        return f"{value:.{max(0, math.ceil(-math.log10(step) - 1e-9))}f}"


def nice_step(span: float, target_ticks: int) -> float:
    raw = span / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude


def linear_axis(
    values: Sequence[float], *, target_ticks: int = 5, unit: float = 1.0, integer: bool = False,
    within: tuple[float, float] | None = None,
) -> Axis:
    """Axis over ``values`` with round ticks; ``unit`` makes ticks round in that unit (e.g. MiB); ``within`` keeps
    the axis (its padding and rounding) inside a quantity's own range, e.g. (0, 1) for an AUC."""
    lo, hi = min(values) / unit, max(values) / unit
    if integer:
        # counts such as epochs: half a step of room and whole-number ticks, so no "epoch 0"
        lo, hi = lo - 0.5, hi + 0.5
        step = max(1.0, nice_step(hi - lo, target_ticks))
        first, last = math.ceil(lo / step), math.floor(hi / step)
        return Axis(lo * unit, hi * unit, tuple(i * step * unit for i in range(first, last + 1)))
    if hi == lo:  # one value or all equal: give it some room
        pad = abs(lo) * 0.05 or 1.0
    else:
        pad = (hi - lo) * 0.08  # keep points off the frame
    lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, target_ticks)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if within is not None:
        lo, hi = max(lo, within[0] / unit), min(hi, within[1] / unit)
    count = round((hi - lo) / step)
    ticks = tuple((lo + i * step) * unit for i in range(count + 1))
    return Axis(lo * unit, hi * unit, ticks)


def log_axis(values: Sequence[float], *, base: int = 10, max_ticks: int = 7) -> Axis:
    """Log axis with ticks at powers of ``base`` (2 suits bytes: 64 MiB, 128 MiB, ...)."""
    lo_exp = math.floor(math.log(min(values), base))
    hi_exp = math.ceil(math.log(max(values), base))
    if hi_exp == lo_exp:
        hi_exp += 1
    stride = max(1, math.ceil((hi_exp - lo_exp) / (max_ticks - 1)))
    ticks = tuple(float(base**e) for e in range(lo_exp, hi_exp + 1, stride))
    return Axis(float(base**lo_exp), float(base**hi_exp), ticks, log=True)


def wide(values: Sequence[float]) -> bool:
    """Positive values spread over more than ``LOG_SCALE_RATIO``: a log axis shows them."""
    return min(values) > 0 and max(values) / min(values) >= LOG_SCALE_RATIO


def spread_axis(values: Sequence[float]) -> Axis:
    """Log (powers of ten) over a wide spread, else linear."""
    return log_axis(values) if wide(values) else linear_axis(values)


def byte_axis(values: Sequence[float]) -> Axis:
    """Axis for byte counts: log (powers of two) over a wide spread, else round in KiB/MiB/GiB."""
    if wide(values):
        return log_axis(values, base=2)
    unit = 1024 ** max(0, min(4, int(math.log(max(max(values), 1), 1024))))
    return linear_axis(values, unit=unit)


def count_axis(largest: int, target_ticks: int = 4) -> Axis:
    """0 .. a round number above ``largest`` (room for labels over the tallest bar), whole-number ticks."""
    step = max(1.0, nice_step(max(largest, 1), target_ticks))
    top = max(1, math.ceil(largest * 1.15 / step)) * step
    return Axis(0.0, top, tuple(i * step for i in range(round(top / step) + 1)))
