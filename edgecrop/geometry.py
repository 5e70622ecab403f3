"""Aspect ratios and crop boxes: parsing, the largest window of a ratio, overlap.

Rounding rule: an aspect ratio r = width / height. The largest window of ratio r in a W x H image is
H tall and round(H * r) wide when W / H >= r, else W wide and round(W / r) tall, where round() rounds
halves up and the result is clamped to [1, W] x [1, H]. So the box's ratio is exact to within half a
pixel of its computed side. A window scaled by s has sides round(s * side) under the same rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class AspectRatio:
    """width:height, kept with its label (e.g. '16:9')."""

    width: float
    height: float

    @property
    def value(self) -> float:
        return self.width / self.height

    @property
    def label(self) -> str:
        w, h = (int(v) if float(v).is_integer() else v for v in (self.width, self.height))
        return f"{w}:{h}"

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str | float | AspectRatio) -> AspectRatio:
        """'16:9', '16x9', '16/9', '1.777' or a number (width / height); sides below 10^6 and ratios
        between 1:10000 and 10000:1."""
        if isinstance(text, AspectRatio):
            return text
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise ValueError(f"an aspect ratio is text (W:H) or a number, not {type(text).__name__}")
        if isinstance(text, str) and len(text) > 64:
            raise ValueError(f"not an aspect ratio: {text[:20]}... ({len(text)} characters)")
        if isinstance(text, (int, float)):
            if not -1e300 < text < 1e300:  # an int too large for a float, or inf / nan
                raise ValueError("aspect ratio must be between 1:10000 and 10000:1")
            return cls._from_value(float(text))
        m = _RATIO.match(text)
        if m:
            w, h = float(m.group(1)), float(m.group(2))
            if 0 < w < 1e6 and 0 < h < 1e6 and 1e-4 < w / h < 1e4:
                return cls(w, h)
        else:
            try:
                return cls._from_value(float(text))
            except ValueError:
                pass
        raise ValueError(f"not an aspect ratio: {text!r} (use W:H, e.g. 16:9)")

    @classmethod
    def _from_value(cls, value: float) -> AspectRatio:
        if not (1e-4 < value < 1e4 and math.isfinite(value)):
            raise ValueError(f"aspect ratio must be between 1:10000 and 10000:1, not {value}")
        f = Fraction(value).limit_denominator(1000)
        if f.numerator == 0 or abs(float(f) - value) > 1e-3 * value:  # 0.00011 is not 0:1
            return cls(value, 1.0)
        return cls(float(f.numerator), float(f.denominator))


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def largest_window(width: int, height: int, ratio: float, scale: float = 1.0) -> tuple[int, int]:
    """(w, h) of the largest window of ``ratio`` (width / height) in the image, times ``scale``."""
    if width / height >= ratio:
        h = height * scale
        w = h * ratio
    else:
        w = width * scale
        h = w / ratio
    return (min(width, max(1, round_half_up(w))), min(height, max(1, round_half_up(h))))


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x + self.width, other.x + other.width) - max(self.x, other.x))
        iy = max(0, min(self.y + self.height, other.y + other.height) - max(self.y, other.y))
        inter = ix * iy
        return inter / (self.area + other.area - inter)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)
