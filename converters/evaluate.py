"""Stage 8: evaluate a model where it matters: the crops it leads to, against the centre crop.

Every model runs through edgecrop's own runtime (Cropper), exactly as users run it. Validation sets:
OSIE val, EyeCrowd val, NUS Scene val (reported apart) and shape re-cuts of the first two (windows of
1:1, 3:4, 9:16 and 2:1 cut from the validation photos at seeded positions and sizes, the fixations
inside re-indexed), so that decisions are made on more than 4:3 photos.

Per set and per ratio (16:9, 1:1, 4:5, 9:16; the largest window of that ratio):
- the share of human fixations kept by the model's crop, by the centre crop and by the best possible
  placement; the normalised score (model - centre) / (best - centre): 0 is the centre crop, 1 perfect;
  a bootstrap 95% interval of it (photos resampled); all of it without and with each observer's first
  fixation (the start cross at the screen centre);
- on EyeCrowd, the share of frontal faces kept whole (>= 90% of the box inside) by model and centre crop.
Map metrics (NSS, CC, KL, SIM, AUC-Judd, sAUC; conventions in converters.metrics) on the full photos.

    python -m converters.evaluate --model edgecrop_int8 [--model other.tflite] [--teacher]

Beyond the defaults: ``--recut-shapes 3:1,1:3,4:1,1:4`` (panoramic and tall re-cuts), ``--long-side 128``
(every photo handed to the cropper shrunk: small photos). How far the model is from people themselves:
converters.agreement.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from edgecrop import Cropper
from edgecrop.geometry import AspectRatio, largest_window
from edgecrop.search import SearchOptions, by_aspect, find_crops, parse_aspects

from . import metrics, paths
from .data import FIXATION_SETS, load_faces, load_fixations, load_splits

CROP_ASPECTS = ("16:9", "1:1", "4:5", "9:16")
RECUT_SHAPES = ("1:1", "3:4", "9:16", "2:1")
# the sets whose photos are re-cut (4:3 photos of 800-1024 px; NUS Scene is mostly 256x256 already)
RECUT_SOURCES = ("osie", "eyecrowd")
RECUTS_PER_SHAPE = 2
RECUT_SEED = 11
MIN_RECUT_FIXATIONS = 10
FACE_INSIDE = 0.9
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Photo:
    """One validation photo, or a re-cut of one: where its pixels are, and its fixations and faces in
    its own pixel frame."""

    name: str
    path: Path
    box: tuple[int, int, int, int] | None  # the re-cut window in the source photo, or None: the whole photo
    width: int
    height: int
    fixations: np.ndarray  # (n, 2), each observer's first fixation dropped
    fixations_all: np.ndarray  # (n, 2), all fixations
    faces: np.ndarray  # (k, 4) frontal face boxes left, top, width, height
    long_side: int | None = None  # hand the cropper the pixels shrunk to this long side: a small photo

    def source(self) -> Path | Image.Image:
        """What a user would hand the cropper: the file (decoded as the runtime decodes it, at reduced
        size), or the re-cut's pixels; with ``long_side``, the pixels shrunk (fixations stay in the
        full-size frame: the map covers the picture whatever its size)."""
        if self.box is None and self.long_side is None:
            return self.path
        image = self.image()
        if self.long_side is None or max(image.size) <= self.long_side:
            return image
        s = self.long_side / max(image.size)
        size = (max(1, round(image.width * s)), max(1, round(image.height * s)))
        return image.resize(size, Image.Resampling.LANCZOS)

    def image(self) -> Image.Image:
        with Image.open(self.path) as im:
            rgb = im.convert("RGB")
        if self.box is None:
            return rgb
        x, y, w, h = self.box
        return rgb.crop((x, y, x + w, y + h))


def fixations_inside(fix: np.ndarray, x: int, y: int, w: int, h: int) -> int:
    return int(((fix[:, 0] >= x) & (fix[:, 0] < x + w) & (fix[:, 1] >= y) & (fix[:, 1] < y + h)).sum())


def best_placement(fix: np.ndarray, width: int, height: int, cw: int, ch: int) -> int:
    """Most fixations any integer placement of a cw x ch window can hold. The largest window of a ratio
    spans the photo in one direction, so this is a 1-D sliding window: the best start is at a fixation
    (or at the far end)."""
    if ch >= height or cw >= width:
        along, size, length = (fix[:, 0], cw, width) if ch >= height else (fix[:, 1], ch, height)
        if len(along) == 0:
            return 0
        coords = np.sort(along)
        starts = np.clip(np.floor(np.r_[coords, length - size]), 0, length - size)
        return int((np.searchsorted(coords, starts + size, "left") - np.searchsorted(coords, starts, "left")).max())
    return max(
        fixations_inside(fix, x, y, cw, ch)
        for x in np.unique(np.clip(np.floor(np.r_[fix[:, 0], 0]), 0, width - cw)).astype(int)
        for y in np.unique(np.clip(np.floor(np.r_[fix[:, 1], 0]), 0, height - ch)).astype(int)
    )


def faces_kept(faces: np.ndarray, x: int, y: int, w: int, h: int) -> int:
    """How many face boxes have at least FACE_INSIDE of their area inside the crop."""
    if not len(faces):
        return 0
    ix = np.clip(np.minimum(faces[:, 0] + faces[:, 2], x + w) - np.maximum(faces[:, 0], x), 0, None)
    iy = np.clip(np.minimum(faces[:, 1] + faces[:, 3], y + h) - np.maximum(faces[:, 1], y), 0, None)
    return int((ix * iy >= FACE_INSIDE * faces[:, 2] * faces[:, 3]).sum())


def _photos(shared: Path, dataset: str, names: list[str]) -> list[Photo]:
    return dataset_photos(shared / "data" / dataset / "fixations.json", names, dataset)


def dataset_photos(fixations: Path, names: list[str] | None = None, label: str | None = None) -> list[Photo]:
    """The photos of an OSIE-layout dataset (``fixations.json`` beside an ``images/`` folder): those in
    ``names``, or every one with fixations."""
    folder = fixations.parent
    dropped, every = load_fixations(fixations), load_fixations(fixations, drop_first=False)
    faces = load_faces(fixations)
    out = []
    for name in dropped if names is None else names:
        with Image.open(folder / "images" / name) as im:
            w, h = im.size
        f = faces.get(name, np.zeros((0, 8)))
        frontal = f[f[:, 4] > 0, :4] if len(f) else np.zeros((0, 4))
        out.append(
            Photo(
                f"{label or folder.name}/{name}",
                folder / "images" / name,
                None,
                w,
                h,
                dropped[name],
                every[name],
                frontal,
            )
        )
    return out


def recuts(photos: list[Photo], seed: int = RECUT_SEED, shapes: Iterable[str] = RECUT_SHAPES) -> list[Photo]:
    """Windows of each of ``shapes`` cut from each photo (RECUTS_PER_SHAPE of them, 55-100% of the
    largest such window, at seeded positions), with the fixations and faces inside re-indexed."""
    rng = np.random.default_rng(seed)
    out = []
    for p in photos:
        for shape in shapes:
            for k in range(RECUTS_PER_SHAPE):
                cw, ch = largest_window(p.width, p.height, AspectRatio.parse(shape).value, rng.uniform(0.55, 1.0))
                x, y = int(rng.integers(0, p.width - cw + 1)), int(rng.integers(0, p.height - ch + 1))
                fix = _inside(p.fixations, x, y, cw, ch)
                if len(fix) < MIN_RECUT_FIXATIONS:
                    continue
                faces = p.faces - (x, y, 0, 0) if len(p.faces) else p.faces
                if len(faces):  # only faces the re-cut holds (almost) whole count for it
                    faces = faces[[faces_kept(f[None], 0, 0, cw, ch) == 1 for f in faces]]
                name = f"{p.name}@{shape}#{k}"
                out.append(
                    Photo(name, p.path, (x, y, cw, ch), cw, ch, fix, _inside(p.fixations_all, x, y, cw, ch), faces)
                )
    return out


def _inside(f: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The fixations inside a window, in the window's own pixel frame."""
    keep = (f[:, 0] >= x) & (f[:, 0] < x + w) & (f[:, 1] >= y) & (f[:, 1] < y + h)
    return f[keep] - (x, y)


