"""Seeded synthetic data in the KuaiRand-Pure layout, with planted multi-task signals.

``write_synthetic_kuairand`` (``synthetic_writer.py``) writes the four files of a KuaiRand-Pure ``data/`` directory: the standard log
``LOG_FILE`` (19 integer columns) and the user, video basic and video statistic feature files
(``synthetic_features``), with the real headers and value styles, so they go through exactly the reader real
data goes through. Quirks kept: one request shows several videos, so its rows share one ``time_ms`` (request
sizes geometric, mean ``MEAN_REQUEST_SIZE``); ``date``/``hourmin`` are Beijing time at hour granularity and are
the hour of ``time_ms + U(0, LOG_DELAY_MS)``, so a request late in an hour is often logged under the next one
(real rows: 05:57 logged ``600``, 23:44 logged as the next day's ``0``; about 1 request in 6); ``ABSENT_SHARE``
of the users and videos of the log are missing from the feature files (users from the user file; videos from
the basic file, the statistics file, or both). The log is user-major and time-ordered; ``is_rand`` is 0.

Generative model. Videos have a quality ``q_v ~ N(0, 1)``, a primary tag ``t_v`` (Zipf over ``N_TAGS``), an
author ``a_v`` and a log-normal duration (median ``DURATION_MEDIAN_MS``) with standardised log ``d_v``; users a
group ``g_u`` (written as ``onehot_feat1``) and a bias ``b_u ~ N(0, USER_BIAS_SD)``. Two user-group x tag
interaction tables of rank ``INTERACTION_RANK`` = K: ``X = A C^T / sqrt(K)`` and ``Y = A' C'^T / sqrt(K)`` with
random signs ``A, A'`` ``[groups, K]`` and ``C, C'`` ``[tags, K]``. Each user's requests are simulated in time order with state
from the user's *earlier requests* only (events of one request never inform each other, as a reader's histories
must not): ``C`` = the user's clicks and ``L`` = likes on videos of tag ``t_v``; ``A_like`` / ``A_long`` =
[``a_v`` is among the authors of the user's last ``RING`` likes / long views]. A request's videos come from
popularity (Zipf), or, each with probability ``P_FROM_HISTORY``, from an author in those rings (the
recommender's feedback loop). For an exposure in tab ``tab`` at Beijing hour ``h``, with ``e ~ N(0, 1)``
shared by the exposure's tasks (weights in ``WEIGHTS``, ``NOISE_WEIGHT``, ``TAB_EFFECT``):

    z_click = B_click + b_u + 0.6 q_v + 1.5 X[g_u, t_v] - 0.3 d_v + TAB_EFFECT[tab]
              + HOUR_AMPLITUDE cos(2 pi (h - HOUR_PEAK) / 24) + 0.5 log1p(C) + 0.6 e
    z_like  = B_like + 0.5 q_v + 1.0 X[g_u, t_v] + 1.0 log1p(L) + 1.0 A_like + 0.6 e
    z_long  = B_long + 0.5 b_u + 0.4 q_v - 1.2 X[g_u, t_v] + 1.2 Y[g_u, t_v] - 0.9 d_v + 0.4 log1p(C)
              + 0.8 A_long + 0.6 e

and ``y ~ Bernoulli(sigmoid(z))``. Like is rare (1 exposure in 27) and shares X with click (1 in 3): click's
labels pin X's cells down, like's alone do not, so a like head that reads what click learned gains (sharing
helps); long view reads X reversed plus Y of its own on the same fields (task-aware sharing). Rank 2: a full-rank
table was not learned within the default budget, a rank-1 one was learned from like's labels alone. Click and
long view also share duration and click history; each task keeps a term of its own (like: like history; long
view: long-view history; click: tab and hour). The biases ``B`` are solved (bisection
on a seeded calibration sample of exposures without history) for ``STATIC_RATES``; histories and the feedback
loop raise the realised rates to about click 0.35, like 0.04, long view 0.25 (``facts["rates"]``). The rarer
labels follow the main ones (``MINOR_LABELS``: follow, comment, forward from like; profile entry from click;
hate from low quality); ``play_time_ms`` agrees with ``long_view`` under the threshold ``min(duration_ms,
LONG_VIEW_MS)``; the statistics file carries ``q_v`` (its rates scale with ``exp(w q_v)``) and popularity.

Bytes depend only on ``(rows, seed)``: latents come from one generator keyed by ``seed``, each chunk of
``CHUNK_USERS`` users of the log (and of rows of a feature file) from its own generator keyed by
``(seed, file, chunk)``; memory is bounded by a chunk and the per-user and per-video latents. Every file is
written under a partial name and renamed when complete.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ctrbench.data.formats.kuairand.synthetic_requests import (
    DATE_INTS,
    DAYS,
    HOUR_CDF,
    LOG_DELAY_MS,
    START_MS,
    draw,
    requests,
    zipf_cdf,
)

LOG_FILE = "log_standard_4_08_to_4_21_pure.csv"
LOG_HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,long_view,"
    "play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
)
LOG_COLUMNS = LOG_HEADER.split(",")
TASKS = ("is_click", "is_like", "long_view")  # the planted tasks, in the order of WEIGHTS
LABELS = (*TASKS, "is_follow", "is_comment", "is_forward", "is_hate", "is_profile_enter")

CHUNK_USERS = 4096  # part of the format: changing it changes the bytes for a given seed
EVENTS_PER_USER = 50  # log rows per user, mean
ROWS_PER_VIDEO, VIDEOS_PER_AUTHOR, VIDEOS_PER_MUSIC = 20, 3, 4
N_TAGS, TAG_ZIPF, POPULARITY_ZIPF, MUSIC_ZIPF = 30, 0.8, 0.6, 0.7
USER_GROUP_P = (0.03, 0.21, 0.16, 0.13, 0.29, 0.14, 0.04)  # onehot_feat1 = g_u, the user side of X
ABSENT_SHARE = 0.01
DURATION_MEDIAN_MS, DURATION_LOG_SD = 30_000, 0.9
LONG_VIEW_MS = 18_000
USER_BIAS_SD = 0.5
RING, P_FROM_HISTORY = 8, 0.3
STATIC_RATES = (0.31, 0.03, 0.21)  # click, like, long view without history terms: what the biases are solved for
CALIBRATION_SAMPLE = 20_000
INTERACTION_RANK = 2  # K of X and Y
WEIGHTS = {
    "is_click": {"user": 1.0, "quality": 0.6, "interaction": 1.5, "duration": -0.3, "click_history": 0.5},
    "is_like": {"quality": 0.5, "interaction": 1.0, "like_history": 1.0, "liked_author": 1.0},
    "long_view": {"user": 0.5, "quality": 0.4, "interaction": -1.2, "long_interaction": 1.2, "duration": -0.9,
                  "click_history": 0.4, "long_viewed_author": 0.8},
}  # fmt: skip
NOISE_WEIGHT = 0.6  # of e, shared by the tasks of an exposure
TABS, TAB_P, TAB_EFFECT = np.array([0, 1, 2, 4, 6]), [0.45, 0.3, 0.18, 0.04, 0.03], np.array([0.3, -0.6, 0.2, 0, -0.3])
HOUR_AMPLITUDE, HOUR_PEAK = 0.4, 13
HOUR_EFFECT = HOUR_AMPLITUDE * np.cos(2 * np.pi * (np.arange(24) - HOUR_PEAK) / 24)
MINOR_LABELS = {  # label -> (bias, {driver: weight}); drivers: the exposure's main labels and q_v
    "is_follow": (-7.0, {"is_like": 2.5, "quality": 0.5}),
    "is_comment": (-6.5, {"is_like": 2.0, "quality": 0.5}),
    "is_forward": (-7.0, {"is_like": 2.0, "quality": 0.5}),
    "is_hate": (-8.0, {"quality": -1.0}),
    "is_profile_enter": (-5.0, {"is_click": 1.5}),
}


def synthetic_sizes(rows: int, events_per_user: int = EVENTS_PER_USER) -> dict[str, int]:
    """Users, videos, authors and music tracks for a log of ``rows`` rows."""
    videos = max(20, rows // ROWS_PER_VIDEO)
    return {
        "users": max(1, rows // events_per_user),
        "videos": videos,
        "authors": max(5, videos // VIDEOS_PER_AUTHOR),
        "music": max(5, videos // VIDEOS_PER_MUSIC),
    }


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class KuaiRandLatents:
    """What the log and the feature files share: per-user and per-video latents and the planted tables."""

    sizes: dict[str, int]
    user_group: np.ndarray  # [users] g_u, written as onehot_feat1
    user_bias: np.ndarray  # [users] b_u
    video_tag: np.ndarray  # [videos] primary tag t_v
    video_author: np.ndarray  # [videos] author index a_v
    video_quality: np.ndarray  # [videos] q_v
    video_duration_ms: np.ndarray  # [videos]
    duration_z: np.ndarray  # [videos] d_v, standardised log duration
    video_popularity: np.ndarray  # [videos] cumulative probabilities of a popularity draw
    video_music: np.ndarray  # [videos] music index (Zipf: tracks are shared)
    author_videos: np.ndarray  # video indices grouped by author
    author_offset: np.ndarray  # [authors] start of each author's block in author_videos
    author_size: np.ndarray  # [authors]
    author_raw_id: np.ndarray  # [authors] 7-digit ids, as the real author_id
    music_raw_id: np.ndarray  # [music] 10-digit ids, as the real music_id
    interaction: np.ndarray  # [len(USER_GROUP_P), N_TAGS] X, shared by click, like and (negated) long view
    long_interaction: np.ndarray  # [len(USER_GROUP_P), N_TAGS] Y, long view's own
    absent_users: np.ndarray  # [users] bool: not in the user file
    absent_basic: np.ndarray  # [videos] bool: not in the video basic file
    absent_statistic: np.ndarray  # [videos] bool: not in the video statistic file
    biases: np.ndarray | None = None  # [3] B of TASKS, solved by make_latents


def _task_logits(lat: KuaiRandLatents, user, video, tab, hour, noise, clicks, likes, liked_author, viewed_author):
    """z of TASKS without their biases, [3, n], as the module docstring writes them."""
    q, d = lat.video_quality[video], lat.duration_z[video]
    g, t, b = lat.user_group[user], lat.video_tag[video], lat.user_bias[user]
    terms = {
        "user": b, "quality": q, "interaction": lat.interaction[g, t], "long_interaction": lat.long_interaction[g, t],
        "duration": d, "click_history": np.log1p(clicks),
        "like_history": np.log1p(likes), "liked_author": liked_author, "long_viewed_author": viewed_author,
    }  # fmt: skip
    z = np.stack([sum(w * terms[k] for k, w in WEIGHTS[task].items()) for task in TASKS]) + NOISE_WEIGHT * noise
    z[0] += TAB_EFFECT[np.searchsorted(TABS, tab)] + HOUR_EFFECT[hour]
    return z


def _solve_biases(lat: KuaiRandLatents, rng: np.random.Generator) -> np.ndarray:
    """B of TASKS such that a calibration sample of exposures without history has ``STATIC_RATES``."""
    n = CALIBRATION_SAMPLE
    user, video = rng.integers(0, lat.sizes["users"], n), draw(lat.video_popularity, rng.random(n))
    tab, hour = TABS[rng.choice(len(TABS), n, p=TAB_P)], draw(HOUR_CDF, rng.random(n))
    zero = np.zeros(n)
    z = _task_logits(lat, user, video, tab, hour, rng.standard_normal(n), zero, zero, zero, zero)
    lo, hi = np.full((3, 1), -20.0), np.full((3, 1), 20.0)
    for _ in range(50):
        mid = (lo + hi) / 2
        low = sigmoid(z + mid).mean(axis=1, keepdims=True) < np.array(STATIC_RATES)[:, None]
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return ((lo + hi) / 2).ravel()


def make_latents(rows: int, seed: int, events_per_user: int = EVENTS_PER_USER) -> KuaiRandLatents:
    rng = np.random.default_rng([seed, 0])
    sizes = synthetic_sizes(rows, events_per_user)
    n_users, n_videos, n_authors = sizes["users"], sizes["videos"], sizes["authors"]
    video_author = rng.integers(0, n_authors, n_videos)
    video_author[:n_authors] = np.arange(n_authors)  # every author has a video
    author_size = np.bincount(video_author, minlength=n_authors)
    duration = np.clip(np.round(np.exp(rng.normal(np.log(DURATION_MEDIAN_MS), DURATION_LOG_SD, n_videos))), 2e3, 6e5)
    popularity = zipf_cdf(rng, n_videos, POPULARITY_ZIPF)
    # absent videos among the popular ones (ranks 5..), so that they occur in the log
    by_rank = np.argsort(-np.diff(popularity, prepend=0.0), kind="stable")
    n_absent = int(np.ceil(ABSENT_SHARE * n_videos))
    absent = by_rank[5 : 5 + 3 * n_absent][rng.permutation(3 * n_absent)[: 2 * n_absent]]
    absent_basic, absent_statistic = np.zeros(n_videos, bool), np.zeros(n_videos, bool)
    absent_basic[absent[: n_absent + n_absent // 2]] = True  # overlapping: some videos lack both files
    absent_statistic[absent[n_absent // 2 :]] = True
    absent_users = np.zeros(n_users, bool)
    if n_users >= 10:
        absent_users[rng.choice(n_users, int(np.ceil(ABSENT_SHARE * n_users)), replace=False)] = True
    lat = KuaiRandLatents(
        sizes=sizes,
        user_group=rng.choice(len(USER_GROUP_P), n_users, p=USER_GROUP_P),
        user_bias=rng.normal(0.0, USER_BIAS_SD, n_users),
        video_tag=draw(zipf_cdf(rng, N_TAGS, TAG_ZIPF), rng.random(n_videos)),
        video_author=video_author,
        video_quality=rng.standard_normal(n_videos),
        video_duration_ms=duration.astype(np.int64),
        duration_z=(np.log(duration) - np.log(DURATION_MEDIAN_MS)) / DURATION_LOG_SD,
        video_popularity=popularity,
        video_music=draw(zipf_cdf(rng, sizes["music"], MUSIC_ZIPF), rng.random(n_videos)),
        author_videos=np.argsort(video_author, kind="stable"),
        author_offset=np.concatenate([[0], np.cumsum(author_size)[:-1]]),
        author_size=author_size,
        author_raw_id=1_000_000 + rng.choice(9_000_000, n_authors, replace=False),
        music_raw_id=rng.integers(10**9, 10**10, sizes["music"]),
        interaction=_low_rank_signs(rng),
        long_interaction=_low_rank_signs(rng),
        absent_users=absent_users,
        absent_basic=absent_basic,
        absent_statistic=absent_statistic,
    )
    lat.biases = _solve_biases(lat, np.random.default_rng([seed, 5]))
    return lat


def _low_rank_signs(rng: np.random.Generator) -> np.ndarray:
    """``A C^T / sqrt(K)``, ``[groups, tags]``, with random signs ``A [groups, K]``, ``C [tags, K]``."""
    a = rng.choice([-1.0, 1.0], (len(USER_GROUP_P), INTERACTION_RANK))
    c = rng.choice([-1.0, 1.0], (N_TAGS, INTERACTION_RANK))
    return a @ c.T / np.sqrt(INTERACTION_RANK)


def _push(rings: np.ndarray, pointer: np.ndarray, which: int, users: np.ndarray, authors: np.ndarray) -> None:
    """Append authors to ring ``which`` of their users (ascending), in order; each user's ``RING`` newest stay."""
    if not len(users):
        return
    rank = np.arange(len(users)) - np.searchsorted(users, users, side="left")  # among the user's pushes now
    keep = rank < RING
    slot = which * RING + (pointer[users, which] + rank) % RING
    rings[users[keep], slot[keep]] = authors[keep]
    np.add.at(pointer[:, which], users, 1)


