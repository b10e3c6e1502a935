"""Background decoding for the chunk stages: a thread feeds a bounded queue so the compute loop does not wait
on I/O, errors surface in the consumer, and closing the consumer stops the thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")


def prefetch(iterator: Iterator[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Yield the items of ``iterator``, produced ``depth`` ahead in a background thread.

    An exception raised by ``iterator`` is re-raised here at the same position. When the consumer stops early
    (``close()``, garbage collection or an exception in its loop), the thread stops too and ``iterator`` is closed.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Put ``item`` unless the consumer has stopped; False when it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in iterator:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            offer(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=worker, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