def validation_sets(
    shared: Path, limit: int | None = None, recut_shapes: Iterable[str] = RECUT_SHAPES, long_side: int | None = None
) -> dict[str, list[Photo]]:
    """OSIE val, EyeCrowd val, NUS Scene val and the re-cuts of the first two (of other shapes, or every
    photo shrunk to a long side, for checking that crops hold up on shapes and sizes the defaults do not
    cover)."""
    splits = load_splits()
    sets = {f"{d}_val": _photos(shared, d, splits[f"{d}_val"][:limit]) for d in FIXATION_SETS}
    sets["recuts"] = recuts([p for d in RECUT_SOURCES for p in sets[f"{d}_val"]], shapes=recut_shapes)
    if long_side is not None:
        sets = {k: [replace(p, long_side=long_side) for p in v] for k, v in sets.items()}
    return sets


# ---- running a model -------------------------------------------------------------------------------


def raw_maps(model: bytes | Path | str, photos: list[Photo], threads: int = 2) -> list[np.ndarray]:
    """The model's raw output over each photo's cells (before the card's postprocessing), each photo
    decoded as the runtime decodes it."""
    with Cropper.from_model(model, num_threads=threads) as cropper:
        return [cropper.model.raw_map(cropper.load(p.source()).rgb).values for p in photos]


