"""Seeded synthetic data in the AliExpress multi-task CSV layout (``reader``), with a planted two-task signal.

``write_synthetic_aliexpress`` writes ``train.csv`` and ``test.csv`` into a directory, header and value styles as
in the release (integers for ``search_id``, the categoricals and the labels; numericals in [0, 1] with at most 6
decimals, whole numbers as ``1.0``, ``numerical_58..60`` always ``0``), so the files go through exactly the
reader real data goes through. Each search shows ``1 + Geometric`` items; its rows share the query side
(``categorical_1..9``, ``numerical_1..23`` and ``58..60``, as in the real sample) and lie scattered over the chunk.

Planted signal, per row (query q, item i; ``c_k`` the ``categorical_k`` code, ``x_k`` ``numerical_k``)::

    click logit      = b_click + A[c7(q), c10(i) + 2 c11(i)] + CLICK_QUALITY * (x24(i) - 0.5) + QUERY_STD * z(q)
    purchase logit   = b_buy + B[c5(q), c12(i) + 2 c13(i)] + BUY_PRICE * (0.5 - x30(i))
    click ~ Bernoulli(sigmoid(click logit));  conversion = click * Bernoulli(sigmoid(purchase logit))

``A`` and ``B`` are seeded tables with entries ~ N(0, INTERACTION_STD^2); ``z(q)`` ~ N(0, 1) is a per-search
effect that also shifts ``x1(q) = sigmoid(z(q))`` (so it is observable). The tasks are related (conversion only
where click, and both depend on the query) but not the same (different interactions and item features), and
``b_click``, ``b_buy`` are solved for the rates ``CLICK_RATE`` and ``PURCHASE_RATE`` (conversion | click). The
bytes depend only on ``(rows, seed)``: parameters from one seeded generator, each chunk of
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
from ctrbench.data.formats.aliexpress.preprocess import SPLIT_FILES
from ctrbench.data.formats.aliexpress.reader import CATEGORICAL, COLUMNS, GROUP, NUMERICAL

SYNTHETIC_CHUNK_ROWS = 65_536  # part of the format: changing it changes the bytes for a given seed
SYNTHETIC_TEST_SHARE = 0.2
# codes per categorical field: the query side (1..9) then the item side (10..16), about the sample's ranges
CARDINALITY = (8, 4, 7, 2, 19, 5, 50, 8, 7, 2, 2, 2, 2, 2, 2, 2)
QUERY_CATEGORICAL = 9  # categorical_1..9 are constant within a search
QUERY_NUMERICAL = [*range(23), 57, 58, 59]  # numerical_1..23 and 58..60 (0-based)
ZERO_NUMERICAL = (57, 58, 59)  # numerical_58..60: written "0" in the release
ITEMS_PER_SEARCH_P = 0.3  # items of a search: 1 + Geometric(p) - 1, mean 1 / p
INTERACTION_STD = 1.0
CLICK_QUALITY = 2.0
BUY_PRICE = 2.5
QUERY_STD = 0.5
CLICK_RATE = 0.15
PURCHASE_RATE = 0.25  # conversion rate among clicks


@dataclass
class _Params:
    click_table: np.ndarray  # A [c7, 4]
    buy_table: np.ndarray  # B [c5, 4]
    code_p: list[np.ndarray]  # per field, the distribution of its codes
    click_bias: float = 0.0
    buy_bias: float = 0.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_bias(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection: mean sigmoid(logit + b) = rate
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < rate else (lo, mid)
    return (lo + hi) / 2


def _make_params(seed: int) -> _Params:
    rng = np.random.default_rng([seed, 20])
    code_p = [rng.dirichlet(np.full(k, 1.0)) for k in CARDINALITY]
    params = _Params(
        click_table=rng.normal(0, INTERACTION_STD, (CARDINALITY[6], 4)),
        buy_table=rng.normal(0, INTERACTION_STD, (CARDINALITY[4], 4)),
        code_p=code_p,
    )
    codes, numbers, z = _draw(params, np.random.default_rng([seed, 21]), 20_000)[1:]
    click_logit, buy_logit = _logits(params, codes, numbers, z)
    params.click_bias = _solve_bias(click_logit, CLICK_RATE)
    params.buy_bias = _solve_bias(buy_logit, PURCHASE_RATE)
    return params


def _draw(params: _Params, rng: np.random.Generator, n: int):
    """(search index [n], codes [n, 16], numericals [n, 63], query effect z [n]); rows of a search scattered."""
    k = rng.geometric(ITEMS_PER_SEARCH_P, n)  # more searches than needed; the first n rows are kept
    search = np.repeat(np.arange(n), k)[:n]
    n_search = int(search[-1]) + 1
    codes = np.empty((n, len(CARDINALITY)), np.int64)
    for f, p in enumerate(params.code_p):
        draw = np.searchsorted(np.cumsum(p), rng.random(n_search if f < QUERY_CATEGORICAL else n), side="right")
        draw = np.minimum(draw, len(p) - 1)
        codes[:, f] = draw[search] if f < QUERY_CATEGORICAL else draw
    z = rng.normal(size=n_search)
    numbers = rng.beta(0.8, 1.6, (n, len(NUMERICAL)))
    numbers[rng.random((n, len(NUMERICAL))) < 0.15] = 0.0  # many exact zeros, as in the release
    query = rng.beta(0.8, 1.6, (n_search, len(QUERY_NUMERICAL)))
    query[:, 0] = _sigmoid(z)  # numerical_1 reveals the search's effect
    numbers[:, QUERY_NUMERICAL] = query[search]
    numbers[:, ZERO_NUMERICAL] = 0.0
    order = rng.permutation(n)  # a search's rows are not contiguous
    return search[order], codes[order], numbers[order], z[search][order]


def _logits(params: _Params, codes: np.ndarray, numbers: np.ndarray, z: np.ndarray):
    click = (
        params.click_table[codes[:, 6], codes[:, 9] + 2 * codes[:, 10]]
        + CLICK_QUALITY * (numbers[:, 23] - 0.5)
        + QUERY_STD * z
    )
    buy = params.buy_table[codes[:, 4], codes[:, 11] + 2 * codes[:, 12]] + BUY_PRICE * (0.5 - numbers[:, 29])
    return click, buy


def _decimal_text(values: np.ndarray) -> pa.Array:
    """6-decimal floats in their shortest form, whole numbers with ``.0`` (``1.0``), as the release writes them."""
    text = pa.array(np.round(values, 6)).cast(pa.string())
    return pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, pa.scalar("0"), "."))


def _chunk_table(params: _Params, rng: np.random.Generator, n: int, first_search: int) -> tuple[pa.Table, dict]:
    search, codes, numbers, z = _draw(params, rng, n)
    click_logit, buy_logit = _logits(params, codes, numbers, z)
    click = rng.random(n) < _sigmoid(click_logit + params.click_bias)
    conversion = click & (rng.random(n) < _sigmoid(buy_logit + params.buy_bias))
    columns = {GROUP: pa.array(first_search + search).cast(pa.string())}
    for f, name in enumerate(CATEGORICAL):
        columns[name] = pa.array(codes[:, f]).cast(pa.string())
    for j, name in enumerate(NUMERICAL):
        columns[name] = (
            pa.array(np.zeros(n, np.int64)).cast(pa.string()) if j in ZERO_NUMERICAL else _decimal_text(numbers[:, j])
        )
    columns["click"] = pa.array(click.astype(np.int64)).cast(pa.string())
    columns["conversion"] = pa.array(conversion.astype(np.int64)).cast(pa.string())
    counts = {"clicks": int(click.sum()), "conversions": int(conversion.sum()), "searches": int(np.unique(search).size)}
    return pa.table([columns[c] for c in COLUMNS], names=COLUMNS), counts


def write_synthetic_aliexpress(directory: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``train.csv`` and ``test.csv`` in the AliExpress multi-task layout into ``directory``.

    ``rows`` in all: ``round(rows * SYNTHETIC_TEST_SHARE)`` (at least 1) go to test.csv, the rest to train.csv.
    Returns facts: rows per file, clicks, conversions, searches, the planted parameters. Memory is bounded by one
    chunk of ``SYNTHETIC_CHUNK_ROWS`` rows.
    """
    if rows < 2:
        raise ValueError(f"rows must be >= 2 (train and test both need a row), got {rows}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = _make_params(seed)
    test_rows = max(1, round(rows * SYNTHETIC_TEST_SHARE))
    sizes = {"train": rows - test_rows, "gold": test_rows}
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    facts: dict = {"rows": rows, "seed": seed, "files": {}}
    for stream, (key, n_rows) in enumerate(sizes.items()):
        path = directory / SPLIT_FILES[key]
        totals = {"rows": n_rows, "clicks": 0, "conversions": 0, "searches": 0}
        with atomic_path(path) as temp:
            temp.write_bytes((",".join(COLUMNS) + "\n").encode())
            with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
                for chunk, start in enumerate(range(0, n_rows, SYNTHETIC_CHUNK_ROWS)):
                    n = min(SYNTHETIC_CHUNK_ROWS, n_rows - start)
                    rng = np.random.default_rng([seed, 22, stream, chunk])
                    table, counts = _chunk_table(params, rng, n, first_search=1 + start)
                    writer.write_table(table)
                    for k, v in counts.items():
                        totals[k] += v
        facts["files"][SPLIT_FILES[key]] = {**totals, "bytes": path.stat().st_size}
    clicks = sum(f["clicks"] for f in facts["files"].values())
    facts["click_rate"] = clicks / rows
    facts["conversion_rate"] = sum(f["conversions"] for f in facts["files"].values()) / rows
    facts["planted"] = {
        "click_rate": CLICK_RATE,
        "purchase_rate_given_click": PURCHASE_RATE,
        "interaction_std": INTERACTION_STD,
        "click_quality": CLICK_QUALITY,
        "buy_price": BUY_PRICE,
        "query_std": QUERY_STD,
        "items_per_search_p": ITEMS_PER_SEARCH_P,
    }
    return facts


__all__ = ["write_synthetic_aliexpress"]
