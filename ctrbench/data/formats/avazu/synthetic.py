"""Seeded synthetic data in the raw Avazu layout (``reader``), with a planted signal that includes a field interaction.

``write_synthetic_avazu`` writes one CSV with the release's header and value styles: ``id`` a decimal up to 20
digits, ``hour`` YYMMDDHH over 2014-10-21..30 in file order (the release is sorted by hour), hex ids of 8 digits
for the site / app / device columns, small integers for the others (``C20`` holds ``-1``). A row is app traffic
with probability ``APP_SHARE``: then its site columns hold the release's placeholder values (``85f751fd``,
``c4e18dd6``, ``50e219e0``), otherwise its app columns do (``ecad2386``, ``7801e8d9``, ``07d7df22``); about
``SHARED_DEVICE_SHARE`` of rows share the device_id ``a99f214a``, and device_ip has a long tail of values seen
once (what ``min_count`` sends to the out-of-vocabulary id). Values are Zipf-distributed per field.

Planted signal, per row (``sc`` site_category, ``dt`` device_type, ``hh`` hour of day, ``effect_f`` seeded
N(0, ADDITIVE_STD^2) per value of the fields of ``ADDITIVE``)::

    logit = bias + INTERACTION[sc, dt] + HOUR_AMPLITUDE * sin(2 pi (hh - 8) / 24) + WEEKEND_EFFECT * weekend
                 + sum over f in ADDITIVE of effect_f[value of f]
    click ~ Bernoulli(sigmoid(logit))

``INTERACTION`` is a seeded table of N(0, INTERACTION_STD^2) entries: not additive in its two fields, so a model
that crosses fields can beat one that does not. ``bias`` is solved for ``CLICK_RATE`` (Avazu's is about 0.17).
The bytes depend only on ``(rows, seed)``: parameters from one seeded generator, each chunk of ``CHUNK_ROWS``
rows from its own generator keyed by ``(seed, chunk index)``, hours by row position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.avazu.reader import CATEGORICAL, COLUMNS

CHUNK_ROWS = 65_536  # part of the format: changing it changes the bytes for a given seed
DAYS = 10  # 2014-10-21 .. 2014-10-30, as the release's train file
CLICK_RATE = 0.17
APP_SHARE = 0.35
SHARED_DEVICE_SHARE = 0.8
INTERACTION_STD = 1.2
HOUR_AMPLITUDE = 0.6
WEEKEND_EFFECT = 0.25
ADDITIVE_STD = 0.5
ADDITIVE = ("banner_pos", "site_id", "app_category", "C15", "C18", "device_conn_type")
SITE_PLACEHOLDER = ("85f751fd", "c4e18dd6", "50e219e0")  # site_id, site_domain, site_category of app rows
APP_PLACEHOLDER = ("ecad2386", "7801e8d9", "07d7df22")  # app_id, app_domain, app_category of site rows
SHARED_DEVICE = "a99f214a"
# values per field (hex fields draw random 8-digit ids; the others the listed integers or a range)
CARDINALITY = {
    "site_id": 300, "site_domain": 200, "site_category": 12, "app_id": 250, "app_domain": 60, "app_category": 10,
    "device_id": 5000, "device_ip": 200_000, "device_model": 600,
}  # fmt: skip
INTEGERS = {
    "C1": [1005, 1002, 1010, 1012, 1007, 1001, 1008], "banner_pos": [0, 1, 7, 2, 4, 5, 3],
    "device_type": [1, 0, 4, 5], "device_conn_type": [0, 2, 3, 5], "C15": [320, 300, 216, 728, 480, 1024, 768, 120],
    "C16": [50, 250, 36, 480, 90, 20, 768, 320, 1024], "C18": [0, 3, 2, 1], "C14": list(range(15000, 24000, 9)),
    "C17": list(range(1700, 2800, 4)), "C19": list(range(33, 1900, 47)), "C20": [-1, *range(100000, 100250)],
    "C21": list(range(1, 200, 5)),
}  # fmt: skip
INTERACTION_FIELDS = ("site_category", "device_type")  # the interaction's fields


@dataclass
class _Params:
    tokens: dict[str, np.ndarray]  # field -> its values as strings (index 0 first by popularity)
    cdf: dict[str, np.ndarray]  # field -> cumulative Zipf probabilities over its values
    interaction: np.ndarray  # [site_category values, device_type values]
    effects: dict[str, np.ndarray]  # ADDITIVE field -> effect per value
    bias: float = 0.0


def _hex_ids(rng: np.random.Generator, n: int, avoid: set[str]) -> np.ndarray:
    values = [f"{v:08x}" for v in rng.choice(2**32, size=n + len(avoid), replace=False)]
    return np.array([v for v in values if v not in avoid][:n])


def _make_params(seed: int) -> _Params:
    rng = np.random.default_rng([seed, 30])
    reserved = {*SITE_PLACEHOLDER, *APP_PLACEHOLDER, SHARED_DEVICE}
    tokens = {name: _hex_ids(rng, k, reserved) for name, k in CARDINALITY.items()}
    tokens.update({name: np.array([str(v) for v in values]) for name, values in INTEGERS.items()})
    cdf = {}
    for name in CATEGORICAL:
        p = 1.0 / np.arange(1, len(tokens[name]) + 1) ** rng.uniform(0.9, 1.4)
        cdf[name] = np.cumsum(p / p.sum())
    params = _Params(
        tokens=tokens,
        cdf=cdf,
        interaction=rng.normal(0, INTERACTION_STD, (CARDINALITY["site_category"] + 1, len(INTEGERS["device_type"]))),
        effects={name: rng.normal(0, ADDITIVE_STD, len(tokens[name]) + 1) for name in ADDITIVE},
    )
    logit = _draw(params, np.random.default_rng([seed, 31]), np.arange(20_000) % (24 * DAYS))[0]
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection: mean sigmoid(logit + b) = CLICK_RATE
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < CLICK_RATE else (lo, mid)
    params.bias = (lo + hi) / 2
    return params


def _draw(params: _Params, rng: np.random.Generator, hours: np.ndarray):
    """(logit without bias [n], value index per field [n] (-1: the placeholder / shared value), hours)."""
    n = len(hours)
    index = {}
    for name in CATEGORICAL:
        drawn = np.searchsorted(params.cdf[name], rng.random(n), side="right")
        index[name] = np.minimum(drawn, len(params.tokens[name]) - 1)
    app = rng.random(n) < APP_SHARE
    for prefix, rows in (("site", app), ("app", ~app)):
        for suffix in ("id", "domain", "category"):
            index[f"{prefix}_{suffix}"][rows] = -1
    index["device_id"][rng.random(n) < SHARED_DEVICE_SHARE] = -1
    hh = hours % 24
    weekday = (2 + hours // 24) % 7  # 2014-10-21 was a Tuesday (%w = 2)
    logit = params.interaction[index["site_category"] + 1, index["device_type"]]
    logit = logit + HOUR_AMPLITUDE * np.sin(2 * np.pi * (hh - 8) / 24)
    logit = logit + WEEKEND_EFFECT * ((weekday == 0) | (weekday == 6))
    for name, effect in params.effects.items():
        logit = logit + effect[index[name] + 1]
    return logit, index


def _column(params: _Params, name: str, index: np.ndarray) -> pa.Array:
    placeholder = {
        **dict(zip(("site_id", "site_domain", "site_category"), SITE_PLACEHOLDER)),
        **dict(zip(("app_id", "app_domain", "app_category"), APP_PLACEHOLDER)),
        "device_id": SHARED_DEVICE,
    }.get(name, "")
    table = np.concatenate([[placeholder], params.tokens[name]])
    return pa.array(table[index + 1])


def _chunk_table(params: _Params, rng: np.random.Generator, start: int, n: int, rows: int) -> tuple[pa.Table, int]:
    hours = (np.arange(start, start + n) * (24 * DAYS)) // rows  # by position: the file is sorted by hour
    logit, index = _draw(params, rng, hours)
    click = (rng.random(n) < 1 / (1 + np.exp(-(logit + params.bias)))).astype(np.int64)
    day, hh = 21 + hours // 24, hours % 24
    columns = {
        "id": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)).cast(pa.string()),
        "click": pa.array(click).cast(pa.string()),
        "hour": pa.array(14_100_000 + day * 100 + hh).cast(pa.string()),
    }
    for name in CATEGORICAL:
        columns[name] = _column(params, name, index[name])
    return pa.table([columns[c] for c in COLUMNS], names=COLUMNS), int(click.sum())


def write_synthetic_avazu(path: str | Path, rows: int, seed: int = 0) -> dict:
    """Write ``rows`` data lines of the raw Avazu CSV (header first) to ``path``; memory bounded by one chunk.

    Returns facts: rows, clicks, click_rate, bytes, seed and the planted parameters."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    params = _make_params(seed)
    path = Path(path)
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    clicks = 0
    with atomic_path(path) as temp:
        temp.write_bytes((",".join(COLUMNS) + "\n").encode())
        with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
            for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
                n = min(CHUNK_ROWS, rows - start)
                table, positives = _chunk_table(params, np.random.default_rng([seed, 32, chunk]), start, n, rows)
                writer.write_table(table)
                clicks += positives
    return {
        "rows": rows,
        "clicks": clicks,
        "click_rate": clicks / rows,
        "bytes": path.stat().st_size,
        "seed": seed,
        "planted": {
            "click_rate": CLICK_RATE,
            "interaction": list(INTERACTION_FIELDS),
            "interaction_std": INTERACTION_STD,
            "hour_amplitude": HOUR_AMPLITUDE,
            "weekend_effect": WEEKEND_EFFECT,
            "additive": list(ADDITIVE),
            "additive_std": ADDITIVE_STD,
        },
    }


__all__ = ["write_synthetic_avazu"]
