"""CSV headers read by name: layouts whose copies order (or extend) their columns differently.

``header_columns`` turns a header line into its column names and checks them against the names a reader
needs: each present exactly once. Columns the reader does not need are allowed (the reader reports them);
the data lines are then read with the file's own names, and every column is taken by its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ctrbench.data.reading import MAX_LINE_BYTES

UTF8_BOM = b"\xef\xbb\xbf"


def header_columns(
    path: Path, line: bytes, required: Sequence[str], *, layout: str, error: Callable[[str], Exception]
) -> list[str]:
    """The names of the header ``line`` (comma-separated; line end and a UTF-8 BOM stripped), in file order.

    Raises ``error`` naming ``path:1`` when a required name is missing or a name occurs twice.
    """
    text = line.removeprefix(UTF8_BOM).rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
    names = [name.strip() for name in text.split(",")]
    if missing := [name for name in required if name not in names]:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise error(
            f"{path}:1: header lacks column{'s' * (len(missing) > 1)} {shown} of the {layout} layout "
            f"(found {len(names)} columns: {text[:120]!r}{'...' if len(text) > 120 else ''})"
        )
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise error(f"{path}:1: header names column{'s' * (len(twice) > 1)} {', '.join(twice)} more than once")
    return names


def read_header(path: str | Path, required: Sequence[str], *, layout: str, error: Callable[[str], Exception]):
    """``header_columns`` of the file's first line; an empty file is an ``error``."""
    path = Path(path)
    with open(path, "rb") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    if not first:
        raise error(f"{path}: empty file; expected a header line naming the {layout} columns")
    return header_columns(path, first, required, layout=layout, error=error)


__all__ = ["UTF8_BOM", "header_columns", "read_header"]
