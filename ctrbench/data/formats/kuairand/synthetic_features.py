"""The three feature files of the synthetic KuaiRand-Pure directory (``synthetic``), in the real headers and styles.

Styles copied from the real files: user features hold ``-124`` (the dataset's missing code) in
``is_live_streamer``, range buckets consistent with their counts and quoted when they hold a comma
(``"(0,10]"``, ``"[100,1k)"``), ``onehot_feat4`` and ``onehot_feat12..17`` written as floats (``1.0``) with
empty ``onehot_feat4`` values; video basic features write numbers as floats (``87433.0``), ``tag`` as the
primary tag or a quoted list (``"12,54"``), empty ``video_duration``, ``music_type`` and ``tag`` values, and
``music_id`` 0 for some videos; statistics are per-day means (``count / counts``) in shortest round-trip
digits, integral ones bare (``0``, ``51``), under the real header (``follow_user_num1`` included). Lines are
built by pyarrow's string kernels, chunk by chunk: pyarrow's CSV writer would quote every string or refuse
the commas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrbench.atomic import atomic_path

if TYPE_CHECKING:
    from ctrbench.data.formats.kuairand.synthetic import KuaiRandLatents

USER_FILE = "user_features_pure.csv"
VIDEO_BASIC_FILE = "video_features_basic_pure.csv"
VIDEO_STATISTIC_FILE = "video_features_statistic_pure.csv"
USER_HEADER = (
    "user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,"
    "follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,register_days,"
    "register_days_range," + ",".join(f"onehot_feat{i}" for i in range(18))
)
VIDEO_BASIC_HEADER = (
    "video_id,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,server_width,server_height,"
    "music_id,music_type,tag"
)
VIDEO_STATISTIC_HEADER = (
    "video_id,counts,show_cnt,show_user_num,play_cnt,play_user_num,play_duration,complete_play_cnt,"
    "complete_play_user_num,valid_play_cnt,valid_play_user_num,long_time_play_cnt,long_time_play_user_num,"
    "short_time_play_cnt,short_time_play_user_num,play_progress,comment_stay_duration,like_cnt,like_user_num,"
    "click_like_cnt,double_click_cnt,cancel_like_cnt,cancel_like_user_num,comment_cnt,comment_user_num,"
    "direct_comment_cnt,reply_comment_cnt,delete_comment_cnt,delete_comment_user_num,comment_like_cnt,"
    "comment_like_user_num,follow_cnt,follow_user_num1,cancel_follow_cnt,cancel_follow_user_num,share_cnt,"
    "share_user_num,download_cnt,download_user_num,report_cnt,report_user_num,reduce_similar_cnt,"
    "reduce_similar_user_num,collect_cnt,collect_user_num,cancel_collect_cnt,cancel_collect_user_num,"
    "direct_comment_user_num,reply_comment_user_num,share_all_cnt,share_all_user_num,outsite_share_all_cnt"
)
CHUNK_ENTITIES = 65_536  # part of the format: changing it changes the bytes for a given seed
UPLOAD_DAYS = 500  # upload_dt: up to this many days before the log starts, exponential with mean 25
FIRST_LOG_DAY = np.datetime64("2022-04-08")

# fmt: off
# user-feature range buckets: (edges, searchsorted side, labels)
FOLLOW_RANGES = ([0, 10, 50, 100, 150, 250, 500], "left",
                 ["0", "(0,10]", "(10,50]", "(50,100]", "(100,150]", "(150,250]", "(250,500]", "500+"])
FANS_RANGES = ([1, 10, 100, 1000, 5000, 10_000, 100_000, 1_000_000], "right",
               ["0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)", "[5k,1w)", "[1w,10w)", "[10w,100w)", "[100w,1000w)"])
FRIEND_RANGES = ([1, 5, 30, 60, 120, 250], "right", ["0", "[1,5)", "[5,30)", "[30,60)", "[60,120)", "[120,250)", "250+"])
REGISTER_RANGES = ([30, 60, 90, 180, 365, 730], "left",
                   ["15-30", "31-60", "61-90", "91-180", "181-365", "366-730", "730+"])
# categorical columns: (values, probabilities)
ACTIVE_DEGREES = (["full_active", "high_active", "middle_active", "2_14_day_new", "low_active"],
                  [0.62, 0.22, 0.11, 0.03, 0.02])
LIVE_STREAMER = (["-124", "1", "0"], [0.7, 0.25, 0.05])
VIDEO_TYPES = (["NORMAL", "AD"], [0.99, 0.01])
UPLOAD_TYPES = (["LongImport", "Web", "Kmovie", "ShortImport", "LongPicture", "ShortCamera", "PictureSet", "UNKNOWN"],
                [0.35, 0.29, 0.14, 0.14, 0.05, 0.01, 0.01, 0.01])
VISIBLE_STATUS = (["0.0", "1.0"], [0.995, 0.005])
MUSIC_TYPES = (["9.0", "4.0", "8.0", ""], [0.78, 0.16, 0.02, 0.04])
SCREENS = ([(720, 1280), (1280, 720), (720, 960), (960, 720), (1080, 1440), (540, 960)], [0.66, 0.15, 0.06, 0.05, 0.05, 0.03])
STAT_RATES = {  # count column -> (parent count, rate per parent event, weight of q_v); *_user_num from its *_cnt
    "play_cnt": ("show_cnt", 0.45, 0.3), "complete_play_cnt": ("play_cnt", 0.2, 0.3),
    "valid_play_cnt": ("play_cnt", 0.5, 0.3), "long_time_play_cnt": ("play_cnt", 0.35, 0.4),
    "short_time_play_cnt": ("play_cnt", 0.4, -0.3), "like_cnt": ("play_cnt", 0.02, 0.8),
    "click_like_cnt": ("like_cnt", 0.5, 0), "double_click_cnt": ("like_cnt", 0.5, 0),
    "cancel_like_cnt": ("like_cnt", 0.08, 0), "comment_cnt": ("play_cnt", 0.002, 0.5),
    "direct_comment_cnt": ("comment_cnt", 0.7, 0), "reply_comment_cnt": ("comment_cnt", 0.3, 0),
    "delete_comment_cnt": ("comment_cnt", 0.05, 0), "comment_like_cnt": ("comment_cnt", 0.8, 0),
    "follow_cnt": ("play_cnt", 0.002, 0.5), "cancel_follow_cnt": ("follow_cnt", 0.3, 0),
    "share_cnt": ("play_cnt", 0.001, 0.5), "download_cnt": ("play_cnt", 0.001, 0.3),
    "report_cnt": ("play_cnt", 5e-5, -0.5), "reduce_similar_cnt": ("show_cnt", 6e-4, -0.5),
    "collect_cnt": ("play_cnt", 0.002, 0.5), "cancel_collect_cnt": ("collect_cnt", 0.25, 0),
    "share_all_cnt": ("play_cnt", 0.0025, 0.5), "outsite_share_all_cnt": ("share_all_cnt", 0.6, 0),
}
USER_NUM_SHARE = 0.93  # distinct users per event of the parent count
# fmt: on


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())  # floats: shortest round-trip digits, integral ones bare


def _point_zero(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Integral values written as floats (``87433.0``), empty where ``missing``."""
    text = pc.binary_join_element_wise(_text(values), ".0", "")
    return text if missing is None else pc.if_else(pa.array(missing), "", text)


