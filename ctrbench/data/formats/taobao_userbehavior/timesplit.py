"""Local time for the time split: dates to unix seconds, the split boundaries, ISO times, the hint for an empty
split. Days are calendar days at ``offset_s`` seconds east of UTC."""

from __future__ import annotations

import datetime as dt


def local_midnight(date, offset_s: int) -> int:
    """Unix seconds of 00:00 local time on ``date`` (a date or 'YYYY-MM-DD')."""
    if isinstance(date, dt.datetime):
        date = date.date()
    day = date if isinstance(date, dt.date) else dt.date.fromisoformat(str(date))
    return (day - dt.date(1970, 1, 1)).days * 86400 - offset_s


def _iso(ts: int, offset_s: int) -> str:
    """``ts`` as an ISO 8601 local time (``unix <ts>`` past year 9999)."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(seconds=offset_s))).isoformat()
    except (OverflowError, ValueError, OSError):  # a stray timestamp past year 9999 (no time_range given)
        return f"unix {ts}"


def empty_split_hint(
    name: str, options: dict, t_min: int, valid_start: int, gold_start: int, t_max: int, offset_s: int
) -> str:
    """Why a time split holds no target: the days it was given, against the days of the data."""

    def day(ts: int) -> str:
        return _iso(ts, offset_s)[:10]

    valid_days, gold_days = options["time_split"]["valid_days"], options["time_split"]["gold_days"]
    data_days = f"({day(t_min)}..{day(t_max)})"
    if name == "train" and t_min >= valid_start:
        return f"valid_days={valid_days} + gold_days={gold_days} cover every day of the data {data_days}; lower them"
    days = {
        "train": f"before {day(valid_start)}",
        "valid": f"on {day(valid_start)}..{day(gold_start - 1)}",
        "gold": f"on {day(gold_start)}..{day(t_max)}",
    }[name]
    return f"no target events ({', '.join(options['targets']['behaviors'])}) {days} {data_days}"


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
        "first_event": _iso(t_min, offset_s),
        "valid_start": _iso(valid_start, offset_s),
        "gold_start": _iso(gold_start, offset_s),
        "last_event": _iso(t_max, offset_s),
    }


__all__ = ["empty_split_hint", "local_midnight", "local_split_times", "split_starts"]