def _simulate_log(lat: KuaiRandLatents, rng: np.random.Generator, user_start: int, n_users: int, n_rows: int):
    """Log rows of users ``user_start ..+ n_users``, ``n_rows`` in all: {column: int64 array}, user-major and
    time-ordered, plus ``late`` (date/hourmin is the hour after time_ms)."""
    user, request, step, offset, logged_hour = requests(rng, n_users, n_rows)
    tab = TABS[rng.choice(len(TABS), len(offset), p=TAB_P)]
    hour = (offset // 3_600_000) % 24
    video = np.empty(n_rows, np.int64)
    labels = np.empty((len(LABELS), n_rows), np.int64)
    click_tag, like_tag = np.zeros((n_users, N_TAGS), np.int64), np.zeros((n_users, N_TAGS), np.int64)
    rings = np.full((n_users, 2 * RING), -1, np.int64)  # [:, :RING] liked authors, [:, RING:] long-viewed
    pointer = np.zeros((n_users, 2), np.int64)
    by_step = np.argsort(step, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(step))])
    for lo, hi in itertools.pairwise(bounds):
        rows = by_step[lo:hi]  # each user's request number `step`, users ascending
        u, req, n = user[rows], request[rows], hi - lo
        candidate = rings[u, rng.integers(0, 2 * RING, n)]
        from_history = (rng.random(n) < P_FROM_HISTORY) & (candidate >= 0)
        author = np.where(from_history, candidate, 0)
        pick = lat.author_offset[author] + (rng.random(n) * lat.author_size[author]).astype(np.int64)
        v = np.where(from_history, lat.author_videos[pick], draw(lat.video_popularity, rng.random(n)))
        t, a = lat.video_tag[v], lat.video_author[v]
        liked_author = (rings[u, :RING] == a[:, None]).any(axis=1)
        viewed_author = (rings[u, RING:] == a[:, None]).any(axis=1)
        noise = rng.standard_normal(n)
        z = _task_logits(
            lat, user_start + u, v, tab[req], hour[req], noise, click_tag[u, t], like_tag[u, t], liked_author,
            viewed_author,
        ) + lat.biases[:, None]  # fmt: skip
        y = rng.random((3, n)) < sigmoid(z)
        drivers = {"is_click": y[0], "is_like": y[1], "quality": lat.video_quality[v]}
        minor = np.stack([b + sum(w * drivers[k] for k, w in ws.items()) for b, ws in MINOR_LABELS.values()])
        video[rows], labels[:3, rows] = v, y
        labels[3:, rows] = rng.random((len(MINOR_LABELS), n)) < sigmoid(minor)
        np.add.at(click_tag, (u, t), y[0])
        np.add.at(like_tag, (u, t), y[1])
        _push(rings, pointer, 0, u[y[1]], a[y[1]])
        _push(rings, pointer, 1, u[y[2]], a[y[2]])
    return log_columns(lat, rng, user_start + user, video, labels, tab, request, offset, logged_hour)