def probability_maps(model: bytes | Path | str, photos: list[Photo], threads: int = 2) -> list[np.ndarray]:
    """The maps the runtime's crop search works on (card's temperature and centre prior applied)."""
    with Cropper.from_model(model, num_threads=threads) as cropper:
        return [cropper.saliency(p.source()) for p in photos]


def photo_rows(maps: Iterable[np.ndarray], photos: list[Photo], options: SearchOptions | None = None) -> list[dict]:
    """Per photo, per ratio: fixations kept (model, centre, best; without and with first fixations) and
    frontal faces kept whole (model, centre)."""
    aspects = parse_aspects(CROP_ASPECTS)
    rows = []
    for sal, p in zip(maps, photos):
        crops = by_aspect(find_crops(sal, p.width, p.height, aspects, options or SearchOptions()))
        row: dict = {"name": p.name, "n": len(p.fixations), "n_all": len(p.fixations_all), "faces": len(p.faces)}
        for a, ratio in zip(CROP_ASPECTS, aspects):
            c = crops[ratio.label][0]  # the best crop of the ratio, whatever else options ask for
            cw, ch = c.width, c.height
            cx, cy = (p.width - cw) // 2, (p.height - ch) // 2
            for key, fix in (("", p.fixations), ("all_", p.fixations_all)):
                row[f"{key}model_{a}"] = fixations_inside(fix, c.x, c.y, cw, ch)
                row[f"{key}centre_{a}"] = fixations_inside(fix, cx, cy, cw, ch)
                row[f"{key}best_{a}"] = best_placement(fix, p.width, p.height, cw, ch)
            row[f"faces_model_{a}"] = faces_kept(p.faces, c.x, c.y, cw, ch)
            row[f"faces_centre_{a}"] = faces_kept(p.faces, cx, cy, cw, ch)
        rows.append(row)
    return rows


