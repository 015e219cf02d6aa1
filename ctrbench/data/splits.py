"""Deterministic, seeded train / valid / gold assignment of data lines, computed while streaming.

The assignment is a uniformly random labelling of the ``total`` data lines with *exact* split
sizes, drawn block by block so it needs no memory proportional to the file:

- the lines are cut into fixed blocks of ``SPLIT_BLOCK_LINES`` (a constant, independent of the
  I/O block size, so the result does not depend on how the file is read);
- for each block in order, one ``Generator(seed)`` draws how many of the block's lines go to each
  split (``multivariate_hypergeometric`` over the counts still to place) and then shuffles the
  block's labels.

The split of a line depends only on ``(seed, total, counts, its index)``; bad lines that the
reader skips keep their slot, so skipping a row never moves another row between splits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ctrbench.data.schema import ROW_ID

SPLITS = ("train", "valid", "gold")
SPLIT_BLOCK_LINES = 1 << 16
DEFAULT_SPLITS = {"train": 0.8, "valid": 0.1, "gold": 0.1}
REST = "rest"


class SplitCheckError(ValueError):
    """The written splits overlap or do not add up."""


class UnusableSplitError(ValueError):
    """A split that training or evaluation cannot use: empty, or all of one label."""


def check_split_labels(
    counts: Mapping[str, tuple[int, float | Mapping[str, float] | None]],
    *,
    source: str | Path,
    empty_hint: Callable[[str], str],
    single_class_hint: Callable[[str], str] | None = None,
) -> dict[str, list[str]]:
    """Raise ``UnusableSplitError`` for the first split (in ``counts`` order) that training or evaluation cannot use.

    ``counts`` maps each split to (rows, positives): positives of the one label, a mapping task -> positives for
    several tasks, or None to skip the label check (a split planned before reading). An empty split is always
    an error (training divides by a split's size). With one task, a single-class split is an error (its AUC, the
    only metric early stopping and the report rank by, needs both labels). With several tasks, a task with one
    class in a split is allowed (its AUC there is undefined and reported as such), unless no task of the split
    has both classes. Returns the tasks with one class, by split (empty lists when there are none). Every
    reader calls this before publishing. ``empty_hint(name)`` says why that reader's split came out empty and
    what to change; ``single_class_hint(name)``, if given, adds to the single-class message.
    """
    single_class: dict[str, list[str]] = {}
    for name, (rows, positives) in counts.items():
        if rows == 0:
            raise UnusableSplitError(f"{source}: {name} split is empty: {empty_hint(name)}")
        if positives is None:
            continue
        tasks = dict(positives) if isinstance(positives, Mapping) else {"": positives}
        single_class[name] = [task for task, n in tasks.items() if n in (0, rows)]
        if len(single_class[name]) < len(tasks):
            continue
        hint = f"; {single_class_hint(name)}" if single_class_hint is not None else ""
        if len(tasks) == 1:
            label = 0 if next(iter(tasks.values())) == 0 else 1
            raise UnusableSplitError(
                f"{source}: {name} split has a single class: all its {rows} rows have label {label} "
                f"(AUC needs both){hint}"
            )
        labels = ", ".join(f"{task}={0 if n == 0 else 1}" for task, n in tasks.items())
        raise UnusableSplitError(
            f"{source}: {name} split has a single class in every task: all its {rows} rows have {labels} "
            f"(AUC needs both labels of at least one task){hint}"
        )
    return {name: [task for task in tasks if task] for name, tasks in single_class.items()}


def resolve_split_counts(total: int, spec: Mapping[str, float | int | str]) -> dict[str, int]:
    """Exact row counts per split for ``total`` data lines.

    ``spec`` maps each split to a fraction (float in [0, 1]), a row count (int), or ``"rest"``
    (at most one split). Fractions and counts are not mixed. Fractions use the largest-remainder
    rule, so ``{train: .8, valid: .1, gold: .1}`` always sums to ``total``. Without ``"rest"`` the
    split sizes must cover every line.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not spec:
        raise ValueError("split spec is empty")
    rest = [k for k, v in spec.items() if v == REST]
    if len(rest) > 1:
        raise ValueError(f"split spec {dict(spec)}: at most one split can be 'rest'")
    given = {k: v for k, v in spec.items() if v != REST}
    is_int = {k: isinstance(v, (int, np.integer)) and not isinstance(v, bool) for k, v in given.items()}
    is_float = {k: isinstance(v, (float, np.floating)) for k, v in given.items()}
    bad = [k for k in given if not (is_int[k] or is_float[k])]
    if bad:
        raise ValueError(f"split spec {dict(spec)}: {bad} must be a fraction, a row count or 'rest'")
    if any(is_int.values()) and any(is_float.values()):
        raise ValueError(f"split spec {dict(spec)}: do not mix fractions and row counts")
    if any(v < 0 for v in given.values()):
        raise ValueError(f"split spec {dict(spec)}: negative size")

    if all(is_int.values()):
        counts = {k: int(v) for k, v in given.items()}
    else:
        fractions = {k: float(v) for k, v in given.items()}
        share = sum(fractions.values())
        if share > 1 + 1e-9 or (not rest and abs(share - 1) > 1e-9):
            raise ValueError(f"split spec {dict(spec)}: fractions sum to {share}, not 1")
        exact = {k: f * total for k, f in fractions.items()}
        counts = {k: int(np.floor(x)) for k, x in exact.items()}
        if not rest:  # largest remainder, ties in spec order
            short = total - sum(counts.values())
            for k in sorted(exact, key=lambda k: -(exact[k] - counts[k]))[:short]:
                counts[k] += 1
    placed = sum(counts.values())
    if rest:
        if placed > total:
            raise ValueError(f"split spec {dict(spec)}: {placed} rows asked for, only {total} data lines")
        counts[rest[0]] = total - placed
    elif placed != total:
        raise ValueError(
            f"split spec {dict(spec)}: {placed} rows asked for but there are {total} data lines; use 'rest'"
        )
    # canonical order (train, valid, gold, then others), so the draws do not depend on how a
    # config happened to order its keys
    order = [k for k in SPLITS if k in spec] + [k for k in spec if k not in SPLITS]
    return {k: counts[k] for k in order}


