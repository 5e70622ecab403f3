"""Stage 2: the training data. OSIE fixations with a fixed seeded 500/100 split, the unlabelled corpus
(with a held-out set of every shape), cached teacher maps, and augmentation that moves maps with images.

Splits are written to converters/splits.json and committed, so validation photos are never trained on.

    python -m converters.data --write-splits     # (re)create splits.json from the seed
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from edgecrop.preprocess import InputSpec, to_input

from .paths import teacher_map_path

SPLITS_FILE = Path(__file__).with_name("splits.json")
SPLIT_SEED = 2018
OSIE_VAL = 100
EYECROWD_SEED = 2014
EYECROWD_VAL = 80
NUS_SCENE_SEED = 2015
NUS_SCENE_VAL = 100
# The eye-tracking datasets in ../shared/data: each has images/ and fixations.json in the same layout.
FIXATION_SETS = ("osie", "eyecrowd", "nus_scene")
# Corpus photos held out, by shape (width / height), so aspect decisions are not made on one shape.
HOLDOUT_PER_SHAPE = {"portrait": 40, "square": 20, "landscape": 35, "panoramic": 5}


def shape_class(width: int, height: int) -> str:
    r = width / height
    return "portrait" if r < 0.9 else "square" if r < 1.1 else "landscape" if r < 1.9 else "panoramic"


def load_fixations(dataset: Path, drop_first: bool = True, observers: bool = False) -> dict[str, np.ndarray]:
    """{image name: (n, 2) fixation x, y} of an OSIE-layout dataset (with ``observers``, (n, 3): x, y and
    the observer's number); each observer's first fixation (the start at screen centre) dropped, and
    points outside the image removed."""
    raw = _records(dataset)
    out = {}
    for name, rec in raw.items():
        fix = np.asarray(rec["fixations"], dtype=np.float64).reshape(-1, 4)
        if drop_first and len(fix):
            subject = fix[:, 3]
            first = np.r_[True, subject[1:] != subject[:-1]]
            fix = fix[~first]
        inside = (fix[:, 0] >= 0) & (fix[:, 0] < rec["width"]) & (fix[:, 1] >= 0) & (fix[:, 1] < rec["height"])
        out[name] = fix[inside][:, [0, 1, 3] if observers else [0, 1]]
    return out


def _records(dataset: Path) -> dict:
    """The dataset's fixations.json (``dataset`` is its folder, or the file itself)."""
    return json.loads((dataset if dataset.is_file() else dataset / "fixations.json").read_text())


def load_faces(dataset: Path) -> dict[str, np.ndarray]:
    """{image name: (n, 8) face boxes [left, top, width, height, frontal, profile, back, occluded]}
    (EyeCrowd; empty arrays for a dataset without face labels)."""
    raw = _records(dataset)
    return {name: np.asarray(rec.get("faces", []), dtype=np.float64).reshape(-1, 8) for name, rec in raw.items()}


def seeded_split(shared: Path, dataset: str, seed: int, n_val: int) -> dict[str, list[str]]:
    """A seeded ``n_val``-photo validation split of a fixation dataset, the rest for training."""
    names = sorted(p.name for p in (shared / "data" / dataset / "images").glob("*.jpg"))
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_val])
    return {f"{dataset}_train": sorted(set(names) - set(val)), f"{dataset}_val": val}


def eyecrowd_split(shared: Path) -> dict[str, list[str]]:
    return seeded_split(shared, "eyecrowd", EYECROWD_SEED, EYECROWD_VAL)


def nus_scene_split(shared: Path) -> dict[str, list[str]]:
    return seeded_split(shared, "nus_scene", NUS_SCENE_SEED, NUS_SCENE_VAL)


