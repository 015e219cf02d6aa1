"""Seeded synthetic data in the raw Criteo DAC layout, with a planted, learnable signal.

The file goes through exactly the reader that real data goes through (``ctrbench.data.formats.criteo_dac.reader``),
so it doubles as a pipeline test at any size and as a sanity check on models: the label is
``Bernoulli(sigmoid(logit))`` with

    logit = bias
          + sum over ADDITIVE_FIELDS of a random effect per value
          + a few linear terms in standardised log1p(dense)
          + INTERACTION_WEIGHT * sign_table[C_a value, C_b value]       (random +-1 per value pair)
          + XOR_WEIGHT * bit[C_c value] * bit[C_d value]                (random +-1 per value)

The two pairwise terms are not additive, so a model that learns feature crosses can beat a
logistic regression on one-hot features; ``bias`` is solved for a label rate of ``LABEL_RATE``.

Columns look like the real data: integer dense counts with empty (missing) fields and a few
negative values in I2, categorical values as 8 lowercase hex digits with missing fields, and
Zipf-distributed values over per-field cardinalities from 3 to 5000.

The bytes depend only on ``(rows, seed)``: parameters come from one seeded generator, and each
fixed-size chunk of rows from its own generator keyed by ``(seed, chunk index)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.criteo_dac.reader import CATEGORICAL, COLUMNS, DENSE

CHUNK_ROWS = 65_536  # part of the format: changing it changes the bytes for a given seed
LABEL_RATE = 0.25
MIN_CARDINALITY, MAX_CARDINALITY = 3, 5000
INTERACTION_WEIGHT = 1.5
XOR_WEIGHT = 1.0
ADDITIVE_STD = 0.6
N_ADDITIVE_FIELDS = 10
DENSE_WEIGHTS = {"I1": 0.5, "I5": -0.4, "I11": 0.3}
NEGATIVE_I2_RATE = 0.05

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


@dataclass
class SyntheticParams:
    """The planted generative model (everything a chunk needs besides its random draws)."""

    cardinality: np.ndarray  # [26] values per categorical field
    value_cdf: list[np.ndarray]  # per field: cumulative Zipf probabilities over its values
    cat_missing: np.ndarray  # [26] missing rate per categorical field
    tokens: list[pa.Array]  # per field: the 8-hex-digit strings of its values
    effects: dict[int, np.ndarray]  # field index -> additive effect per value
    interaction: tuple[int, int]  # field indices (a, b) of the sign-table interaction
    sign_table: np.ndarray  # [K_a, K_b] of +-1
    xor: tuple[int, int]  # field indices (c, d) of the XOR-like interaction
    xor_bits: tuple[np.ndarray, np.ndarray]  # +-1 per value of c and of d
    dense_mu: np.ndarray  # [13] log-normal location of each dense count
    dense_sigma: np.ndarray  # [13]
    dense_missing: np.ndarray  # [13]
    bias: float = 0.0


def _hex_tokens(values: np.ndarray) -> pa.Array:
    """uint32 -> 8 lowercase hex digits, vectorised through a nibble lookup."""
    be = values.astype(">u4").view(np.uint8).reshape(-1, 4)
    chars = np.empty((len(values), 8), np.uint8)
    chars[:, 0::2] = _HEX_DIGITS[be >> 4]
    chars[:, 1::2] = _HEX_DIGITS[be & 15]
    return pa.array(chars.view("S8").ravel()).cast(pa.string())


def make_params(seed: int) -> SyntheticParams:
    rng = np.random.default_rng([seed, 0])
    n_cat = len(CATEGORICAL)
    # log-spaced cardinalities 3..5000 assigned to fields in a seeded order
    ladder = np.round(np.geomspace(MIN_CARDINALITY, MAX_CARDINALITY, n_cat)).astype(np.int64)
    order = rng.permutation(n_cat)
    cardinality = np.empty(n_cat, np.int64)
    cardinality[order] = ladder
    value_cdf, tokens = [], []
    for k in cardinality:
        p = 1.0 / np.arange(1, k + 1) ** rng.uniform(0.8, 1.3)  # Zipf-like popularity
        value_cdf.append(np.cumsum(p / p.sum()))
        tokens.append(_hex_tokens(rng.choice(2**32, size=int(k), replace=False).astype(np.uint32)))
    cat_missing = np.where(rng.random(n_cat) < 0.5, 0.0, rng.uniform(0.01, 0.45, n_cat))
    # the interacting fields are the ones with 7..18 values, so a few thousand rows cover their pairs
    c, a, d, b = order[3:7]
    cat_missing[[a, b, c, d]] = 0.0
    others = np.setdiff1d(np.arange(n_cat), [a, b, c, d])
    additive = rng.choice(others, N_ADDITIVE_FIELDS, replace=False)
    effects = {int(f): rng.normal(0.0, ADDITIVE_STD, cardinality[f]) for f in sorted(additive)}
    sign_table = rng.choice([-1.0, 1.0], size=(cardinality[a], cardinality[b]))
    xor_bits = (rng.choice([-1.0, 1.0], cardinality[c]), rng.choice([-1.0, 1.0], cardinality[d]))
    params = SyntheticParams(
        cardinality=cardinality,
        value_cdf=value_cdf,
        cat_missing=cat_missing,
        tokens=tokens,
        effects=effects,
        interaction=(int(a), int(b)),
        sign_table=sign_table,
        xor=(int(c), int(d)),
        xor_bits=xor_bits,
        dense_mu=rng.uniform(0.0, 5.0, len(DENSE)),
        dense_sigma=rng.uniform(0.5, 2.0, len(DENSE)),
        dense_missing=np.where(rng.random(len(DENSE)) < 0.3, 0.0, rng.uniform(0.01, 0.45, len(DENSE))),
    )
    # solve the bias for the target label rate on a seeded calibration sample (bisection)
    logit = _sample(params, np.random.default_rng([seed, 1]), 50_000)[0]
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < LABEL_RATE else (lo, mid)
    params.bias = (lo + hi) / 2
    return params


def _sample(params: SyntheticParams, rng: np.random.Generator, n: int):
    """(logit without bias [n], dense ints [13, n], dense missing [13, n], value index [26, n], -1 = missing)."""
    n_cat = len(CATEGORICAL)
    idx = np.empty((n_cat, n), np.int64)
    for f in range(n_cat):
        idx[f] = np.searchsorted(params.value_cdf[f], rng.random(n), side="right")
        np.minimum(idx[f], params.cardinality[f] - 1, out=idx[f])  # cdf may end at 1 - eps
        idx[f][rng.random(n) < params.cat_missing[f]] = -1
    z = rng.normal(params.dense_mu[:, None], params.dense_sigma[:, None], (len(DENSE), n))
    dense = np.floor(np.expm1(np.clip(z, 0.0, 16.0))).astype(np.int64)
    dense_missing = rng.random((len(DENSE), n)) < params.dense_missing[:, None]
    i2 = DENSE.index("I2")
    negative = rng.random(n) < NEGATIVE_I2_RATE
    dense[i2, negative] = -rng.integers(1, 4, int(negative.sum()))
    dense_missing[i2, negative] = False

    logit = np.zeros(n)
    for f, effect in params.effects.items():
        present = idx[f] >= 0
        logit[present] += effect[idx[f][present]]
    for name, weight in DENSE_WEIGHTS.items():
        j = DENSE.index(name)
        # the signal rides on what the file holds (as the reader transforms it), not on the hidden z,
        # so that a model can actually recover it
        observed = np.sign(dense[j]) * np.log1p(np.abs(dense[j]))
        standard = (observed - params.dense_mu[j]) / params.dense_sigma[j]
        logit += np.where(dense_missing[j], 0.0, weight * standard)
    a, b = params.interaction
    logit += INTERACTION_WEIGHT * params.sign_table[idx[a], idx[b]]  # never missing
    c, d = params.xor
    logit += XOR_WEIGHT * params.xor_bits[0][idx[c]] * params.xor_bits[1][idx[d]]
    return logit, dense, dense_missing, idx


def _chunk_table(params: SyntheticParams, rng: np.random.Generator, n: int) -> tuple[pa.Table, int]:
    logit, dense, dense_missing, idx = _sample(params, rng, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-(logit + params.bias)))).astype(np.int8)
    columns = [pa.array(label).cast(pa.string())]
    columns += [pa.array(dense[j], mask=dense_missing[j]).cast(pa.string()) for j in range(len(DENSE))]
    for f in range(len(CATEGORICAL)):
        missing = idx[f] < 0
        columns.append(params.tokens[f].take(pa.array(np.where(missing, 0, idx[f]), mask=missing)))
    return pa.table(columns, names=COLUMNS), int(label.sum())


def write_synthetic_criteo(path: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``rows`` lines of raw Criteo DAC TSV (tab, no header, 40 columns) to ``path``.

    Memory is bounded by one chunk of ``CHUNK_ROWS`` rows. Returns a summary
    ``{"rows", "positives", "label_rate", "bytes", "seed"}``.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    params = make_params(seed)
    options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    path = Path(path)
    positives = 0
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    with atomic_path(path) as temp, pa_csv.CSVWriter(str(temp), schema, write_options=options) as writer:
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, rows - start)
            table, pos = _chunk_table(params, np.random.default_rng([seed, 2, chunk]), n)
            writer.write_table(table)
            positives += pos
    return {
        "rows": rows,
        "positives": positives,
        "label_rate": positives / rows,
        "bytes": path.stat().st_size,
        "seed": seed,
    }
