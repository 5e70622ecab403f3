"""Ctrl-C and SIGTERM end the command the same way at any instant: one line, exit 130 or 143.

A signal can arrive while NumPy, Pillow or the TFLite runtime are still importing (the first half second):
an import that fails because of it reads as "no TFLite runtime found", and one before the command's own
handlers were set printed a traceback. So the handlers are set first (this module imports nothing heavy),
the signal is remembered, and whatever error it caused is reported as the signal.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_STATUS: dict[int, tuple[int, str]] = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}
_received: list[int] = []


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that outputs in progress are cleaned up."""


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def guarded(body: Callable[[], int]) -> int:
    """``body()`` with the handlers set: a Ctrl-C or SIGTERM anywhere in it, even one that came before the
    handlers were, is its one line and exit status."""
    previous: dict = {}
    try:
        previous = install()
        return body()
    except KeyboardInterrupt:
        return report(signal.SIGINT)
    except Terminated:
        return report(signal.SIGTERM)
    finally:
        restore(previous)


def install() -> dict:
    """Handle SIGTERM, and SIGINT unless it is ignored (a background job's); returns what to restore."""
    previous = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_signal)
    return previous


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def received() -> int | None:
    """The first signal that arrived, if any."""
    return _received[0] if _received else None


def report(signum: int) -> int:
    """Say how the command ended; its exit status."""
    status, word = _STATUS[signum]
    print(f"edgecrop: {word}", file=sys.stderr)
    return status
