"""The ``edgecrop`` command and ``python -m edgecrop``: signal handlers first, then the heavy imports."""

from __future__ import annotations

import signal
import sys

from .apps import stop


def main(argv: list[str] | None = None) -> int:
    previous: dict = {}
    try:  # a Ctrl-C even before the handlers are set is caught below
        previous = stop.install()
        from .apps.cli import main as run  # NumPy, Pillow: half a second in which a Ctrl-C may come

        return run(argv)
    except KeyboardInterrupt:
        return stop.report(signal.SIGINT)
    except stop.Terminated:
        return stop.report(signal.SIGTERM)
    finally:
        stop.restore(previous)


if __name__ == "__main__":
    sys.exit(main())
