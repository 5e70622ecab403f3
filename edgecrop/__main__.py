"""The ``edgecrop`` command and ``python -m edgecrop``: signal handlers first, then the heavy imports."""

from __future__ import annotations

import sys

from .apps import stop


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        from .apps.cli import main as cli  # NumPy, Pillow: half a second in which a Ctrl-C may come

        return cli(argv)

    return stop.guarded(run)


if __name__ == "__main__":
    sys.exit(main())
