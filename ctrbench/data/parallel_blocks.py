"""Work on several blocks of a file at once, with results in file order and bounded memory.

numpy, pyarrow and hashlib release the GIL in their long loops, so plain threads run a block's
parse, the parquet write of the previous block and the input hash side by side on several cores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(work: Callable[[T], R], items: Iterable[T], *, workers: int, ahead: int) -> Iterator[R]:
    """``work(item)`` for every item, run on ``workers`` threads, yielded in the order of ``items``.

    While the caller holds a result, at most ``ahead`` (>= 1) later items are being worked on or
    wait done, which bounds memory to about ``ahead + 1`` items' worth. ``items`` is drawn in the
    caller's thread. An exception from ``items`` is raised only after the results of the items
    before it were yielded, and one from ``work`` when its item's turn comes: the first error
    raised is the one a serial loop would raise. ``workers=0`` runs serially in the caller's thread.
    """
    if workers <= 0:
        yield from map(work, items)
        return
    if ahead < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    source = it = iter(items)
    pending: deque[Future] = deque()
    source_error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blocks")

    def fill() -> None:
        nonlocal source, source_error
        while source is not None and len(pending) < ahead:
            try:
                item = next(source)
            except StopIteration:
                source = None
            except Exception as error:  # noqa: BLE001 - re-raised in its turn, after the items before it
                source, source_error = None, error
            else:
                pending.append(pool.submit(work, item))

    try:
        fill()
        while pending:
            result = pending.popleft().result()
            fill()  # the next items start before the caller works on this one
            yield result
            del result
        if source_error is not None:
            raise source_error
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)  # a failed or abandoned read leaves no thread behind
        if hasattr(it, "close"):
            it.close()  # e.g. a generator holding an open file


class BackgroundHasher:
    """A hashlib object whose ``update`` runs on a thread, overlapping the caller's own work.

    Chunks are hashed in order; ``update`` waits only for the chunk before, so at most two are
    held, and a caller may refill a buffer once the update after it was made. ``hexdigest``
    waits for the last one.
    """

    def __init__(self, hasher):
        self._hasher = hasher
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash")
        self._last: Future | None = None

    def update(self, chunk: bytes) -> None:
        self.wait()
        self._last = self._pool.submit(self._hasher.update, chunk)

    def wait(self) -> None:
        """Wait until every chunk given so far is hashed (the caller may then reuse their memory)."""
        if self._last is not None:
            self._last.result()
            self._last = None

    def hexdigest(self) -> str:
        self.wait()
        self._pool.shutdown(wait=True)
        return self._hasher.hexdigest()

    def close(self) -> None:
        """Stop without a digest (after a failure)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
