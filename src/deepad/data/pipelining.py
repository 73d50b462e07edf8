"""Overlap a batch job's reading and writing with its computing: one chunk read ahead, one chunk written behind.

``deepad score`` reads a chunk, encodes and scores it, and writes the result.  Arrow decodes Parquet and
CSV and writes files with the GIL released, so a second thread can read the next chunk and write the last
one while the main thread scores.  At most one chunk is read ahead and one is being written, so memory
stays bounded by a few chunks whatever the file's size.  Errors surface in the calling thread, where the
sequential code would raise them: a read error at the chunk it concerns, a write error at the next write
or at ``commit``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator, TypeVar

__all__ = ["prefetch", "WriteBehind"]

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T]) -> Iterator[T]:
    """Yield ``items`` in order, reading the next one in a background thread while the caller uses this one."""
    it = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="deepad-read") as pool:
        pending = pool.submit(next, it, _END)
        try:
            while True:
                item = pending.result()  # the reader's exception, re-raised here
                if item is _END:
                    return
                pending = pool.submit(next, it, _END)
                yield item
        finally:
            if not pending.done():  # the caller stopped early: let the read in flight finish, then close
                pending.cancel()
                try:
                    pending.result()
                except BaseException:  # noqa: BLE001 - the caller is already leaving; its own error wins
                    pass
            close = getattr(it, "close", None)
            if close is not None:
                close()


class WriteBehind:
    """Wrap a writer (``write(table)``, ``commit()``, ``abort()``) so that each write runs in a background thread
    while the caller prepares the next; writes keep their order, and only one is in flight."""

    def __init__(self, writer):
        self.writer = writer
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deepad-write")
        self._pending: Future | None = None

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # the write error, re-raised in the caller's thread

    def write(self, table) -> None:
        self._wait()
        self._pending = self._pool.submit(self.writer.write, table)

    def commit(self) -> None:
        try:
            self._wait()
            self.writer.commit()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        try:
            self._wait()
        except BaseException:  # noqa: BLE001 - already failing; the partial output goes regardless
            pass
        finally:
            self._pool.shutdown(wait=True)
            self.writer.abort()
