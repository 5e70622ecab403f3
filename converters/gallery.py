"""Contact sheets of validation crops, for a person to check by eye what the scores say.

Per set and ratio, one sheet: the photos where the model's crop keeps the most fixations more than the
centre crop does (bottom row) and those where it keeps the fewest (top row: where it loses, and why). On each
photo the fixations (yellow dots, each observer's first one dropped), the centre crop (white, thin) and the
model's crop (the ratio's colour, thick), with the shares each keeps.

    python -m converters.gallery --model edgecrop_int8 --out gallery [--per-row 5] [--limit N]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgecrop.apps.render import drawn_box
from edgecrop.geometry import AspectRatio, Box
from edgecrop.search import SearchOptions, centred_window, find_crops

from . import paths
from .evaluate import CROP_ASPECTS, Photo, fixations_inside, probability_maps, validation_sets

TILE = (320, 240)  # the box a photo is fitted into, pixels
CAPTION = 18  # caption strip height, pixels
MODEL_COLOUR = (0, 200, 255)


@dataclass(frozen=True)
class Tile:
    photo: Photo
    model: Box
    centre: Box
    model_kept: float  # share of the photo's fixations inside the model's crop
    centre_kept: float

    @property
    def gain(self) -> float:
        return self.model_kept - self.centre_kept


def tiles(photos: list[Photo], maps: list[np.ndarray], aspect: str) -> list[Tile]:
    """Every photo with fixations, its model and centre crops of ``aspect``, sorted by gain (worst first)."""
    ratio = AspectRatio.parse(aspect)
    out = []
    for p, sal in zip(photos, maps):
        if not len(p.fixations):
            continue
        (crop,) = find_crops(sal, p.width, p.height, [ratio], SearchOptions())
        centre = centred_window(p.width / 2, p.height / 2, p.width, p.height, ratio.value)
        share = [fixations_inside(p.fixations, *b.as_tuple()) / len(p.fixations) for b in (crop.box, centre)]
        out.append(Tile(p, crop.box, centre, *share))
    return sorted(out, key=lambda t: (t.gain, t.photo.name))


def draw_tile(t: Tile) -> Image.Image:
    scale = min(TILE[0] / t.photo.width, TILE[1] / t.photo.height)
    size = (max(1, round(t.photo.width * scale)), max(1, round(t.photo.height * scale)))
    tile = Image.new("RGB", (TILE[0], TILE[1] + CAPTION), (24, 24, 24))
    picture = t.photo.image().resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    for x, y in t.photo.fixations * scale:
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(255, 220, 0))
    for box, width, ink in ((t.centre, 2, (255, 255, 255)), (t.model, 3, MODEL_COLOUR)):
        draw.rectangle(drawn_box(box, scale, scale), outline=ink, width=width)
    tile.paste(picture, ((TILE[0] - size[0]) // 2, (TILE[1] - size[1]) // 2))
    text = f"{t.photo.name[:18]}  model {t.model_kept:.2f}  centre {t.centre_kept:.2f}"
    ImageDraw.Draw(tile).text((4, TILE[1] + 2), text, fill=(230, 230, 230), font=ImageFont.load_default(size=12))
    return tile


def sheet(ranked: list[Tile], aspect: str, title: str, per_row: int) -> Image.Image:
    """Two rows: the ``per_row`` photos the model's crop does worst on against the centre crop, then the best."""
    worst, best = ranked[:per_row], ranked[::-1][:per_row][::-1]
    head = 28
    out = Image.new("RGB", (per_row * TILE[0], head + 2 * (TILE[1] + CAPTION)), (0, 0, 0))
    ImageDraw.Draw(out).text(
        (6, 6),
        f"{title}, {aspect}: top row where the model's crop (thick) keeps the fewest fixations more than the centre "
        f"crop (thin), bottom row the most",
        fill=(255, 255, 255),
        font=ImageFont.load_default(size=14),
    )
    for row, chosen in enumerate((worst, best)):
        for k, t in enumerate(chosen):
            out.paste(draw_tile(t), (k * TILE[0], head + row * (TILE[1] + CAPTION)))
    return out


def sheet_paths(sets: dict[str, list[Photo]], out: Path) -> dict[tuple[str, str], Path]:
    return {(name, a): out / f"{name}_{a.replace(':', 'x')}.png" for name in sets for a in CROP_ASPECTS}


def write_sheets(
    sets: dict[str, list[Photo]], maps: dict[str, list[np.ndarray]], out: Path, per_row: int
) -> list[Path]:
    """One PNG per set and ratio in ``out``; never over an existing file."""
    out.mkdir(parents=True, exist_ok=True)
    for (name, aspect), path in sheet_paths(sets, out).items():
        image = sheet(tiles(sets[name], maps[name], aspect), aspect, name, per_row)
        with open(path, "xb") as f:  # exclusive: an earlier gallery is never overwritten
            image.save(f, "PNG")
    return list(sheet_paths(sets, out).values())


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="edgecrop_int8", help="bundled name or .tflite")
    ap.add_argument("--shared")
    ap.add_argument("--out", type=Path, required=True, help="folder for the sheets (existing files are kept)")
    ap.add_argument("--per-row", type=int, default=5)
    ap.add_argument("--limit", type=int, help="only the first N photos of each validation split")
    args = ap.parse_args(argv)
    if args.per_row < 1:
        ap.error("--per-row must be at least 1")
    sets = validation_sets(paths.shared_dir(args.shared), args.limit)
    sets.pop("recuts")  # cut from the same photos: the whole photos are what a person checks
    existing = [str(p) for p in sheet_paths(sets, args.out).values() if p.exists()]
    if existing:
        ap.exit(1, f"converters.gallery: error: {existing[0]} exists (kept): choose another --out\n")
    maps = {name: probability_maps(args.model, photos) for name, photos in sets.items()}
    written = write_sheets(sets, maps, args.out, args.per_row)
    print(f"wrote {len(written)} sheets to {args.out}")
    return written


if __name__ == "__main__":
    main()
