"""The checks of typed options and model-card fields, written once: each names what it rejects and raises
the caller's error class (``OptionError`` for options, ``ModelError`` for cards)."""

from __future__ import annotations

import math
from enum import Enum
from typing import TypeVar

from .errors import EdgecropError, OptionError

E = TypeVar("E", bound=Enum)


def finite(value: object) -> bool:
    """A real number (not a bool) that is finite (an integer too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut short: an error message quotes what it refuses, not 400 digits of it."""
    text = (
        repr(value)
        if not isinstance(value, int) or abs(value) < 10**limit
        else f"an integer of {len(str(value))} digits"
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(
    value: object,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    error: type[EdgecropError] = OptionError,
) -> float:
    """A finite real in [low, high] (or (low, high])."""
    if not finite(value):
        raise error(f"{name} must be a finite number, not {shown(value)}")
    assert isinstance(value, (int, float))
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise error(f"{name} must be in {bracket}{low:g}, {high:g}], not {shown(value)}")
    return float(value)


def count(value: object, name: str, high: int | None = None, *, error: type[EdgecropError] = OptionError) -> int:
    """An integer (not a bool) from 1 to ``high`` (any positive one when ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        wanted = "a positive integer" if high is None else f"an integer from 1 to {high}"
        raise error(f"{name} must be {wanted}, not {shown(value)}")
    return value


def member(kind: type[E], value: object, name: str, *, error: type[EdgecropError] = OptionError) -> E:
    """The enum member for a value (or its string), else the error listing the members."""
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise error(f"{name} must be one of {', '.join(str(m.value) for m in kind)}, not {shown(value)}") from None
