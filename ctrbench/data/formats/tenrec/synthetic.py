"""Seeded synthetic data in the Tenrec video CSV layout (``reader``), with signals planted in the histories.

The file has the real header and value styles (``\\N`` for missing video categories, genders, ages and play
counts), so it goes through exactly the reader and preprocessing real data goes through. Each user's rows are
in order, but the rows of a chunk's users are interleaved (step by step), so a user's rows are not contiguous.

Generative model, per user and step (vectorised across a chunk's users; ``c`` the shown video's category,
``q`` its quality ~ N(0, ITEM_STD^2); ``L_b[u, c]`` the user's decayed count of earlier behaviour ``b`` on
category ``c``, multiplied by ``DECAY`` at each of the user's steps)::

    interest switches with prob. SWITCH_P (and at step 0) to one of the user's N_FAVORITES categories
    (prob. FAVORITE_PROB) or a popular one; the shown category is the interest with prob. EXPOSE_INTEREST;
    click  ~ B(sigmoid(CLICK_BIAS  + q + INTEREST_W * [c = interest]))
    like   ~ B(sigmoid(LIKE_BIAS   + q + CLICK_TO_LIKE * click   + LIKE_HISTORY_W   * min(L_like[u, c], 1)))
    follow ~ B(sigmoid(FOLLOW_BIAS +     CLICK_TO_FOLLOW * click + FOLLOW_HISTORY_W * min(L_follow[u, c], 1)))
    share  ~ B(sigmoid(SHARE_BIAS  +     LIKE_TO_SHARE * like    + SHARE_HISTORY_W  * min(L_share[u, c], 1)))

The interest is hidden: the user's recent clicks reveal it (their categories), so the click history predicts
the next clicks beyond any static user or item feature; likes, follows and shares repeat on the categories of
the user's own earlier likes, follows and shares. Like, follow and share can happen without a click.
``watching_times`` is ``Geometric(PLAYS_P)`` after a click, else 0.

Bytes depend only on ``(rows, seed)``: parameters from one seeded generator, each chunk of ``CHUNK_USERS`` users
from its own generator keyed by ``(seed, chunk index)``; memory is bounded by one chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.tenrec.reader import BEHAVIORS, COLUMNS, NULL_TOKEN

CHUNK_USERS = 4096  # part of the format: changing it changes the bytes for a given seed
ROWS_PER_USER = 40
ROWS_SIGMA = 0.7  # log-normal spread of the rows per user
N_FAVORITES, FAVORITE_PROB, SWITCH_P, EXPOSE_INTEREST = 3, 0.7, 0.08, 0.5
ITEM_STD, INTEREST_W, DECAY = 0.5, 2.0, 0.9
CLICK_BIAS, LIKE_BIAS, FOLLOW_BIAS, SHARE_BIAS = -2.2, -4.3, -5.0, -4.4
CLICK_TO_LIKE, CLICK_TO_FOLLOW, LIKE_TO_SHARE = 1.5, 1.5, 1.5
LIKE_HISTORY_W, FOLLOW_HISTORY_W, SHARE_HISTORY_W = 2.5, 3.0, 3.0
PLAYS_P = 0.6
MISSING_SHARE = {"video_category": 0.03, "gender": 0.05, "age": 0.05, "watching_times": 0.02}
ID_SPACE = 5_000_000


def synthetic_sizes(rows: int) -> dict[str, int]:
    """Users, items and categories for a file of ``rows`` rows."""
    return {
        "users": max(1, rows // ROWS_PER_USER),
        "items": max(50, rows // 30),
        "categories": int(np.clip(round(np.sqrt(rows) / 6), 6, 60)),
    }


class _Params:
    def __init__(self, rows: int, seed: int):
        rng = np.random.default_rng([seed, 30])
        sizes = synthetic_sizes(rows)
        self.n_users, self.n_items, self.n_categories = sizes["users"], sizes["items"], sizes["categories"]
        self.user_ids = rng.choice(ID_SPACE, self.n_users, replace=False) + 1
        self.item_ids = rng.choice(ID_SPACE, self.n_items, replace=False) + 1
        self.category_codes = rng.choice(200, self.n_categories, replace=False)
        item_category = np.concatenate(
            [np.arange(self.n_categories), rng.integers(0, self.n_categories, self.n_items - self.n_categories)]
        )
        self.by_category = np.argsort(item_category, kind="stable")  # item indices, category-major
        self.category_start = np.searchsorted(item_category[self.by_category], np.arange(self.n_categories + 1))
        self.item_category = item_category
        self.item_quality = rng.normal(0.0, ITEM_STD, self.n_items)
        self.category_hidden = rng.random(self.n_items) < MISSING_SHARE["video_category"]  # written as \N
        popularity = 1.0 / np.arange(1, self.n_categories + 1)
        self.category_cdf = np.cumsum(popularity / popularity.sum())
        self.gender = rng.integers(0, 3, self.n_users)
        self.age = rng.integers(1, 9, self.n_users)
        self.gender_hidden = rng.random(self.n_users) < MISSING_SHARE["gender"]
        self.age_hidden = rng.random(self.n_users) < MISSING_SHARE["age"]

    def popular_category(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.category_cdf, rng.random(n), side="right"), self.n_categories - 1)

    def item_of(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        """An item of each category, Zipf-like within it."""
        start, size = self.category_start[category], np.diff(self.category_start)[category]
        rank = np.minimum((size * rng.random(len(category)) ** 2).astype(np.int64), size - 1)
        return self.by_category[start + rank]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _chunk(params: _Params, rng: np.random.Generator, n_users: int, rows: int):
    """Rows of ``n_users`` users (``rows`` in all) in file order: (user index, item index, labels [rows, 4] in
    ``BEHAVIORS`` order)."""
    weights = rng.lognormal(0.0, ROWS_SIGMA, n_users)
    counts = 1 + rng.multinomial(rows - n_users, weights / weights.sum())
    steps = int(counts.max())
    favorites = params.popular_category(rng, n_users * N_FAVORITES).reshape(n_users, N_FAVORITES)
    interest = np.zeros(n_users, np.int64)
    scores = {b: np.zeros((n_users, params.n_categories)) for b in ("like", "follow", "share")}
    item = np.zeros((n_users, steps), np.int64)
    labels = np.zeros((n_users, steps, len(BEHAVIORS)), np.int8)
    for s in range(steps):
        a = np.flatnonzero(counts > s)
        n = len(a)
        switch = (rng.random(n) < SWITCH_P) | (s == 0)
        fresh = np.where(
            rng.random(n) < FAVORITE_PROB,
            favorites[a, rng.integers(0, N_FAVORITES, n)],
            params.popular_category(rng, n),
        )
        interest[a] = np.where(switch, fresh, interest[a])
        shown = np.where(rng.random(n) < EXPOSE_INTEREST, interest[a], params.popular_category(rng, n))
        it = params.item_of(rng, shown)
        quality = params.item_quality[it]
        past = {b: np.minimum(scores[b][a, shown], 1.0) for b in scores}
        click = rng.random(n) < _sigmoid(CLICK_BIAS + quality + INTEREST_W * (shown == interest[a]))
        like = rng.random(n) < _sigmoid(LIKE_BIAS + quality + CLICK_TO_LIKE * click + LIKE_HISTORY_W * past["like"])
        follow = rng.random(n) < _sigmoid(FOLLOW_BIAS + CLICK_TO_FOLLOW * click + FOLLOW_HISTORY_W * past["follow"])
        share = rng.random(n) < _sigmoid(SHARE_BIAS + LIKE_TO_SHARE * like + SHARE_HISTORY_W * past["share"])
        for b, happened in (("like", like), ("follow", follow), ("share", share)):
            scores[b][a] *= DECAY
            scores[b][a, shown] += happened
        item[a, s] = it
        labels[a, s] = np.stack(
            [{"click": click, "like": like, "follow": follow, "share": share}[b] for b in BEHAVIORS], axis=1
        )
    present = np.arange(steps) < counts[:, None]
    user = np.broadcast_to(np.arange(n_users)[:, None], (n_users, steps))[present]
    step = np.broadcast_to(np.arange(steps), (n_users, steps))[present]
    order = np.lexsort((rng.random(len(user)), step))  # interleave users, each one's rows in order
    return user[order], item[present][order], labels[present][order]


def _text(values: np.ndarray, hidden: np.ndarray | None = None) -> pa.Array:
    text = pa.array(values).cast(pa.string())
    return text if hidden is None else pc.if_else(pa.array(hidden), NULL_TOKEN.decode(), text)


def write_synthetic_tenrec(path: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``rows`` rows in the Tenrec video CSV layout (header first) to ``path``.

    Returns facts: ``rows``, ``users``, ``items``, ``categories``, the rate of each behaviour, the ``\\N``
    counts per column, ``bytes``, ``seed`` and the planted parameters.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    params = _Params(rows, seed)
    path = Path(path)
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    base, rem = divmod(rows, params.n_users)  # rows per user before the spread inside a chunk
    bounds = np.append(np.arange(0, params.n_users, CHUNK_USERS), params.n_users)
    cum = bounds * base + np.minimum(bounds, rem)
    positives = np.zeros(len(BEHAVIORS), np.int64)
    missing = dict.fromkeys(MISSING_SHARE, 0)
    with atomic_path(path) as temp:
        temp.write_bytes((",".join(COLUMNS) + "\n").encode())
        with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
            for k in range(len(bounds) - 1):
                rng = np.random.default_rng([seed, 31, k])
                user, item, labels = _chunk(params, rng, int(bounds[k + 1] - bounds[k]), int(cum[k + 1] - cum[k]))
                user += bounds[k]
                click = labels[:, BEHAVIORS.index("click")]
                plays = np.where(click == 1, rng.geometric(PLAYS_P, len(user)), 0)
                hidden = {
                    "video_category": params.category_hidden[item],
                    "gender": params.gender_hidden[user],
                    "age": params.age_hidden[user],
                    "watching_times": rng.random(len(user)) < MISSING_SHARE["watching_times"],
                }
                columns = {
                    "user_id": _text(params.user_ids[user]),
                    "item_id": _text(params.item_ids[item]),
                    **{b: _text(labels[:, j]) for j, b in enumerate(BEHAVIORS)},
                    "video_category": _text(
                        params.category_codes[params.item_category[item]], hidden["video_category"]
                    ),
                    "watching_times": _text(plays, hidden["watching_times"]),
                    "gender": _text(params.gender[user], hidden["gender"]),
                    "age": _text(params.age[user], hidden["age"]),
                }
                writer.write_table(pa.table([columns[c] for c in COLUMNS], schema=schema))
                positives += labels.sum(axis=0)
                for name, flags in hidden.items():
                    missing[name] += int(flags.sum())
    return {
        "rows": rows,
        "users": params.n_users,
        "items": params.n_items,
        "categories": params.n_categories,
        "rates": {b: int(n) / rows for b, n in zip(BEHAVIORS, positives)},
        "missing": missing,
        "bytes": path.stat().st_size,
        "seed": seed,
        "planted": {
            "interest_w": INTEREST_W,
            "switch_p": SWITCH_P,
            "expose_interest": EXPOSE_INTEREST,
            "decay": DECAY,
            "like_history_w": LIKE_HISTORY_W,
            "follow_history_w": FOLLOW_HISTORY_W,
            "share_history_w": SHARE_HISTORY_W,
            "click_to_like": CLICK_TO_LIKE,
            "click_to_follow": CLICK_TO_FOLLOW,
            "like_to_share": LIKE_TO_SHARE,
        },
    }


__all__ = ["synthetic_sizes", "write_synthetic_tenrec"]
