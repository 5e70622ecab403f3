"""Stage 8: evaluate models on OSIE fixations and on held-out corpus photos of every shape.

Every model runs through edgecrop's own runtime (Cropper), exactly as users run it. Printed per model:
NSS, CC, KL, SIM, AUC-Judd, sAUC (conventions in converters.metrics), and crop quality: for 16:9, 1:1,
4:5 and 9:16, the share of human fixations inside the largest window of that ratio as placed by the
model, by a centre crop, and by the best possible placement. With --holdout, agreement with the
teacher (CC, KL of the maps) on held-out corpus photos by shape (portrait, square, landscape, panoramic).

    python -m converters.evaluate --model edgecrop_int8 --data ../shared/data/osie --split val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from edgecrop import Cropper, SearchOptions
from edgecrop.cropper import find_crops
from edgecrop.geometry import AspectRatio, largest_window

from . import metrics, paths
from .data import load_fixations, load_splits, shape_class
from .teacher import convert_teacher

CROP_ASPECTS = ("16:9", "1:1", "4:5", "9:16")


def fixations_inside(fix: np.ndarray, x: int, y: int, w: int, h: int) -> int:
    return int(((fix[:, 0] >= x) & (fix[:, 0] < x + w) & (fix[:, 1] >= y) & (fix[:, 1] < y + h)).sum())


def best_placement(fix: np.ndarray, width: int, height: int, cw: int, ch: int) -> int:
    """Most fixations any cw x ch window can hold (exhaustive over integer positions)."""
    best = 0
    for y in range(height - ch + 1) if ch < height else [0]:
        for x in range(width - cw + 1) if cw < width else [0]:
            best = max(best, fixations_inside(fix, x, y, cw, ch))
    return best


def ground_truths(names: list[str], images: Path, fixations: dict[str, np.ndarray]) -> dict[str, metrics.GroundTruth]:
    """Per photo: fixations, density map and the other photos' fixations (for sAUC)."""
    out = {}
    for name in names:
        with Image.open(images / name) as im:
            w, h = im.size
        others = np.concatenate([fixations[n] for n in names if n != name])
        out[name] = metrics.GroundTruth(fixations[name], w, h, others)
    return out


def evaluate_osie(
    model_maps, truths: dict[str, metrics.GroundTruth], images: Path, options: SearchOptions | None = None
) -> dict:
    """Mean metrics and crop fixation shares for a function path -> (saliency map, image size)."""
    rows, crop_rows = [], {a: [] for a in CROP_ASPECTS}
    ratios = [(a, AspectRatio.parse(a).value) for a in CROP_ASPECTS]
    for name, truth in truths.items():
        sal, (w, h) = model_maps(images / name)
        rows.append(metrics.all_metrics(sal, truth))
        for c in find_crops(sal, w, h, ratios, options or SearchOptions()):
            crop_rows[c.aspect].append(
                fixations_inside(truth.fixations, c.x, c.y, c.width, c.height) / len(truth.fixations)
            )
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["crop_fixation_share"] = {a: float(np.mean(v)) for a, v in crop_rows.items()}
    return out


def crop_baselines(names: list[str], fixations: dict[str, np.ndarray], width: int, height: int) -> dict:
    """Fixation share of the centre crop and of the best possible placement, per ratio."""
    out = {"centre": {}, "best": {}}
    for a in CROP_ASPECTS:
        cw, ch = largest_window(width, height, AspectRatio.parse(a).value)
        x, y = (width - cw) // 2, (height - ch) // 2
        fix = [fixations[n] for n in names]
        out["centre"][a] = float(np.mean([fixations_inside(f, x, y, cw, ch) / len(f) for f in fix]))
        out["best"][a] = float(np.mean([best_placement(f, width, height, cw, ch) / len(f) for f in fix]))
    return out