def _bucket(values: np.ndarray, ranges: tuple) -> pa.Array:
    edges, side, labels = ranges
    tokens = pa.array([f'"{s}"' if "," in s else s for s in labels])
    return tokens.take(pa.array(np.searchsorted(edges, values, side=side)))


def _choice(rng: np.random.Generator, options: tuple, n: int) -> pa.Array:
    labels, p = options
    return pa.array(labels).take(pa.array(rng.choice(len(labels), n, p=p)))


def _flag(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return (rng.random(n) < p).astype(np.int64)


def _user_columns(lat: KuaiRandLatents, rng: np.random.Generator, ids: np.ndarray) -> list[pa.Array]:
    n = len(ids)
    counts = [  # (ranges, values) of follow_user_num, fans_user_num, friend_user_num, register_days
        (FOLLOW_RANGES, np.floor(rng.lognormal(4.5, 1.3, n)).astype(np.int64)),
        (FANS_RANGES, np.clip(np.floor(np.exp(rng.normal(3.5, 2.0, n))) - 1, 0, 9_999_999).astype(np.int64)),
        (FRIEND_RANGES, np.clip(np.floor(np.exp(rng.normal(1.8, 1.8, n))) - 1, 0, 5_000).astype(np.int64)),
        (REGISTER_RANGES, 15 + np.floor(2600 * rng.beta(2.0, 0.8, n)).astype(np.int64)),
    ]
    onehot = [
        rng.integers(0, 2, n),
        lat.user_group[ids],
        np.minimum(rng.geometric(0.12, n) - 1, 33),
        rng.integers(0, 1200, n),
        None,  # onehot_feat4: a float column with empty values
        _flag(rng, 0.01, n),
        rng.integers(0, 2, n),
        rng.integers(0, 50, n),
        rng.integers(0, 400, n),
        rng.integers(0, 7, n),
        rng.choice([0, 2, 3, 4], n, p=[0.17, 0.3, 0.39, 0.14]),
        rng.choice(3, n, p=[0.76, 0.01, 0.23]),
    ]
    feat4 = _point_zero(rng.choice(7, n, p=[0.14, 0.36, 0.22, 0.12, 0.07, 0.06, 0.03]), rng.random(n) < 0.01)
    columns = [_text(ids), _choice(rng, ACTIVE_DEGREES, n), _text(_flag(rng, 0.01, n))]
    columns += [_choice(rng, LIVE_STREAMER, n), _text(_flag(rng, 0.8, n))]
    for ranges, values in counts:
        columns += [_text(values), _bucket(values, ranges)]
    columns += [feat4 if values is None else _text(values) for values in onehot]
    columns += [_point_zero(_flag(rng, p, n)) for p in (0.73, 0.1, 0.22, 0.04, 0.02, 0.005)]  # onehot_feat12..17
    return columns


def _tags(lat: KuaiRandLatents, rng: np.random.Generator, ids: np.ndarray) -> pa.Array:
    """The primary tag, or it and one or two others (distinct) as a quoted list; empty for a few videos."""
    n, n_tags = len(ids), lat.interaction.shape[1]
    primary = lat.video_tag[ids]
    extra = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    step1 = rng.integers(1, n_tags - 1, n)
    step2 = 1 + (rng.random(n) * (n_tags - 1 - step1)).astype(np.int64)  # step1 + step2 < n_tags
    one = _text(primary)
    two = pc.binary_join_element_wise(one, _text((primary + step1) % n_tags), ",")
    three = pc.binary_join_element_wise(two, _text((primary + step1 + step2) % n_tags), ",")
    several = pc.binary_join_element_wise('"', pc.if_else(pa.array(extra == 2), three, two), '"', "")
    return pc.if_else(pa.array(rng.random(n) < 0.02), "", pc.if_else(pa.array(extra == 0), one, several))


def _video_basic_columns(lat: KuaiRandLatents, rng: np.random.Generator, ids: np.ndarray) -> list[pa.Array]:
    n = len(ids)
    width, height = np.array(SCREENS[0]).T[:, rng.choice(len(SCREENS[0]), n, p=SCREENS[1])]
    uploaded = FIRST_LOG_DAY - np.minimum(rng.exponential(25.0, n), UPLOAD_DAYS).astype(np.int64)
    return [
        _text(ids),
        _text(lat.author_raw_id[lat.video_author[ids]]),
        _choice(rng, VIDEO_TYPES, n),
        pa.array(uploaded.astype("datetime64[D]")).cast(pa.string()),
        _choice(rng, UPLOAD_TYPES, n),
        _choice(rng, VISIBLE_STATUS, n),
        _point_zero(lat.video_duration_ms[ids], rng.random(n) < 0.05),
        _point_zero(width),
        _point_zero(height),
        _text(np.where(rng.random(n) < 0.04, 0, lat.music_raw_id[lat.video_music[ids]])),
        _choice(rng, MUSIC_TYPES, n),
        _tags(lat, rng, ids),
    ]


def _video_statistic_columns(lat: KuaiRandLatents, rng: np.random.Generator, ids: np.ndarray) -> list[pa.Array]:
    """Per-day means over ``counts`` days; counts are Poisson around rates that scale with exp(w q_v)."""
    n = len(ids)
    q = lat.video_quality[ids]
    log_p = np.log(np.diff(lat.video_popularity, prepend=0.0))
    popularity = (log_p[ids] - log_p.mean()) / log_p.std()
    days = rng.integers(30, 200, n)
    totals = {"show_cnt": rng.poisson(days * np.exp(rng.normal(5.5 + popularity, 0.7)))}
    header = VIDEO_STATISTIC_HEADER.split(",")
    for name in header[3:]:  # parents come before their children in the real header
        if name in STAT_RATES:
            parent, rate, weight = STAT_RATES[name]
            totals[name] = rng.poisson(totals[parent] * rate * np.exp(weight * q))
        elif "_user_num" in name:
            totals[name] = rng.binomial(totals[name.rsplit("_user_num", 1)[0] + "_cnt"], USER_NUM_SHARE)
    values = {name: total / days for name, total in totals.items()}
    values["play_progress"] = 1 / (1 + np.exp(1.5 - 0.4 * q + 0.6 * lat.duration_z[ids])) * rng.uniform(0.8, 1.2, n)
    values["play_duration"] = values["play_cnt"] * lat.video_duration_ms[ids] * values["play_progress"]
    values["comment_stay_duration"] = values["play_cnt"] * 300.0 * rng.lognormal(0.0, 1.0, n)
    values |= {"video_id": ids, "counts": days}
    return [_text(values[name]) for name in header]


def _write_csv_text(path: Path, header: str, chunks: Iterator[list[pa.Array]]) -> int:
    """Write the header and each chunk's columns (CSV tokens, quoted where needed) as lines; returns the rows."""
    rows = 0
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        handle.write((header + "\n").encode())
        for columns in chunks:
            lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*columns, ","), "", "\n")
            offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
            handle.write(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])
            rows += len(lines)
    return rows


