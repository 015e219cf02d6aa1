"""Avazu's ``YYMMDDHH`` hour stamps and the fields derived from them (formats avazu and bars_csv).

As FuxiCTR's Avazu_x4 preprocessing derives them (``convert_hour``, ``convert_weekday``, ``convert_weekend``)::

    hour    = HH                                  (0..23, the hour of day)
    weekday = day of week of 20YY-MM-DD, %w style (0 = Sunday .. 6 = Saturday)
    weekend = 1 if weekday in {0, 6} else 0
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ctrbench.data.fields import binary_views, parse_int64

DERIVED_KINDS = {"hour_of_day": "hour", "weekday": "weekday", "weekend": "weekend"}  # option value -> field
STAMP_PROBLEM = "is not a YYMMDDHH hour (a real date, hour 00-23)"


def parse_stamps(arr: pa.Array) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """``YYMMDDHH`` -> ({hour, weekday, weekend: int64}, int64 YYMMDDHH, bad): bad unless 8 digits naming a real
    date of 2000-2099 and an hour 0..23."""
    values, missing, bad = parse_int64(arr)
    bad |= missing | (np.diff(binary_views(arr)[0]) != 8) | (values < 0)
    yy, mm, dd, hh = values // 1_000_000, values // 10_000 % 100, values // 100 % 100, values % 100
    month = np.clip(yy * 12 + mm - 1, 0, 1199).astype("timedelta64[M]") + np.datetime64("2000-01", "M")
    month_days = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    bad |= (mm < 1) | (mm > 12) | (dd < 1) | (dd > month_days) | (hh > 23)
    days = (month.astype("datetime64[D]") - np.datetime64("1970-01-01", "D")).astype(np.int64) + dd - 1
    weekday = (days + 4) % 7  # 1970-01-01 was a Thursday (%w = 4)
    derived = {"hour": hh, "weekday": weekday, "weekend": ((weekday == 0) | (weekday == 6)).astype(np.int64)}
    return {k: np.where(bad, 0, v) for k, v in derived.items()}, np.where(bad, 0, values), bad


def derived_column(column: pa.ChunkedArray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values of the derived field ``kind`` (a key of ``DERIVED_KINDS``), bad) of a column of stamps."""
    parts = [parse_stamps(chunk) for chunk in column.chunks or [pa.array([], pa.binary())]]
    field = DERIVED_KINDS[kind]
    return np.concatenate([p[0][field] for p in parts]), np.concatenate([p[2] for p in parts])


__all__ = ["DERIVED_KINDS", "STAMP_PROBLEM", "derived_column", "parse_stamps"]
