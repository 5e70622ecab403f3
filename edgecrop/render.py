"""Pictures for people: the saliency heatmap over the photo, with the crop boxes drawn on it.

Showing what the model looked at, and letting a person choose, is part of using saliency cropping
responsibly (it has been shown to favour some faces over others).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .search import Crop

# A perceptual dark-to-bright colour ramp (black, purple, red, orange, yellow), 5 stops.
_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)
_BOX_COLOURS = [(0, 255, 255), (255, 255, 255), (0, 255, 0), (255, 0, 255), (255, 128, 0)]


def colourise(saliency: np.ndarray) -> np.ndarray:
    """uint8 RGB heatmap of a map scaled to its own maximum."""
    top = float(saliency.max())
    t = saliency / top if top > 0 else np.zeros_like(saliency)
    pos = np.clip(t, 0, 1) * (len(_STOPS) - 1)
    i = np.minimum(pos.astype(int), len(_STOPS) - 2)
    f = (pos - i)[..., None]
    return np.round(_STOPS[i] * (1 - f) + _STOPS[i + 1] * f).astype(np.uint8)


def overlay(
    photo: Image.Image,
    saliency: np.ndarray,
    crops: Sequence[Crop] = (),
    full_size: tuple[int, int] | None = None,
    alpha: float = 0.55,
) -> Image.Image:
    """The photo with its heatmap blended in and each crop box outlined and labelled.

    Crops are in ``full_size`` pixels (the full-resolution image; default: the photo's own size), so a
    reduced decode of a large photo can be drawn on without decoding it again.
    """
    heat = Image.fromarray(colourise(saliency), "RGB").resize(photo.size, Image.Resampling.BILINEAR)
    out = Image.blend(photo.convert("RGB"), heat, alpha)
    draw = ImageDraw.Draw(out)
    full_w, full_h = full_size or photo.size
    sx, sy = photo.width / full_w, photo.height / full_h
    line = max(2, round(min(photo.size) / 200))
    for k, c in enumerate(crops):
        colour = _BOX_COLOURS[k % len(_BOX_COLOURS)]
        x0, y0 = c.x * sx, c.y * sy
        x1, y1 = (c.x + c.width) * sx - 1, (c.y + c.height) * sy - 1
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        label = c.aspect.label if c.rank == 0 else f"{c.aspect.label} #{c.rank + 1}"
        draw.text((x0 + line + 2, y0 + line + 2 + 12 * k), label, fill=colour)  # stacked: boxes may share a corner
    return out
