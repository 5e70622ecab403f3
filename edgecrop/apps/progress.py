"""A dependency-free progress bar on stderr, shown only on a terminal and for more than one item."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str = "", stream=None, total: int | None = None) -> Iterator[T]:
    """``items`` with a bar drawn as each is taken (``total``: their number, for an iterator)."""
    stream = stream or sys.stderr
    count = total if total is not None else len(items) if isinstance(items, Sequence) else 0
    show = count > 1 and getattr(stream, "isatty", lambda: False)()
    start = time.monotonic()
    done = 0
    for item in items:
        if show:
            _draw(stream, desc, done, count, start)
        yield item
        done += 1
    if show:
        _draw(stream, desc, done, count, start)
        stream.write("\n")


def _draw(stream, desc: str, done: int, total: int, start: float) -> None:
    width = 30
    filled = width * done // total
    elapsed = time.monotonic() - start
    rate = f"{done / elapsed:.1f}/s" if elapsed > 0 and done else ""
    stream.write(f"\r{desc} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate}   ")
    stream.flush()
