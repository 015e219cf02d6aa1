"""A raw input's line count and identity, as the manifests record them.

- ``count_lines`` / ``count_newlines``: newlines counted by numpy a slice at a time;
- ``input_hasher`` / ``input_file``: the input's sha256, hashed on a thread while the caller
  counts or parses, or only its size and mtime (``INPUT_HASHES``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ctrbench.data.manifest import InputFile
from ctrbench.data.parallel_blocks import BackgroundHasher

# How a raw input is identified in the manifest: its sha256 (a pass of hashlib over every byte,
# ~1-2 GB/s on its own thread, overlapping the reading), or only its size and modification time
# (free, for inputs of tens of GB where even that pass is too long)
INPUT_HASHES = ("sha256", "size+mtime")


def check_input_hash(input_hash: str) -> None:
    if input_hash not in INPUT_HASHES:
        raise ValueError(f"input_hash must be one of {INPUT_HASHES}, got {input_hash!r}")


def input_hasher(input_hash: str) -> BackgroundHasher | None:
    """The hasher to feed the input's bytes to (None when the input is identified by size and mtime)."""
    check_input_hash(input_hash)
    return BackgroundHasher(hashlib.sha256()) if input_hash == "sha256" else None


def input_file(
    path: Path, input_hash: str, sha256: str | None, *, lines: int, data_lines: int, row_id_offset: int = 0
) -> InputFile:
    """The manifest's record of a raw input: path, bytes, ``hash`` (which of ``INPUT_HASHES`` was done), ``sha256``
    (None unless hashed) and, for ``size+mtime``, ``mtime`` (UTC, ISO 8601); lines counted."""
    stat = path.stat()
    mtime = (
        dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).isoformat() if input_hash == "size+mtime" else None
    )
    return InputFile(
        path=str(path),
        bytes=stat.st_size,
        hash=input_hash,
        sha256=sha256,
        mtime=mtime,
        lines=lines,
        data_lines=data_lines,
        row_id_offset=row_id_offset,
    )


def input_files_of(
    paths: Mapping[str, Path],
    input_hash: str,
    sha256: Mapping[str, str | None],
    *,
    lines: Mapping[str, int],
    data_lines: Mapping[str, int],
    offsets: Mapping[str, int],
) -> dict[str, InputFile]:
    """``input_file`` of each raw file of a directory format (``paths`` by split key: train, valid, gold ...), its row
    ids starting at ``offsets[key]``."""
    return {
        key: input_file(
            path, input_hash, sha256[key], lines=lines[key], data_lines=data_lines[key], row_id_offset=offsets[key]
        )
        for key, path in paths.items()
    }


def count_newlines(data: bytes | bytearray, start: int, end: int, step: int = 1 << 18) -> int:
    """Newlines in ``data[start:end]``: numpy compares a cache-sized slice at a time, ~5x faster
    than ``bytes.count`` (a byte loop) and without holding the GIL."""
    raw = np.frombuffer(data, np.uint8, count=end - start, offset=start)
    return sum(int(np.count_nonzero(raw[i : i + step] == 10)) for i in range(0, len(raw), step))


def count_lines(path: str | Path, block_bytes: int = 16 << 20, hasher=None, stop: threading.Event | None = None) -> int:
    """Physical lines of a file: newlines, plus one for a last line without its newline.

    Optionally feeds every byte to ``hasher`` (a hashlib object, or a ``BackgroundHasher`` to
    hash on another thread while this one counts) in the same pass. The file is read into two
    buffers in turn, not into a fresh bytes object per read: fresh memory is paid for in page
    faults, and the hasher may still be reading the other buffer. ``stop`` set: give up (returns -1).
    """
    lines, last = 0, 10
    buffers = [bytearray(block_bytes), bytearray(block_bytes)]
    with open(path, "rb") as handle:
        for i in itertools.count():
            buf = buffers[i % 2]
            if stop is not None and stop.is_set():
                return -1
            n = handle.readinto(buf)
            if not n:
                break
            if hasher is not None:
                hasher.update(memoryview(buf)[:n])  # a BackgroundHasher is done with the other buffer now
            lines += count_newlines(buf, 0, n)
            last = buf[n - 1]
    if hasattr(hasher, "wait"):
        hasher.wait()  # the buffers are reused or freed after this
    return lines + (last != 10)
