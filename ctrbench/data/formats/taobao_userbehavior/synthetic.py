"""Seeded synthetic data in the Tianchi ``UserBehavior.csv`` layout, with a planted sequential signal.

Each line is ``user_id,item_id,category_id,behavior_type,timestamp`` (no header), so the file goes
through exactly the reader and sample builder real data goes through
(``ctrbench.data.formats.taobao_userbehavior.preprocess``). The generative model, per user and event step ``s``:

- the user has ``N_FAVORITES`` long-term favourite categories (drawn from the global category
  popularity): a weak *static* signal;
- with probability ``COPY_PROB`` (once there is a previous event) the event *copies* the category
  of one of the user's earlier events, at lag ``l`` in ``1..min(s, MAX_LAG)`` with probability
  proportional to ``exp(-l / LAG_TAU)``: the effect of an event decays with how long ago it was;
  with probability ``COPY_ITEM_PROB`` it revisits that event's very item, otherwise it draws an
  item of that category;
- otherwise the category is fresh: one of the favourites with probability ``FAVORITE_PROB``,
  else a draw from the global Zipf(``CATEGORY_ZIPF``) popularity;
- items within a category follow a Zipf(``ITEM_ZIPF``) popularity;
- behaviours are pv / cart / fav / buy with probabilities ``BEHAVIOR_P``;
- timestamps increase per user (sorted uniform seconds) over ``DAYS`` local days from
  2017-11-25 00:00 UTC+8, so every day has events (and ties in a second do happen).

A model that reads the behaviour history can see which categories the user touched *recently*;
a static model only sees the user's overall taste. Sizes scale with ``rows``: about
``EVENTS_PER_USER`` events per user, ``rows // 40`` items (a few thousand at 100k-200k rows) and
``~sqrt(rows) / 8`` categories.

Bytes depend only on ``(rows, seed)``: parameters come from one seeded generator and each chunk
of ``CHUNK_USERS`` users from its own generator keyed by ``(seed, chunk index)``; memory is
bounded by one chunk (steps are a loop, vectorised across the chunk's users).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.taobao_userbehavior.reader import BEHAVIORS, COLUMNS

CHUNK_USERS = 8192  # part of the format: changing it changes the bytes for a given seed
EVENTS_PER_USER = 20
EVENTS_SIGMA = 0.6  # log-normal spread of the events per user
START = 1511539200  # 2017-11-25 00:00:00 UTC+8
DAYS = 9
BEHAVIOR_P = (0.89, 0.055, 0.03, 0.025)
COPY_PROB = 0.6
COPY_ITEM_PROB = 0.3
LAG_TAU = 2.0
MAX_LAG = 20
N_FAVORITES = 3
FAVORITE_PROB = 0.5
CATEGORY_ZIPF = 1.0
ITEM_ZIPF = 1.1
ID_SPACE = 5_200_000  # raw ids look like the real file's (up to ~5.2M)


def synthetic_sizes(rows: int) -> dict[str, int]:
    """Users, items and categories for a file of ``rows`` events."""
    categories = int(np.clip(round(np.sqrt(rows) / 8), 4, 5000))
    return {
        "users": max(1, rows // EVENTS_PER_USER),
        "items": max(2 * categories, rows // 40),
        "categories": categories,
    }


def _zipf_rank(u: np.ndarray, n: np.ndarray, s: float) -> np.ndarray:
    """0-based ranks in ``[0, n)``, P(rank r) ~ (r + 1)^-s (continuous inverse CDF, vectorised over n)."""
    a = 1.0 - s
    r = ((np.power(n + 1.0, a) - 1.0) * u + 1.0) ** (1.0 / a)
    return np.minimum(np.floor(r).astype(np.int64) - 1, n - 1)


class _Params:
    def __init__(self, rows: int, seed: int):
        rng = np.random.default_rng([seed, 0])
        sizes = synthetic_sizes(rows)
        self.n_users, self.n_items, self.n_categories = sizes["users"], sizes["items"], sizes["categories"]
        space = max(ID_SPACE, 4 * max(self.n_users, self.n_items, self.n_categories))
        self.user_ids = rng.choice(space, self.n_users, replace=False) + 1
        self.item_ids = rng.choice(space, self.n_items, replace=False) + 1
        self.category_ids = rng.choice(space, self.n_categories, replace=False) + 1
        # items in contiguous blocks per category, at least one each, sizes uneven
        extra = rng.multinomial(self.n_items - self.n_categories, rng.dirichlet(np.full(self.n_categories, 2.0)))
        self.category_size = 1 + extra
        self.category_offset = np.concatenate([[0], np.cumsum(self.category_size)[:-1]])
        p = 1.0 / np.arange(1, self.n_categories + 1) ** CATEGORY_ZIPF
        p = p[rng.permutation(self.n_categories)]  # popularity not tied to the id order
        self.category_cdf = np.cumsum(p / p.sum())
        w = np.exp(-np.arange(1, MAX_LAG + 1) / LAG_TAU)
        self.lag_cdf = np.cumsum(w)  # unnormalised; truncated per step

    def category_draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        c = np.searchsorted(self.category_cdf, rng.random(n), side="right")
        return np.minimum(c, self.n_categories - 1)

    def item_draw(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        rank = _zipf_rank(rng.random(len(category)), self.category_size[category], ITEM_ZIPF)
        return self.category_offset[category] + rank


def _chunk(params: _Params, rng: np.random.Generator, n_users: int, rows: int):
    """Events of ``n_users`` users, ``rows`` in all: (user index [rows], item, category, behaviour, ts)."""
    weights = rng.lognormal(0.0, EVENTS_SIGMA, n_users)
    counts = 1 + rng.multinomial(rows - n_users, weights / weights.sum())
    steps = int(counts.max())
    favorites = params.category_draw(rng, n_users * N_FAVORITES).reshape(n_users, N_FAVORITES)
    cat = np.zeros((n_users, steps), np.int64)
    item = np.zeros((n_users, steps), np.int64)
    for s in range(steps):
        a = np.flatnonzero(counts > s)  # users with an event at step s: each has exactly s earlier ones
        n = len(a)
        fresh = np.where(
            rng.random(n) < FAVORITE_PROB,
            favorites[a, rng.integers(0, N_FAVORITES, n)],
            params.category_draw(rng, n),
        )
        c = fresh
        it = params.item_draw(rng, fresh)
        if s >= 1:
            m = min(s, MAX_LAG)
            lag = 1 + np.searchsorted(params.lag_cdf[:m], rng.random(n) * params.lag_cdf[m - 1], side="right")
            lag = np.minimum(lag, m)
            src = s - lag
            copy = rng.random(n) < COPY_PROB
            copied_cat = cat[a, src]
            same_item = rng.random(n) < COPY_ITEM_PROB
            copied_item = np.where(same_item, item[a, src], params.item_draw(rng, copied_cat))
            c = np.where(copy, copied_cat, fresh)
            it = np.where(copy, copied_item, it)
        cat[a, s] = c
        item[a, s] = it
    present = np.arange(steps) < counts[:, None]
    span = DAYS * 86400
    ts = np.where(present, rng.integers(0, span, (n_users, steps)), span)
    ts.sort(axis=1)  # increasing per user; absent steps (= span) sort last
    behavior = rng.choice(len(BEHAVIORS), size=(n_users, steps), p=BEHAVIOR_P)
    user = np.broadcast_to(np.arange(n_users)[:, None], (n_users, steps))
    return user[present], item[present], cat[present], behavior[present], START + ts[present]


def write_synthetic_userbehavior(path: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``rows`` events in the UserBehavior CSV layout (no header) to ``path``.

    Returns facts: ``rows``, ``users``, ``items``, ``categories`` (the planted universe),
    ``distinct_items`` (items that occur), ``bytes``, ``seed`` and the planted parameters.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    params = _Params(rows, seed)
    path = Path(path)
    schema = pa.schema(
        [
            (COLUMNS[0], pa.int64()),
            (COLUMNS[1], pa.int64()),
            (COLUMNS[2], pa.int64()),
            (COLUMNS[3], pa.string()),
            (COLUMNS[4], pa.int64()),
        ]
    )
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    tokens = pa.array(BEHAVIORS)
    seen_items = np.zeros(params.n_items, bool)
    behavior_counts = np.zeros(len(BEHAVIORS), np.int64)
    # every user gets rows // users events on average, the first rows % users one more (before the
    # per-user spread inside a chunk): rows per chunk from that
    base, rem = divmod(rows, params.n_users)
    chunk_starts = np.arange(0, params.n_users, CHUNK_USERS)
    bounds = np.append(chunk_starts, params.n_users)
    cum = bounds * base + np.minimum(bounds, rem)
    chunk_users, chunk_rows = np.diff(bounds), np.diff(cum)
    with atomic_path(path) as temp, pa_csv.CSVWriter(str(temp), schema, write_options=options) as writer:
        for k, (start, n_users, n_rows) in enumerate(zip(chunk_starts, chunk_users, chunk_rows)):
            user, item, cat, behavior, ts = _chunk(
                params, np.random.default_rng([seed, 1, k]), int(n_users), int(n_rows)
            )
            seen_items[item] = True
            behavior_counts += np.bincount(behavior, minlength=len(BEHAVIORS))
            table = pa.table(
                [
                    pa.array(params.user_ids[start + user]),
                    pa.array(params.item_ids[item]),
                    pa.array(params.category_ids[cat]),
                    tokens.take(pa.array(behavior)),
                    pa.array(ts),
                ],
                schema=schema,
            )
            writer.write_table(table)
    return {
        "rows": rows,
        "users": params.n_users,
        "items": params.n_items,
        "categories": params.n_categories,
        "distinct_items": int(seen_items.sum()),
        "behavior_rates": {b: int(n) / rows for b, n in zip(BEHAVIORS, behavior_counts)},
        "bytes": path.stat().st_size,
        "seed": seed,
        "planted": {
            "copy_prob": COPY_PROB,
            "copy_item_prob": COPY_ITEM_PROB,
            "lag_tau": LAG_TAU,
            "max_lag": MAX_LAG,
            "favorites": N_FAVORITES,
            "favorite_prob": FAVORITE_PROB,
            "category_zipf": CATEGORY_ZIPF,
            "item_zipf": ITEM_ZIPF,
            "start": "2017-11-25T00:00:00+08:00",
            "days": DAYS,
        },
    }