ColumnBuilder = Callable[["KuaiRandLatents", np.random.Generator, np.ndarray], list[pa.Array]]


def write_feature_files(directory: Path, lat: KuaiRandLatents, seed: int) -> dict[str, dict[str, int]]:
    """Write the user, video basic and video statistic files; returns ``{file: {"rows", "bytes"}}``.

    Rows are in id order, without the users and videos the latents mark absent; each chunk of
    ``CHUNK_ENTITIES`` rows draws from its own generator keyed by ``(seed, file, chunk)``.
    """
    files: dict[str, tuple[str, int, np.ndarray, ColumnBuilder]] = {
        USER_FILE: (USER_HEADER, 2, np.flatnonzero(~lat.absent_users), _user_columns),
        VIDEO_BASIC_FILE: (VIDEO_BASIC_HEADER, 3, np.flatnonzero(~lat.absent_basic), _video_basic_columns),
        VIDEO_STATISTIC_FILE: (
            VIDEO_STATISTIC_HEADER,
            4,
            np.flatnonzero(~lat.absent_statistic),
            _video_statistic_columns,
        ),
    }
    facts = {}
    for name, (header, stream, ids, columns) in files.items():
        chunks = (
            columns(lat, np.random.default_rng([seed, stream, k]), ids[start : start + CHUNK_ENTITIES])
            for k, start in enumerate(range(0, len(ids), CHUNK_ENTITIES))
        )
        rows = _write_csv_text(directory / name, header, chunks)
        facts[name] = {"rows": rows, "bytes": (directory / name).stat().st_size}
    return facts
