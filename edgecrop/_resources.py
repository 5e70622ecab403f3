"""Where the bundled files are, however edgecrop was imported.

Installed, the bundled models and the sample photo are package data (``edgecrop.models``,
``edgecrop.examples``, mapped from the checkout's top-level ``models/`` and ``examples/``). Imported from
a checkout (a Python started in the clone's root finds the source folder ``edgecrop/`` before the
installed package), those subpackages do not exist: the checkout's own folders are used instead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def bundled_dir(name: str) -> Path:
    """The folder of bundled ``name`` files ("models" or "examples")."""
    try:
        return Path(str(resources.files(f"edgecrop.{name}")))
    except ModuleNotFoundError:
        return _CHECKOUT / name


def sample_photo() -> Path:
    """The sample photo every install ships (public domain; see examples/README.md)."""
    return bundled_dir("examples") / "grace_hopper.jpg"