def holdout_agreement(cropper: Cropper, teacher_maps: dict[Path, np.ndarray]) -> dict:
    """CC and KL between a model's map and the teacher's, per photo shape."""
    by_shape: dict[str, list[tuple[float, float]]] = {}
    for p, t in teacher_maps.items():
        loaded = cropper.load(p)
        s = cropper.saliency(loaded)
        s_up = metrics.resize_map(s, t.shape[1], t.shape[0])
        by_shape.setdefault(shape_class(loaded.width, loaded.height), []).append(
            (metrics.cc(s_up, t), metrics.kl(s_up, t))
        )
    return {
        k: {"n": len(v), "CC": float(np.mean([a for a, _ in v])), "KL": float(np.mean([b for _, b in v]))}
        for k, v in sorted(by_shape.items())
    }


def maps_of(cropper: Cropper):
    """path -> (the cropper's saliency map, image size): what evaluate_osie takes."""

    def run(path: Path):
        loaded = cropper.load(path)
        return cropper.saliency(loaded), (loaded.width, loaded.height)

    return run


def _centre_maps(path: Path):
    with Image.open(path) as im:
        w, h = im.size
    return metrics.centre_bias(w, h), (w, h)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="bundled name or .tflite (repeatable)")
    ap.add_argument("--shared")
    ap.add_argument("--data", help="OSIE folder (default <shared>/data/osie)")
    ap.add_argument("--split", choices=["val", "train"], default="val")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--holdout", action="store_true", help="also agreement with the teacher on held-out corpus photos")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    shared = paths.shared_dir(args.shared)
    osie = Path(args.data) if args.data else shared / "data" / "osie"
    names = load_splits()[f"osie_{args.split}"][: args.limit]
    fixations = load_fixations(osie)
    teacher = Cropper.from_model(convert_teacher(paths.teacher_model_path(shared)), num_threads=args.threads)
    models = {m: Cropper.from_model(m, num_threads=args.threads) for m in args.model}
    results: dict = {"split": args.split, "images": len(names), "models": {}}
    truths = ground_truths(names, osie / "images", fixations)
    for label, cropper in models.items():
        results["models"][label] = evaluate_osie(maps_of(cropper), truths, osie / "images")
    if not args.no_teacher:
        results["models"]["teacher"] = evaluate_osie(maps_of(teacher), truths, osie / "images")
    results["models"]["centre-bias"] = evaluate_osie(_centre_maps, truths, osie / "images")
    results["crop_baselines"] = crop_baselines(names, fixations, 800, 600)
    if args.holdout:
        holdout = [shared / "data" / "corpus" / n for n in load_splits()["corpus_holdout"]][: args.limit]
        teacher_maps = {p: teacher.saliency(p) for p in holdout}
        results["holdout_vs_teacher"] = {m: holdout_agreement(c, teacher_maps) for m, c in models.items()}
    print(format_results(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return results


def format_results(results: dict) -> str:
    keys = ["NSS", "CC", "KL", "SIM", "AUC-Judd", "sAUC"]
    lines = [
        f"OSIE {results['split']} ({results['images']} photos)",
        f"{'model':<28}" + "".join(f"{k:>10}" for k in keys),
    ]
    for label, r in results["models"].items():
        lines.append(f"{_short(label):<28}" + "".join(f"{r.get(k, float('nan')):>10.3f}" for k in keys))
    lines.append("")
    lines.append("share of human fixations inside the largest crop of each ratio")
    lines.append(f"{'placement':<28}" + "".join(f"{a:>10}" for a in CROP_ASPECTS))
    for label, r in results["models"].items():
        lines.append(f"{_short(label):<28}" + "".join(f"{r['crop_fixation_share'][a]:>10.3f}" for a in CROP_ASPECTS))
    for label in ("centre", "best"):
        row = results["crop_baselines"][label]
        lines.append(f"{label + ' crop':<28}" + "".join(f"{row[a]:>10.3f}" for a in CROP_ASPECTS))
    for model, shapes in results.get("holdout_vs_teacher", {}).items():
        lines.append("")
        lines.append(f"agreement with the teacher on held-out corpus photos: {_short(model)}")
        for shape, v in shapes.items():
            lines.append(f"  {shape:<10} n={v['n']:<4} CC {v['CC']:.3f}  KL {v['KL']:.3f}")
    return "\n".join(lines)


def _short(label: str) -> str:
    """A model label that fits a column: the last two path parts."""
    return "/".join(Path(label).parts[-2:])[-27:]


if __name__ == "__main__":
    main()