def shares(rows: list[dict], key: str, count: str = "n") -> np.ndarray:
    """Per photo, the count under ``key`` as a share of its fixations."""
    return np.array([r[key] / r[count] if r[count] else 0.0 for r in rows])


def normalised(model: np.ndarray, centre: np.ndarray, best: np.ndarray) -> float:
    gap = best.mean() - centre.mean()
    return float((model.mean() - centre.mean()) / gap) if gap > 0 else 0.0


def resamples(photos: int, seed: int = 0) -> np.ndarray:
    """The bootstrap's photo draws, (BOOTSTRAP, photos): the same draws for every ratio of a set, so the
    interval of the set's mean over ratios is a joint one."""
    return np.random.default_rng(seed).integers(0, photos, (BOOTSTRAP, photos))


def interval(boots: np.ndarray) -> list[float]:
    return [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def ratio_boots(rows: list[dict], aspect: str, prefix: str = "") -> tuple[dict, np.ndarray]:
    """Shares kept (model, centre, best) and the normalised score, with the score of every resample."""
    count = "n_all" if prefix else "n"
    m, c, b = (shares(rows, f"{prefix}{k}_{aspect}", count) for k in ("model", "centre", "best"))
    boots = np.array([normalised(m[i], c[i], b[i]) for i in resamples(len(rows))])
    summary = {"model": float(m.mean()), "centre": float(c.mean()), "best": float(b.mean())}
    return {**summary, "normalised": normalised(m, c, b), "ci95": interval(boots)}, boots


def ratio_summary(rows: list[dict], aspect: str, prefix: str = "") -> dict:
    """Shares kept (model, centre, best), the normalised score and its bootstrap 95% interval."""
    return ratio_boots(rows, aspect, prefix)[0]


def faces_summary(rows: list[dict], aspect: str) -> dict | None:
    total = sum(r["faces"] for r in rows)
    if not total:
        return None
    return {
        "frontal_faces": total,
        "model": sum(r[f"faces_model_{aspect}"] for r in rows) / total,
        "centre": sum(r[f"faces_centre_{aspect}"] for r in rows) / total,
    }


def set_summary(rows: list[dict]) -> dict:
    """Every ratio's summary, and the mean of their normalised scores with its joint bootstrap interval."""
    out: dict = {"photos": len(rows), "ratios": {}}
    boots = []
    for a in CROP_ASPECTS:
        summary, b = ratio_boots(rows, a)
        boots.append(b)
        out["ratios"][a] = {
            **summary,
            "with_first_fixation": ratio_summary(rows, a, "all_"),
            "faces_kept_whole": faces_summary(rows, a),
        }
    out["mean_normalised"] = float(np.mean([out["ratios"][a]["normalised"] for a in CROP_ASPECTS]))
    out["mean_ci95"] = interval(np.mean(boots, axis=0))
    return out


def map_metrics(maps: list[np.ndarray], photos: list[Photo]) -> dict[str, float]:
    """Mean NSS, CC, KL, SIM, AUC-Judd, sAUC of maps over full photos (others' fixations for sAUC)."""
    rows = []
    for k, (sal, p) in enumerate(zip(maps, photos)):
        others = np.concatenate(
            [q.fixations * (p.width / q.width, p.height / q.height) for j, q in enumerate(photos) if j != k]
        )
        rows.append(metrics.all_metrics(sal, metrics.GroundTruth(p.fixations, p.width, p.height, others)))
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def evaluate_model(
    model: bytes | Path | str,
    sets: dict[str, list[Photo]],
    with_teacher: Path | None = None,
    maps_fn: Callable[[list[Photo]], list[np.ndarray]] | None = None,
    options: SearchOptions | None = None,
) -> dict:
    """The whole report for one model (its card's postprocessing applied, as users get it); with
    ``with_teacher`` (the shared folder) the teacher's map metrics beside the model's."""
    maps_fn = maps_fn or (lambda photos: probability_maps(model, photos))
    teacher = teacher_bytes(with_teacher) if with_teacher is not None else None
    report: dict = {"sets": {}}
    for name, photos in sets.items():
        maps = maps_fn(photos)
        report["sets"][name] = set_summary(photo_rows(maps, photos, options))
        if name != "recuts":
            report["sets"][name]["maps"] = map_metrics(maps, photos)
            if teacher is not None:
                report["sets"][name]["teacher_maps"] = map_metrics(probability_maps(teacher, photos), photos)
    return report


def teacher_bytes(shared: Path) -> bytes:
    from .teacher import convert_teacher

    return convert_teacher(paths.teacher_model_path(shared))


def summary(report: dict) -> dict:
    """What a choice between models is made on: the normalised crop score, per set and overall."""
    per_set = {k: v["mean_normalised"] for k, v in report["sets"].items()}
    cells = [r["normalised"] for v in report["sets"].values() for r in v["ratios"].values()]
    return {"mean_normalised": float(np.mean(list(per_set.values()))), "worst_ratio": float(min(cells)), **per_set}


def card_metrics(report: dict) -> dict:
    """The report as the model card carries it (per set: map metrics, and per ratio model / centre /
    best / normalised / interval, faces)."""
    return {"command": "python -m converters.evaluate --model edgecrop_int8 --teacher", **report["sets"]}


def format_report(report: dict, label: str = "") -> str:
    lines = [f"# {label}" if label else ""]
    for name, s in report["sets"].items():
        low, high = s["mean_ci95"]
        lines.append(
            f"{name} ({s['photos']} photos): mean normalised crop score {s['mean_normalised']:+.3f}"
            f" (95% interval [{low:+.3f}, {high:+.3f}])"
        )
        if "maps" in s:
            keys = ("NSS", "CC", "KL", "AUC-Judd", "sAUC")
            lines.append("  map     " + "  ".join(f"{k} {s['maps'][k]:.3f}" for k in keys))
            if "teacher_maps" in s:
                lines.append("  teacher " + "  ".join(f"{k} {s['teacher_maps'][k]:.3f}" for k in keys))
        lines.append(
            f"  {'ratio':<6}{'model':>8}{'centre':>8}{'best':>8}{'norm.':>8}   95% interval   faces model/centre"
        )
        for a, r in s["ratios"].items():
            faces = r["faces_kept_whole"]
            face_text = f"{faces['model']:.3f}/{faces['centre']:.3f}" if faces else ""
            lines.append(
                f"  {a:<6}{r['model']:>8.3f}{r['centre']:>8.3f}{r['best']:>8.3f}{r['normalised']:>+8.3f}"
                f"   [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]   {face_text}"
            )
    return "\n".join(lines)


def ratios(text: str) -> list[str]:
    """'3:1,1:3' -> ['3:1', '1:3'] (argparse reports parse_aspects' OptionError, a ValueError, as an invalid value)."""
    return [a.label for a in parse_aspects([r.strip() for r in text.split(",")])]


def positive(text: str) -> int:
    if int(text) < 1:
        raise ValueError(text)
    return int(text)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="bundled name or .tflite (repeatable)")
    ap.add_argument("--shared")
    ap.add_argument("--teacher", action="store_true", help="also the teacher's map metrics")
    ap.add_argument("--limit", type=int, help="only the first N photos of each validation split")
    ap.add_argument("--recut-shapes", type=ratios, default=RECUT_SHAPES, help="the re-cuts' ratios, e.g. 3:1,1:3")
    ap.add_argument("--long-side", type=positive, help="hand the cropper every photo shrunk to this long side")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    shared = paths.shared_dir(args.shared)
    sets = validation_sets(shared, args.limit, args.recut_shapes, args.long_side)
    results = {}
    for m in args.model or ["edgecrop_int8"]:
        results[m] = evaluate_model(m, sets, shared if args.teacher else None)
        print(format_report(results[m], m))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
