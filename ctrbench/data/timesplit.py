"""Local time for splits by day: dates to unix seconds, the split boundaries, ISO times. Days are calendar days at
``offset_s`` seconds east of UTC (Beijing: 8 h)."""

from __future__ import annotations

import datetime as dt


def local_midnight(date, offset_s: int) -> int:
    """Unix seconds of 00:00 local time on ``date`` (a date or 'YYYY-MM-DD')."""
    if isinstance(date, dt.datetime):
        date = date.date()
    day = date if isinstance(date, dt.date) else dt.date.fromisoformat(str(date))
    return (day - dt.date(1970, 1, 1)).days * 86400 - offset_s


def local_iso(ts: int, offset_s: int) -> str:
    """``ts`` (unix seconds) as an ISO 8601 local time (``unix <ts>`` past year 9999)."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(seconds=offset_s))).isoformat()
    except (OverflowError, ValueError, OSError):  # a stray timestamp past year 9999 (no time_range given)
        return f"unix {ts}"


def split_starts(t_max: int, offset_s: int, valid_days: int, gold_days: int) -> tuple[int, int]:
    """(valid_start, gold_start) in unix seconds: gold = the last ``gold_days`` local days up to ``t_max``, valid =
    the ``valid_days`` before, train = the rest."""
    last_day = (t_max + offset_s) // 86400
    gold_start = (last_day - gold_days + 1) * 86400 - offset_s
    valid_start = gold_start - valid_days * 86400
    return valid_start, gold_start


def local_split_times(t_min: int, valid_start: int, gold_start: int, t_max: int, offset_s: int) -> dict[str, str]:
    """The time split's boundaries and the data's first and last event, as ISO local times."""
    return {
        "first_event": local_iso(t_min, offset_s),
        "valid_start": local_iso(valid_start, offset_s),
        "gold_start": local_iso(gold_start, offset_s),
        "last_event": local_iso(t_max, offset_s),
    }


__all__ = ["local_iso", "local_midnight", "local_split_times", "split_starts"]