def log_columns(lat: KuaiRandLatents, rng, user, video, labels, tab, request, offset, logged_hour) -> dict:
    """The log's columns ({name: int64 array}, plus ``late``) from the simulated exposures: raw ``user`` ids,
    ``video`` indices, ``labels [len(LABELS), rows]`` and the requests' ``tab``, ``offset`` and ``logged_hour``
    (indexed by ``request``); play and stay times are drawn to agree with the labels."""
    n_rows = len(video)
    columns = dict(zip(LABELS, labels, strict=True))
    duration = lat.video_duration_ms[video]
    threshold = np.minimum(duration, LONG_VIEW_MS)
    watched = rng.random(n_rows)
    long_play = threshold + watched * 1.2 * np.maximum(duration - threshold, 0)
    comment_open = (columns["is_comment"] == 1) | (rng.random(n_rows) < 0.02)
    stays = rng.geometric(1 / 30, (2, n_rows))
    columns.update(
        user_id=user,
        video_id=video,
        date=DATE_INTS[logged_hour[request] // 24],
        hourmin=logged_hour[request] % 24 * 100,
        time_ms=START_MS + offset[request],
        play_time_ms=np.where(columns["long_view"] == 1, long_play, watched * 0.95 * threshold).astype(np.int64),
        duration_ms=duration,
        profile_stay_time=np.where(columns["is_profile_enter"] == 1, stays[0], 0),
        comment_stay_time=np.where(comment_open, stays[1], 0),
        is_rand=np.zeros(n_rows, np.int64),
        tab=tab[request],
        late=(logged_hour != offset // 3_600_000)[request],
    )
    return columns


def _multitask_planted(lat: KuaiRandLatents) -> dict:
    """The parameters of the equations in the module docstring."""
    return {
        "biases": dict(zip(TASKS, lat.biases.tolist(), strict=True)),
        "static_rates": dict(zip(TASKS, STATIC_RATES, strict=True)),
        "weights": WEIGHTS,
        "noise_weight": NOISE_WEIGHT,
        "minor_labels": {label: {"bias": b, **w} for label, (b, w) in MINOR_LABELS.items()},
        "interaction_user_column": "onehot_feat1",
        "interaction": lat.interaction.tolist(),  # X [onehot_feat1][primary tag]
        "long_interaction": lat.long_interaction.tolist(),  # Y, the same layout
        "interaction_rank": INTERACTION_RANK,
        "tab_effect": {int(t): float(e) for t, e in zip(TABS, TAB_EFFECT, strict=True)},
        "hour_amplitude": HOUR_AMPLITUDE,
        "hour_peak": HOUR_PEAK,
        "user_bias_sd": USER_BIAS_SD,
        "ring": RING,
        "p_from_history": P_FROM_HISTORY,
        "long_view_ms": LONG_VIEW_MS,
        "duration_median_ms": DURATION_MEDIAN_MS,
        "duration_log_sd": DURATION_LOG_SD,
        "log_delay_ms": LOG_DELAY_MS,
        "start": "2022-04-08T00:00:00+08:00",
        "days": DAYS,
    }


@dataclass(frozen=True)
class LogProfile:
    """What a generated log plants: how its exposures are simulated (``simulate(lat, rng, user_start, n_users,
    n_rows)`` -> ``log_columns``), its mean rows per user and the facts ``planted(lat)`` reports."""

    simulate: Callable[..., dict]
    events_per_user: int
    planted: Callable[[KuaiRandLatents], dict]


MULTITASK = LogProfile(_simulate_log, EVENTS_PER_USER, _multitask_planted)