def make_splits(shared: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(SPLIT_SEED)
    osie = sorted(p.name for p in (shared / "data" / "osie" / "images").glob("*.jpg"))
    order = rng.permutation(len(osie))
    val = sorted(osie[i] for i in order[:OSIE_VAL])
    by_shape: dict[str, list[str]] = {k: [] for k in HOLDOUT_PER_SHAPE}
    for p in sorted((shared / "data" / "corpus").glob("*.jpg")):
        with Image.open(p) as im:
            by_shape[shape_class(*im.size)].append(p.name)
    holdout = []
    for shape, n in HOLDOUT_PER_SHAPE.items():
        names = by_shape[shape]
        holdout += [names[i] for i in rng.permutation(len(names))[:n]]
    return {
        "osie_train": sorted(set(osie) - set(val)),
        "osie_val": val,
        "corpus_holdout": sorted(holdout),
        **eyecrowd_split(shared),
        **nus_scene_split(shared),
    }


def load_splits() -> dict[str, list[str]]:
    return json.loads(SPLITS_FILE.read_text())


def photo_sets(shared: Path, limit: int | None = None) -> dict[str, list[Path]]:
    """The photos of each set: corpus (training, minus the holdout), OSIE and EyeCrowd train/val,
    corpus holdout. ``limit`` keeps the first N of each (smoke runs)."""
    splits = load_splits()
    corpus_dir = shared / "data" / "corpus"
    holdout = set(splits["corpus_holdout"])
    sets = {
        "corpus": [p for p in sorted(corpus_dir.glob("*.jpg")) if p.name not in holdout],
        "corpus_holdout": [corpus_dir / n for n in splits["corpus_holdout"]],
    }
    for dataset in FIXATION_SETS:
        for part in ("train", "val"):
            key = f"{dataset}_{part}"
            sets[key] = [shared / "data" / dataset / "images" / n for n in splits[key]]
    return {k: v[:limit] for k, v in sets.items()} if limit else sets


@dataclass
class Sample:
    """One photo with its teacher map (1/4 size) and, for OSIE, its human fixations (pixels)."""

    name: str
    image: Image.Image
    teacher: np.ndarray
    fixations: np.ndarray | None


def load_samples(paths: list[Path], cache: Path, fixations: dict[str, np.ndarray] | None = None) -> list[Sample]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            image = im.convert("RGB")
        fix = fixations.get(p.name) if fixations is not None else None
        out.append(Sample(p.name, image, np.load(teacher_map_path(cache, p)), fix))
    return out


@dataclass
class Example:
    """A network input with its targets on the output grid (zero outside the picture)."""

    pixels: np.ndarray  # uint8 H x W x 3
    teacher: np.ndarray  # float32 map_h x map_w, sums to 1 over valid cells
    fix_counts: np.ndarray  # float32 map_h x map_w, human fixations per cell
    valid: np.ndarray  # bool map_h x map_w


def make_example(sample: Sample, spec: InputSpec, rng: np.random.Generator | None = None) -> Example:
    """Cut, flip and colour-jitter a sample (when ``rng`` is given) and lay it out like the runtime."""
    image, teacher, fix = sample.image, sample.teacher, sample.fixations
    w, h = image.size
    box = (0.0, 0.0, float(w), float(h))
    flip = False
    if rng is not None:
        area = rng.uniform(0.45, 1.0) * w * h
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.2)))  # portrait to panoramic
        cw = min(w, np.sqrt(area * aspect))
        ch = min(h, cw / aspect)
        x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        box = (x0, y0, x0 + cw, y0 + ch)
        flip = rng.random() < 0.5
    crop = image.crop((round(box[0]), round(box[1]), round(box[2]), round(box[3]))) if rng is not None else image
    if rng is not None:
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.3))
        crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.7, 1.3))
        crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.6, 1.4))
    if flip:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels, place = to_input(crop, spec)
    left_c, top_c, cells_w, cells_h = place.cells

    # Teacher map: the same box (in map coordinates), resized by area onto the content cells.
    th, tw = teacher.shape
    sx, sy = tw / w, th / h
    tbox = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    t_img = Image.fromarray(teacher.astype(np.float32), "F")
    t_crop = np.asarray(t_img.resize((cells_w, cells_h), Image.Resampling.BOX, box=tbox), dtype=np.float64)
    if flip:
        t_crop = t_crop[:, ::-1]
    target = np.zeros((spec.map_height, spec.map_width), np.float32)
    target[top_c : top_c + cells_h, left_c : left_c + cells_w] = t_crop / max(t_crop.sum(), 1e-12)
    valid = np.zeros_like(target, dtype=bool)
    valid[top_c : top_c + cells_h, left_c : left_c + cells_w] = True

    counts = np.zeros_like(target)
    if fix is not None and len(fix):
        fx = (fix[:, 0] - box[0]) / (box[2] - box[0])
        fy = (fix[:, 1] - box[1]) / (box[3] - box[1])
        keep = (fx >= 0) & (fx < 1) & (fy >= 0) & (fy < 1)
        fx, fy = fx[keep], fy[keep]
        if flip:
            fx = 1 - fx - 1e-9
        cx = left_c + np.floor(fx * cells_w).astype(int)
        cy = top_c + np.floor(fy * cells_h).astype(int)
        np.add.at(counts, (cy, cx), 1.0)
    return Example(pixels, target, counts, valid)


def batch(examples: list[Example]) -> dict[str, np.ndarray]:
    return {
        "pixels": np.stack([e.pixels for e in examples]).astype(np.float32) / 255.0,
        "teacher": np.stack([e.teacher for e in examples]),
        "fix": np.stack([e.fix_counts for e in examples]),
        "valid": np.stack([e.valid for e in examples]).astype(np.float32),
    }


def main(argv: list[str] | None = None) -> None:
    from . import paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared")
    ap.add_argument("--write-splits", action="store_true")
    ap.add_argument("--add-split", choices=["eyecrowd", "nus_scene"], help="add one dataset's split to splits.json")
    args = ap.parse_args(argv)
    if args.write_splits:
        splits = make_splits(paths.shared_dir(args.shared))
        SPLITS_FILE.write_text(json.dumps(splits, indent=0) + "\n")
    elif args.add_split:  # the other splits stay as they are
        split = {"eyecrowd": eyecrowd_split, "nus_scene": nus_scene_split}[args.add_split]
        splits = {**load_splits(), **split(paths.shared_dir(args.shared))}
        SPLITS_FILE.write_text(json.dumps(splits, indent=0) + "\n")
    for k, v in load_splits().items():
        print(f"{k}: {len(v)}")


if __name__ == "__main__":
    main()
