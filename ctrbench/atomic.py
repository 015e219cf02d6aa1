"""Outputs that appear whole or not at all: write beside the target, rename on success."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: str | Path) -> Path:
    """Same folder (so the rename is atomic), dot-prefixed and suffixed so it never looks done."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``path``; it is renamed onto ``path`` when the block succeeds
    and deleted when it fails, so an interrupted job never leaves a file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = partial_path(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def stale_partials(path: str | Path) -> list[Path]:
    """What earlier writers of ``path`` may have left beside it when killed before their cleanup ran (``kill -9``,
    out of memory, a node lost): partial files ``.{name}.{pid}.partial`` and names derived from them (the
    trainer's ``.partial.tmp``), and the ``.{name}.buckets.*`` scratch folders of the UserBehavior preprocessing."""
    path = Path(path)
    stale = re.compile(rf"\.{re.escape(path.name)}\.(\d+\.partial|buckets\.)")
    if not path.parent.is_dir():
        return []
    return sorted(entry for entry in path.parent.iterdir() if stale.match(entry.name))


def clear_stale_partials(*paths: str | Path) -> list[Path]:
    """Remove ``stale_partials`` of every output in ``paths``; call it when the job that writes them starts.

    All of them go, whatever pid they name: Snakemake never runs a job twice at once and locks the outputs of a
    running workflow against a second Snakemake, so nothing else writes these outputs when their job starts; and a
    pid check would be wrong on a cluster, where the killed attempt ran on another node. Returns what was removed."""
    removed = []
    for path in paths:
        for entry in stale_partials(path):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
