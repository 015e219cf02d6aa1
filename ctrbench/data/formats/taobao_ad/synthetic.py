"""Seeded synthetic data in the TaobaoAd_x1 CSV layout (``reader``), with a planted, learnable signal.

``write_synthetic_taobao_ad`` writes ``train.csv`` and ``test.csv`` into a directory, so the files go through exactly
the reader and preprocessing that real data goes through. Users have a profile (sometimes missing, fields often
empty) and a favourite category; items have a category, an effect and a Zipf-like popularity; a row's
click_sequence is mostly items of the user's favourite category (empty for a quarter of the rows). The label is
``Bernoulli(sigmoid(logit))`` with ``logit = bias + item effect + FAVOURITE_WEIGHT * [item in the user's favourite
category] + IN_HISTORY_WEIGHT * [item among the row's click_sequence]``; ``bias`` is solved for a label rate of
``SYNTHETIC_LABEL_RATE``.

The bytes depend only on ``(rows, seed)``: parameters come from one seeded generator, and each chunk of
``SYNTHETIC_CHUNK_ROWS`` rows from its own generator keyed by ``(seed, file, chunk index)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.taobao_ad.preprocess import SPLIT_FILES
from ctrbench.data.formats.taobao_ad.reader import (
    COLUMNS,
    HEADER,
    ITEM,
    LABEL,
    PRICE,
    SEQUENCE,
    SEQUENCE_SEPARATOR,
    TIME,
    USER,
)

SYNTHETIC_CHUNK_ROWS = 65_536  # part of the format: changing it changes the bytes for a given seed
SYNTHETIC_TEST_SHARE = 0.2
PIDS = ("430548_1007", "430539_1007")
_DAY = 86_400
_TRAIN_START = 1494028800  # 2017-05-06 00:00:00 (UTC clock, as written)
_TEST_START = _TRAIN_START + 7 * _DAY  # 2017-05-13
FAVOURITE_WEIGHT = 1.0  # target item in the user's favourite category
IN_HISTORY_WEIGHT = 1.5  # target item among the clicked items of click_sequence
ITEM_EFFECT_STD = 0.5
SYNTHETIC_LABEL_RATE = 0.1


@dataclass
class _TaobaoParams:
    n_users: int
    n_items: int
    n_cates: int
    item_cate: np.ndarray  # [items]
    item_id: np.ndarray  # [items] adgroup ids as written
    item_campaign: np.ndarray
    item_customer: np.ndarray
    item_brand: np.ndarray  # -1 = missing
    item_price: np.ndarray  # float, 2 decimals
    item_effect: np.ndarray
    item_popularity_cdf: np.ndarray
    cate_items: np.ndarray  # item indices sorted by category
    cate_start: np.ndarray  # [cates + 1] into cate_items
    user_id: np.ndarray
    user_fav: np.ndarray  # favourite category per user
    user_profile: np.ndarray  # [users, 8] ints, -1 = missing
    bias: float = 0.0


_PROFILE_CARDINALITY = (98, 13, 2, 7, 3, 3, 2, 4)  # cms_segid .. new_user_class_level
_PROFILE_OFFSET = (0, 0, 1, 0, 1, 1, 0, 1)


def _make_taobao_params(seed: int, rows: int) -> _TaobaoParams:
    rng = np.random.default_rng([seed, 10])
    n_users = max(20, rows // 10)
    n_items = max(50, rows // 5)
    n_cates = max(5, min(300, n_items // 20))
    item_cate = np.concatenate([np.arange(n_cates), rng.integers(0, n_cates, n_items - n_cates)])
    rng.shuffle(item_cate)
    cate_items = np.argsort(item_cate, kind="stable")
    cate_start = np.searchsorted(item_cate[cate_items], np.arange(n_cates + 1))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    profile = np.stack([rng.integers(0, k, n_users) + o for k, o in zip(_PROFILE_CARDINALITY, _PROFILE_OFFSET)], axis=1)
    profile[rng.random(n_users) < 0.08] = -1  # users without a profile (as in the sample)
    profile[rng.random(n_users) < 0.5, 4] = -1  # pvalue_level often missing
    profile[rng.random(n_users) < 0.7, 7] = -1  # new_user_class_level mostly missing
    brand = rng.integers(1, 500_000, n_items)
    brand[rng.random(n_items) < 0.25] = -1
    params = _TaobaoParams(
        n_users=n_users,
        n_items=n_items,
        n_cates=n_cates,
        item_cate=item_cate,
        item_id=rng.choice(np.arange(1, 850_000), n_items, replace=False),
        item_campaign=rng.integers(1, 420_000, n_items),
        item_customer=rng.integers(1, 260_000, n_items),
        item_brand=brand,
        item_price=np.round(np.exp(rng.normal(4.5, 1.5, n_items)), 2).clip(0.01, 99_999.99),
        item_effect=rng.normal(0.0, ITEM_EFFECT_STD, n_items),
        item_popularity_cdf=np.cumsum(popularity / popularity.sum()),
        cate_items=cate_items,
        cate_start=cate_start,
        user_id=rng.choice(np.arange(1, 1_150_000), n_users, replace=False),
        user_fav=rng.integers(0, n_cates, n_users),
        user_profile=profile,
    )
    logit = _draw_rows(params, np.random.default_rng([seed, 11]), 20_000, _TRAIN_START)[0]
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bias for the target label rate (bisection)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < SYNTHETIC_LABEL_RATE else (lo, mid)
    params.bias = (lo + hi) / 2
    return params


def _draw_rows(params: _TaobaoParams, rng: np.random.Generator, n: int, day_start: int):
    """(logit without bias, user index, item index, history offsets [n + 1], history item indices, times)."""
    user = rng.integers(0, params.n_users, n)
    # history: empty for a quarter of the rows, else 1..~60 items, mostly of the favourite category
    length = np.where(rng.random(n) < 0.25, 0, 1 + rng.geometric(0.08, n)).clip(0, 80)
    offsets = np.concatenate([[0], np.cumsum(length)])
    owner = np.repeat(user, length)
    fav = params.user_fav[owner]
    in_fav = rng.random(len(owner)) < 0.7
    span = params.cate_start[fav + 1] - params.cate_start[fav]
    fav_item = params.cate_items[params.cate_start[fav] + (rng.random(len(owner)) * span).astype(np.int64)]
    popular = np.searchsorted(params.item_popularity_cdf, rng.random(len(owner)), side="right")
    history = np.where(in_fav, fav_item, np.minimum(popular, params.n_items - 1))
    # the target: a popular item, or (30%) one the user clicked before
    item = np.minimum(np.searchsorted(params.item_popularity_cdf, rng.random(n), side="right"), params.n_items - 1)
    from_history = (rng.random(n) < 0.3) & (length > 0)
    pick = offsets[:-1] + (rng.random(n) * np.maximum(length, 1)).astype(np.int64)
    item = np.where(from_history, history[np.minimum(pick, max(len(history) - 1, 0))] if len(history) else item, item)
    # planted signal: item effect + favourite category + target among the clicked items
    row_of = np.repeat(np.arange(n), length)
    hit = np.zeros(n, bool)
    hit[row_of[history == item[row_of]]] = True
    logit = (
        params.item_effect[item]
        + FAVOURITE_WEIGHT * (params.item_cate[item] == params.user_fav[user])
        + IN_HISTORY_WEIGHT * hit
    )
    times = np.sort(day_start + rng.integers(0, _DAY, n))
    return logit, user, item, offsets, history, times


def _decimal(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=missing).cast(pa.string())


def _price_text(price: np.ndarray) -> pa.Array:
    """Shortest decimal form, with ``.0`` on whole numbers as the real files write them (``189.0``)."""
    text = pa.array(price).cast(pa.string())
    whole = pc.binary_join_element_wise(text, pa.scalar("0"), ".")
    return pc.if_else(pc.match_substring(text, "."), text, whole)


def _synthetic_table(params: _TaobaoParams, rng: np.random.Generator, n: int, day_start: int) -> tuple[pa.Table, int]:
    logit, user, item, offsets, history, times = _draw_rows(params, rng, n, day_start)
    label = (rng.random(n) < 1 / (1 + np.exp(-(logit + params.bias)))).astype(np.int8)
    profile = params.user_profile[user]
    tokens = _decimal(params.item_id[history]) if len(history) else pa.array([], pa.string())
    sequence = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), tokens), SEQUENCE_SEPARATOR)
    brand = params.item_brand[item]
    columns = {
        LABEL: _decimal(label),
        TIME: pc.strftime(pa.array(times, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S"),
        USER: _decimal(params.user_id[user]),
        ITEM: _decimal(params.item_id[item]),
        "pid": pa.array(np.array(PIDS)[rng.integers(0, len(PIDS), n)]),
        "cate_id": _decimal(params.item_cate[item] + 1),
        "campaign_id": _decimal(params.item_campaign[item]),
        "customer": _decimal(params.item_customer[item]),
        "brand": _decimal(brand, brand < 0),
        PRICE: _price_text(params.item_price[item]),
    }
    for j, name in enumerate(COLUMNS[10:18]):
        columns[name] = _decimal(profile[:, j], profile[:, j] < 0)
    columns[SEQUENCE] = sequence
    return pa.table([columns[c] for c in COLUMNS], names=COLUMNS), int(label.sum())


def write_synthetic_taobao_ad(directory: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``train.csv`` and ``test.csv`` in the TaobaoAd_x1 layout into ``directory``.

    ``rows`` in all: ``round(rows * SYNTHETIC_TEST_SHARE)`` (at least 1) go to test.csv (the day
    after the train days), the rest to train.csv. Users have a profile (sometimes missing, fields
    often empty) and a favourite category; a quarter of the rows have an empty click_sequence.
    Planted signal: ``logit = bias + item effect + FAVOURITE_WEIGHT * [item in the user's favourite
    category] + IN_HISTORY_WEIGHT * [item among the row's click_sequence]``. The bytes depend only
    on ``(rows, seed)``; memory is bounded by one chunk of ``SYNTHETIC_CHUNK_ROWS`` rows.
    """
    if rows < 2:
        raise ValueError(f"rows must be >= 2 (train and test both need a row), got {rows}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = _make_taobao_params(seed, rows)
    test_rows = max(1, round(rows * SYNTHETIC_TEST_SHARE))
    sizes = {"train": rows - test_rows, "gold": test_rows}
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    facts: dict = {"rows": rows, "seed": seed, "files": {}, "positives": 0}
    for stream, (key, n_rows) in enumerate(sizes.items()):
        path = directory / SPLIT_FILES[key]
        positives = 0
        with atomic_path(path) as temp:
            temp.write_bytes((HEADER + "\n").encode())
            with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
                for chunk, start in enumerate(range(0, n_rows, SYNTHETIC_CHUNK_ROWS)):
                    n = min(SYNTHETIC_CHUNK_ROWS, n_rows - start)
                    day = _TRAIN_START + (chunk % 7) * _DAY if key == "train" else _TEST_START
                    table, pos = _synthetic_table(params, np.random.default_rng([seed, 12, stream, chunk]), n, day)
                    writer.write_table(table)
                    positives += pos
        facts["files"][SPLIT_FILES[key]] = {"rows": n_rows, "positives": positives, "bytes": path.stat().st_size}
        facts["positives"] += positives
    facts["train_rows"], facts["test_rows"] = sizes["train"], sizes["gold"]
    facts["label_rate"] = facts["positives"] / rows
    facts["bytes"] = sum(f["bytes"] for f in facts["files"].values())
    return facts


__all__ = ["write_synthetic_taobao_ad"]
