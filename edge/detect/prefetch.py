"""Decode images on a reader thread while the detector runs (JPEG decoding releases the GIL)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TypeVar

from edge.ingest import MediaError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Two decoded frames ahead keep the detector busy; each 2048x1536 frame is ~9 MB, so a deeper
# queue only costs memory on a Raspberry Pi.
DEFAULT_DEPTH = 2
_DONE = object()


def prefetch(
    paths: Sequence[Path],
    load_fn: Callable[[Path], T],
    depth: int = DEFAULT_DEPTH,
) -> Generator[tuple[Path, T | MediaError], None, None]:
    """Yield (path, image) in order, loading up to `depth` images ahead on a thread.

    A MediaError from `load_fn` is yielded in place of the image, so one bad file does not
    stop a folder; any other exception is re-raised in the consumer. Closing the iterator early
    stops the reader.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        for path in paths:
            try:
                item: object = (path, load_fn(path))
            except MediaError as exc:
                item = (path, exc)
            except BaseException as exc:  # handed to the consumer, which re-raises
                put(exc)
                return
            if not put(item):
                return
        put(_DONE)

    thread = threading.Thread(target=reader, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5.0)
