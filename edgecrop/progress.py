"""A dependency-free progress bar on stderr, shown only on a terminal and for more than one item."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def progress(items: Sequence[T], desc: str = "", stream=None) -> Iterator[T]:
    stream = stream or sys.stderr
    show = len(items) > 1 and getattr(stream, "isatty", lambda: False)()
    start = time.monotonic()
    for i, item in enumerate(items):
        if show:
            _draw(stream, desc, i, len(items), start)
        yield item
    if show:
        _draw(stream, desc, len(items), len(items), start)
        stream.write("\n")


def _draw(stream, desc: str, done: int, total: int, start: float) -> None:
    width = 30
    filled = width * done // total
    elapsed = time.monotonic() - start
    rate = f"{done / elapsed:.1f}/s" if elapsed > 0 and done else ""
    stream.write(f"\r{desc} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate}   ")
    stream.flush()
