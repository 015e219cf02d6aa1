"""KuaiRand test helpers: small directories in the release's exact layout, and a plain-Python reference.

``write_release`` writes a ``data/`` directory the way the release does (Python's csv module quotes a field holding
a comma, as pandas' ``to_csv`` does): standard logs in two ``_part`` files (the second with its columns in another
order), a random log, user features with quoted ranges, ``-124`` and empty floats, video basics with quoted tag lists
and empty values, statistics in two parts with the real header (``follow_user_num1``). Some users and videos of the
logs have no feature rows. Many exposures share a ``time_ms`` (one request shows several videos).

``Reference`` reads such a directory with the csv module and rebuilds, one exposure at a time, what preprocessing
must write: ids, splits and every behaviour history.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

from ctrbench.data.formats.kuairand.layout import (
    BEHAVIOR_LABELS,
    LOG_COLUMNS,
    STATISTIC_COLUMNS,
    USER_COLUMNS,
    VIDEO_COLUMNS,
)

DAY_MS = 86_400_000
START_MS = 1649347200000  # 2022-04-08 00:00 Beijing
RANGES = ["0", "(0,10]", "(10,50]", "(50,100]", "500+"]
FANS = ["0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)"]


def write_csv(path: Path, header: list[str], rows: list[dict], line_end: str = "\n") -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=line_end)
        writer.writerow(header)
        writer.writerows([[row[c] for c in header] for row in rows])


def log_rows(rng: random.Random, users: int, videos: int, exposures: int, days: int, tab: int | None) -> list[dict]:
    """Exposures in time order, in requests of 1..4 videos sharing a time_ms; the last fifth of the videos is shown
    only in the last 30 % of the exposures (new videos: the statistics' edges leave them out)."""
    rows, t = [], START_MS
    while len(rows) < exposures:
        t += rng.randint(1, days * DAY_MS // exposures * 3)
        user = rng.randrange(users)
        shown = videos if len(rows) > 0.7 * exposures else videos * 4 // 5
        for _ in range(rng.randint(1, 4)):
            click = int(rng.random() < 0.4)
            long_view = int(rng.random() < (0.6 if click else 0.1))
            row = dict.fromkeys(LOG_COLUMNS, 0)
            row.update(
                user_id=user, video_id=rng.randrange(shown), date=20220408, hourmin=1200, time_ms=t,
                is_click=click, is_like=int(click and rng.random() < 0.3), is_follow=int(click and rng.random() < 0.1),
                is_comment=int(click and rng.random() < 0.1), is_forward=int(rng.random() < 0.05),
                is_hate=int(rng.random() < 0.03), long_view=long_view, play_time_ms=rng.randrange(200000),
                duration_ms=rng.randrange(1000, 300000), is_profile_enter=int(rng.random() < 0.05),
                is_rand=int(tab is not None), tab=tab if tab is not None else rng.choice([0, 1, 2, 4, 6]),
            )  # fmt: skip
            rows.append(row)
    return rows[:exposures]


def user_rows(rng: random.Random, users: int) -> list[dict]:
    rows = []
    for user in range(users):
        row = {c: rng.randrange(3) for c in USER_COLUMNS}
        row.update(
            user_id=user, user_active_degree=rng.choice(["full_active", "high_active", "UNKNOWN"]),
            is_live_streamer=rng.choice([0, 1, -124]), follow_user_num_range=rng.choice(RANGES),
            fans_user_num_range=rng.choice(FANS), friend_user_num_range=rng.choice(["0", "[1,5)", "[5,30)"]),
            register_days_range=rng.choice(["31-60", "181-365", "730+"]),
            onehot_feat4=rng.choice(["1.0", "4.0", ""]), onehot_feat12=rng.choice(["0.0", "1.0"]),
        )  # fmt: skip
        rows.append(row)
    return rows


def video_rows(rng: random.Random, videos: int) -> list[dict]:
    rows = []
    for video in range(videos):
        tags = ",".join(str(rng.randrange(20)) for _ in range(rng.randint(0, 3)))
        rows.append({
            "video_id": video, "author_id": rng.randrange(videos // 3 + 1), "video_type": rng.choice(["NORMAL", "AD"]),
            "upload_dt": "2022-04-10", "upload_type": rng.choice(["ShortImport", "LongImport", "Web"]),
            "visible_status": "0.0", "video_duration": rng.choice(["", f"{rng.randrange(5000, 300000)}.0"]),
            "server_width": "720.0", "server_height": "1280.0", "music_id": rng.choice([0, rng.randrange(10**9, 10**10)]),
            "music_type": rng.choice(["", "4.0", "9.0"]), "tag": tags,
        })  # fmt: skip
    return rows


def statistic_rows(rng: random.Random, videos: int) -> list[dict]:
    rows = []
    for video in range(videos):
        row = {c: repr(rng.random() * 10 ** rng.randint(0, 3)) for c in STATISTIC_COLUMNS}
        row.update(video_id=video, counts=rng.randrange(1, 100), follow_cnt=rng.choice(["0", "1", "0.5"]))
        rows.append(row)
    return rows


def write_release(directory: Path, seed: int = 0, users: int = 30, videos: int = 50, exposures: int = 2000,
                  days: int = 6) -> dict:  # fmt: skip
    """A ``data/`` directory (see the module docstring); returns the logs' rows and what lacks features."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    standard = log_rows(rng, users, videos, exposures, days, tab=None)
    random_log = log_rows(rng, users, videos, exposures // 20, days, tab=1)
    half = len(standard) // 2
    write_csv(directory / "log_standard_4_08_to_4_21_test_part1.csv", list(LOG_COLUMNS), standard[:half])
    shuffled = list(LOG_COLUMNS)
    rng.shuffle(shuffled)  # the reader goes by header name
    write_csv(directory / "log_standard_4_08_to_4_21_test_part2.csv", shuffled, standard[half:], line_end="\r\n")
    write_csv(directory / "log_random_4_22_to_5_08_test.csv", list(LOG_COLUMNS), random_log)
    write_csv(directory / "user_features_test.csv", list(USER_COLUMNS), user_rows(rng, users - 2))
    write_csv(directory / "video_features_basic_test.csv", list(VIDEO_COLUMNS), video_rows(rng, videos - 3))
    statistics = statistic_rows(rng, videos - 5)
    header = ["video_id", *STATISTIC_COLUMNS]
    write_csv(directory / "video_features_statistic_test_part1.csv", header, statistics[:20])
    write_csv(directory / "video_features_statistic_test_part2.csv", header, statistics[20:])
    return {"standard": standard, "random": random_log}


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a CSV, BOM tolerated."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def rank_ids(values) -> dict:
    """value -> 1 + its rank among the distinct values (the format's vocabularies)."""
    return {v: i + 1 for i, v in enumerate(sorted(set(values)))}


class Reference:
    """The samples of a directory, rebuilt one exposure at a time from the csv module's rows."""

    def __init__(self, directory: Path, logs: str = "standard"):
        names = sorted(p.name for p in directory.glob("log_standard_*.csv"))
        if logs == "standard+random":
            names += sorted(p.name for p in directory.glob("log_random_*.csv"))
        self.exposures, offset = [], 0
        for name in names:
            _, rows = read_rows(directory / name)
            for line, row in enumerate(rows, start=2):
                exposure = {k: int(v) for k, v in row.items() if k in LOG_COLUMNS}
                exposure["row_id"] = offset + line
                self.exposures.append(exposure)
            offset += len(rows) + 1
        self.user_id = rank_ids(e["user_id"] for e in self.exposures)
        self.video_id = rank_ids(e["video_id"] for e in self.exposures)
        basic = {}
        for path in sorted(directory.glob("video_features_basic_*.csv")):
            basic |= {int(r["video_id"]): r for r in read_rows(path)[1] if int(r["video_id"]) in self.video_id}
        self.basic = basic
        self.author_id = rank_ids(int(float(r["author_id"])) for r in basic.values())
        self.music_id = rank_ids(int(float(r["music_id"])) for r in basic.values())
        tags = [r["tag"].split(",")[0] for r in basic.values()]
        self.tag_id = rank_ids(t.encode() for t in tags if t)
        self._histories: dict[tuple[str, str], dict[int, list[int]]] = {}

    def video_field(self, raw_video: int, field: str) -> int:
        """The id a history event carries for ``field`` (video_id, author_id, music_id or tag)."""
        if field == "video_id":
            return self.video_id[raw_video]
        row = self.basic.get(raw_video)
        if row is None:
            return 0
        if field in ("author_id", "music_id"):
            return getattr(self, field)[int(float(row[field]))]
        first = row["tag"].split(",")[0]
        return self.tag_id[first.encode()] if first else 0

    def histories(self, behavior: str, field: str) -> dict[int, list[int]]:
        """row_id -> the ids of the user's ``behavior`` events strictly before the exposure's time_ms, oldest first
        (ties in time_ms by row_id), one exposure at a time; for ``field == "time_gap"`` each event's seconds to the
        exposure (both times in whole unix seconds)."""
        if (behavior, field) in self._histories:
            return self._histories[behavior, field]
        label = BEHAVIOR_LABELS[behavior]
        by_user = defaultdict(list)
        for e in self.exposures:
            by_user[e["user_id"]].append(e)
        result = {}
        for events in by_user.values():
            events = sorted(events, key=lambda e: (e["time_ms"], e["row_id"]))
            for e in events:
                result[e["row_id"]] = [
                    e["time_ms"] // 1000 - h["time_ms"] // 1000 if field == "time_gap" else self.video_field(h["video_id"], field)
                    for h in events
                    if h[label] == 1 and h["time_ms"] < e["time_ms"]
                ]
        self._histories[behavior, field] = result
        return result