class SplitAssigner:
    """Split labels (index into ``names``) for data lines 0..total-1, generated on demand in order."""

    def __init__(self, counts: Mapping[str, int], seed: int, block_lines: int = SPLIT_BLOCK_LINES):
        self.names = list(counts)
        self.total = int(sum(counts.values()))
        self.block_lines = int(block_lines)
        self._remaining = np.array([counts[k] for k in self.names], dtype=np.int64)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._start = 0  # data line index of self._labels[0]
        self._labels = np.empty(0, np.int8)
        self._generated = 0

    def _next_block(self) -> np.ndarray:
        n = min(self.block_lines, self.total - self._generated)
        drawn = self._rng.multivariate_hypergeometric(self._remaining, n)
        self._remaining -= drawn
        labels = np.repeat(np.arange(len(self.names), dtype=np.int8), drawn)
        self._rng.shuffle(labels)
        self._generated += n
        return labels

    def labels_for(self, lines: np.ndarray) -> np.ndarray:
        """Labels of the given 0-based data line indices; each call's indices must be >= the last call's."""
        lines = np.asarray(lines, dtype=np.int64)
        if len(lines) == 0:
            return np.empty(0, np.int8)
        lo, hi = int(lines.min()), int(lines.max())
        if lo < self._start:
            raise ValueError(f"line {lo} was requested after line {self._start}; requests must be in order")
        if hi >= self.total:
            raise ValueError(f"data line {hi + 1} is past the {self.total} data lines the split was drawn for")
        new = []
        while self._generated <= hi:
            new.append(self._next_block())
        if new:
            self._labels = np.concatenate([self._labels, *new])
        drop = lo - self._start  # forget labels no later request can need
        self._labels, self._start = self._labels[drop:], lo
        return self._labels[lines - self._start]

    def labels_all(self) -> np.ndarray:
        """The labels of every line (tests and small data)."""
        return self.labels_for(np.arange(self.total)) if self.total else np.empty(0, np.int8)

    def finish(self) -> None:
        """Check that the draws placed every line."""
        while self._generated < self.total:
            self._next_block()
        if self._remaining.any():
            raise RuntimeError(f"split draws left {dict(zip(self.names, self._remaining.tolist()))} rows unplaced")


def assign_splits(total: int, spec: Mapping[str, float | int | str], seed: int) -> dict[str, np.ndarray]:
    """0-based data line indices of each split, for small data and tests."""
    counts = resolve_split_counts(total, spec)
    labels = SplitAssigner(counts, seed).labels_all()
    return {name: np.flatnonzero(labels == i) for i, name in enumerate(counts)}


def check_split_files(
    paths: Mapping[str, str | Path],
    *,
    expected_total: int | None = None,
    expected_counts: Mapping[str, int] | None = None,
    batch_rows: int = 1 << 20,
) -> dict[str, int]:
    """Verify written splits: row_ids positive, unique, and in no two splits; counts add up.

    Reads only the ``row_id`` column, batch by batch; memory is one byte per source line.
    Returns the row count of each split; raises ``SplitCheckError`` with the offending split
    names and an example row_id otherwise.
    """
    owner = np.zeros(0, np.int8)  # owner[row_id] = 1 + split index, 0 = unseen
    counts: dict[str, int] = {}
    for i, (name, path) in enumerate(paths.items()):
        counts[name] = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[ROW_ID]):
            ids = batch.column(0).to_numpy()
            if len(ids) == 0:
                continue
            if ids.min() < 1:
                raise SplitCheckError(f"{name} ({path}): row_id {int(ids.min())} is not a 1-based line number")
            top = int(ids.max())
            if top >= len(owner):
                owner = np.concatenate([owner, np.zeros(max(top + 1 - len(owner), len(owner)), np.int8)])
            prior = owner[ids]
            clash = np.flatnonzero(prior)
            if len(clash):
                other = list(paths)[prior[clash[0]] - 1]
                where = "twice in" if other == name else f"in both {other} and"
                raise SplitCheckError(
                    f"row_id {int(ids[clash[0]])} is {where} {name}: splits must be disjoint "
                    f"({len(clash)} such rows in one batch)"
                )
            # rows are written in line order, so the strictly-increasing test settles most batches
            if not (np.diff(ids) > 0).all() and len(np.unique(ids)) != len(ids):
                raise SplitCheckError(f"{name} ({path}): a row_id occurs twice")
            owner[ids] = i + 1
            counts[name] += len(ids)
    if expected_counts is not None:
        wrong = {k: (counts.get(k), v) for k, v in expected_counts.items() if counts.get(k) != v}
        if wrong:
            raise SplitCheckError(f"split row counts (found, expected) differ: {wrong}")
    if expected_total is not None and sum(counts.values()) != expected_total:
        raise SplitCheckError(
            f"splits hold {sum(counts.values())} rows ({counts}) but {expected_total} rows were written"
        )
    return counts
