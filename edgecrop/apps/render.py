"""Pictures for people: the saliency heatmap over the photo, with the crop boxes drawn on it.

Showing what the model looked at, and letting a person choose, is part of using saliency cropping
responsibly (it has been shown to favour some faces over others).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..geometry import Box
from ..search import Boost, Crop

# A perceptual dark-to-bright colour ramp (black, purple, red, orange, yellow), 5 stops.
_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)
_BOX_COLOURS = [(0, 255, 255), (255, 255, 255), (0, 255, 0), (255, 0, 255), (255, 128, 0)]
_FOCUS_COLOUR = (255, 40, 40)  # a person's focal point or box: a colour no ratio takes


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
    focus: Sequence[Boost] = (),
    alpha: float = 0.55,
) -> Image.Image:
    """The photo with its heatmap blended in, each crop box outlined (one colour per ratio, top-k
    alternatives dashed), each focal point or box a person gave marked (a red ring, a red box), and a
    legend naming the colours, its text scaled to the picture.

    Crops are in ``full_size`` pixels (the full-resolution image; default: the photo's own size), so a
    reduced decode of a large photo can be drawn on without decoding it again.
    """
    heat = Image.fromarray(colourise(saliency), "RGB").resize(photo.size, Image.Resampling.BILINEAR)
    out = Image.blend(photo.convert("RGB"), heat, alpha)
    draw = ImageDraw.Draw(out)
    full_w, full_h = full_size or photo.size
    sx, sy = photo.width / full_w, photo.height / full_h
    line = max(2, round(min(photo.size) / 200))
    colours = ratio_colours(crops)
    for c in sorted(crops, key=lambda c: -c.rank):  # the best crops drawn last, on top
        box = drawn_box(c.box, sx, sy)
        if c.rank == 0:
            draw.rectangle(box, outline=colours[c.aspect.label], width=line)
        else:
            _dashed_rectangle(draw, box, colours[c.aspect.label], line, dash=6 * line)
    for b in focus:
        if b.width or b.height:
            corners = (b.x * sx, b.y * sy, (b.x + b.width) * sx, (b.y + b.height) * sy)
            draw.rectangle(corners, outline=_FOCUS_COLOUR, width=line)
        else:
            x, y, r = b.x * sx, b.y * sy, 4 * line
            draw.ellipse((x - r, y - r, x + r, y + r), outline=(0, 0, 0), width=line + 2)
            draw.ellipse((x - r, y - r, x + r, y + r), outline=_FOCUS_COLOUR, width=line)
    if colours or focus:
        _legend(draw, photo.size, colours, any(c.rank for c in crops), bool(focus))
    return out


def drawn_box(box: Box, sx: float, sy: float) -> tuple[float, float, float, float]:
    """A box in image pixels as Pillow's inclusive corners on a picture scaled by (sx, sy); a box under one
    pixel of the picture (10000 x 1 shown at 1600 x 1) becomes a line."""
    x0, y0 = box.x * sx, box.y * sy
    return x0, y0, max(x0, (box.x + box.width) * sx - 1), max(y0, (box.y + box.height) * sy - 1)


def ratio_colours(crops: Sequence[Crop]) -> dict[str, tuple[int, int, int]]:
    """One colour per aspect ratio, in the order the ratios come."""
    labels = list(dict.fromkeys(c.aspect.label for c in crops))
    return {label: _BOX_COLOURS[k % len(_BOX_COLOURS)] for k, label in enumerate(labels)}


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box, colour, width: int, dash: int) -> None:
    x0, y0, x1, y1 = box
    for a, b, horizontal, at in ((x0, x1, True, y0), (x0, x1, True, y1), (y0, y1, False, x0), (y0, y1, False, x1)):
        start = a
        while start < b:
            end = min(start + dash, b)
            draw.line((start, at, end, at) if horizontal else (at, start, at, end), fill=colour, width=width)
            start += 2 * dash


def _legend(draw: ImageDraw.ImageDraw, size: tuple[int, int], colours: dict, dashed: bool, focus: bool) -> None:
    """Ratio names in their colours in the top-left corner, on a dark panel, readable at any size."""
    font_px = max(12, round(min(size) / 28))
    font = ImageFont.load_default(size=font_px)
    entries = list(colours.items()) + ([("dashed: alternatives", (230, 230, 230))] if dashed else [])
    entries += [("ring: your focus", _FOCUS_COLOUR)] if focus else []
    pad = font_px // 3
    widths = [draw.textlength(text, font=font) for text, _ in entries]
    panel = (0, 0, 2 * pad + font_px + pad + max(widths), pad + len(entries) * (font_px + pad))
    draw.rectangle(panel, fill=(0, 0, 0))
    for k, (text, colour) in enumerate(entries):
        y = pad + k * (font_px + pad)
        draw.rectangle((pad, y + font_px // 5, pad + font_px * 0.8, y + font_px), fill=colour)
        draw.text((2 * pad + font_px, y), text, fill=colour, font=font)
