"""One error family: every failure edgecrop expects (a bad image, model, option or output) is an
EdgecropError, so callers and the CLI catch exactly these and let real bugs surface as bugs."""

from __future__ import annotations


class EdgecropError(Exception):
    """Base of every error edgecrop raises on purpose; str() is one line for a person."""


class ImageError(EdgecropError, ValueError):
    """An input that is not a usable image (corrupt, truncated, empty, too large, unknown type)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class ModelError(EdgecropError, ValueError):
    """A model file that cannot be used (missing, not TFLite, unsafe structure, bad model card)."""


class OptionError(EdgecropError, ValueError):
    """An option out of its range or of the wrong kind (API and command line alike)."""


class BackendError(EdgecropError, RuntimeError):
    """No TFLite runtime could be imported."""


class DelegateError(EdgecropError, RuntimeError):
    """An external delegate library could not be loaded."""


class OutputError(EdgecropError, OSError):
    """An output that cannot be written (exists, would replace an input, disk full, not a folder)."""
