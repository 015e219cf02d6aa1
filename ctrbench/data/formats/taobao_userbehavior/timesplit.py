"""Local time for the time split: the hint for an empty split, and (from ``ctrbench.data.timesplit``, re-exported)
dates to unix seconds, the split boundaries, ISO times. Days are calendar days at ``offset_s`` seconds east of UTC."""

from __future__ import annotations

from ctrbench.data.timesplit import local_iso, local_midnight, local_split_times, split_starts


def empty_split_hint(
    name: str, options: dict, t_min: int, valid_start: int, gold_start: int, t_max: int, offset_s: int
) -> str:
    """Why a time split holds no target: the days it was given, against the days of the data."""

    def day(ts: int) -> str:
        return local_iso(ts, offset_s)[:10]

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


__all__ = ["empty_split_hint", "local_midnight", "local_split_times", "split_starts"]
