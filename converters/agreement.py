"""How far the crops are from what people themselves agree on.

The normalised crop score's 1 (the best placement for the very fixations it is scored on) is out of reach
for any map, even for other people. To say how much of the reachable way the model has come: split each
photo's observers at random into two halves; a map made of one half's fixations (blurred by about a degree
of visual angle, as converters.metrics makes density maps) crops for the other half, and so does the
model's map; both are scored on that other half against its centre crop and its best placement
(converters.evaluate's score; each observer's first fixation dropped). Seeded, over several splits.

    python -m converters.agreement --model edgecrop_int8 [--splits 4]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from . import metrics, paths
from .data import FIXATION_SETS, load_fixations
from .evaluate import (
    CROP_ASPECTS,
    Photo,
    normalised,
    photo_rows,
    positive,
    probability_maps,
    shares,
    validation_sets,
)

SPLITS = 4
CELL = 4  # pixels per cell of the people's map


def halves(fixations: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the fixations of a random half of the observers, and of the other half
    (``fixations``: x, y, observer)."""
    who = np.unique(fixations[:, 2])
    rng.shuffle(who)
    mine = np.isin(fixations[:, 2], who[: len(who) // 2])
    return fixations[mine, :2], fixations[~mine, :2]


def people_map(fixations: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fixations blurred by about a degree, on CELL-pixel cells covering the photo, summing to 1."""
    w, h = max(1, width // CELL), max(1, height // CELL)
    d = metrics.density_map(fixations * (w / width, h / height), w, h, metrics.DENSITY_SIGMA / CELL)
    total = d.sum()
    return (d / total if total > 0 else np.full((h, w), 1.0 / (w * h))).astype(np.float32)


def split_half(
    maps: list[np.ndarray], photos: list[Photo], observers: dict[str, np.ndarray], splits: int = SPLITS, seed: int = 0
) -> dict:
    """Per ratio and on average, the normalised crop score of the model's map and of the other half's
    map, both on the held half's fixations."""
    rng = np.random.default_rng(seed)
    model, people = [], []
    for _ in range(splits):
        for sal, p in zip(maps, photos):
            mine, theirs = halves(observers[p.name], rng)
            if not len(mine) or not len(theirs):
                continue
            held = replace(p, fixations=theirs, fixations_all=theirs)
            model += photo_rows([sal], [held])
            people += photo_rows([people_map(mine, p.width, p.height)], [held])
    out: dict = {"photos": len(photos), "splits": splits, "ratios": {}}
    for a in CROP_ASPECTS:
        centre, best = shares(model, f"centre_{a}"), shares(model, f"best_{a}")
        out["ratios"][a] = {
            who: normalised(shares(rows, f"model_{a}"), centre, best)
            for who, rows in (("model", model), ("people", people))
        }
    for who in ("model", "people"):
        out[who] = float(np.mean([r[who] for r in out["ratios"].values()]))
    return out


def format_split_half(name: str, s: dict) -> str:
    lines = [f"{name} ({s['photos']} photos, {s['splits']} random splits of the observers)"]
    lines.append(f"  {'ratio':<6}{'model':>8}{'people':>8}{'share':>8}")
    for a, r in [*s["ratios"].items(), ("mean", s)]:
        share = r["model"] / r["people"] if r["people"] > 0 else float("nan")
        lines.append(f"  {a:<6}{r['model']:>+8.3f}{r['people']:>+8.3f}{share:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="edgecrop_int8", help="bundled name or .tflite")
    ap.add_argument("--shared")
    ap.add_argument("--splits", type=positive, default=SPLITS)
    ap.add_argument("--limit", type=int, help="only the first N photos of each validation split")
    args = ap.parse_args(argv)
    shared = paths.shared_dir(args.shared)
    sets = validation_sets(shared, args.limit)
    results = {}
    for d in FIXATION_SETS:
        observers = {f"{d}/{n}": f for n, f in load_fixations(shared / "data" / d, observers=True).items()}
        photos = sets[f"{d}_val"]
        results[d] = split_half(probability_maps(args.model, photos), photos, observers, args.splits)
        print(format_split_half(f"{d}_val", results[d]), flush=True)
    return results


if __name__ == "__main__":
    main()
