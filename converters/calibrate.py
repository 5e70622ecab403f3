"""Stage 7: calibrate the map for the crops it leads to: a temperature and a centre prior.

The search keeps the window with the most probability mass, so what matters is that the map is a
calibrated probability of where people look, centre bias included, on photos of any shape. A student
trained on OSIE-like photos is over-confident away from the centre on other photos; a flatter map
(temperature T > 1) mixed with a centred Gaussian (weight w, standard deviation sigma times each side)
corrects that (a temperature below 1 would sharpen the map past what its training calibrated; once
chosen at 0.75, it cost the maps their edge over the teacher's, so the grid starts at 1); the weight may
then follow how unsure each map is (its entropy: ``CentrePrior.confidence``, a second grid at the chosen
temperature and sigma, so that a map that knows little leans on the centre more, or less). The
numbers are chosen on the validation crops (OSIE val, EyeCrowd val, NUS Scene val and the first two's
shape re-cuts, every ratio), maximising the mean plus the worst of the sets' pooled scores, where a
set's pooled score is its fixations gained over the centre crop, summed over the four ratios, divided by
what the best placements gain (so no kind of photo is traded away for another, and ratios where the
centre crop is already nearly perfect, whose normalised scores are mostly noise, weigh what they gain).
They live in the model card (``output.temperature``, ``output.centre_prior``), which the Python and
Java runtimes both apply.

A 2-fold cross-validation (fit on half the photos, score on the other half) says how much of the
gain is selection on the validation photos themselves.

    python -m converters.calibrate --model models/edgecrop_int8.tflite
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import numpy as np

from edgecrop import CentrePrior, Cropper, OutputCard
from edgecrop.postprocess import postprocess
from edgecrop.search import SearchOptions, find_crops, parse_aspects

from . import paths
from .evaluate import CROP_ASPECTS, Photo, fixations_inside, photo_rows, raw_maps, validation_sets

log = logging.getLogger("converters.calibrate")

TEMPERATURES = (1.0, 1.25, 1.5, 2.0, 3.0)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75)
SIGMAS = (0.15, 0.2, 0.25, 0.35, 0.5)
# how the prior's weight follows the map's unsureness (CentrePrior.confidence), searched at the best
# temperature and sigma of the first grid: 0 is the fixed weight of that grid
CONFIDENCES = (-1.0, -0.5, 0.5, 1.0, 2.0)
CV_SEED = 5

Params = tuple[float, float, float, float]  # temperature, weight, sigma, confidence


def grid() -> list[Params]:
    """(temperature, weight, sigma, 0); with weight 0 the sigma does not matter, so it appears once."""
    return [(t, w, s, 0.0) for t, w, s in itertools.product(TEMPERATURES, WEIGHTS, SIGMAS) if w > 0 or s == SIGMAS[0]]


def confidence_grid(temperature: float, sigma: float) -> list[Params]:
    """The weights again, each with every confidence, at one temperature and sigma."""
    return [(temperature, w, sigma, c) for w, c in itertools.product(WEIGHTS, CONFIDENCES)]


def kept_counts(raw: list[np.ndarray], photos: list[Photo], params: list[Params], output: OutputCard) -> np.ndarray:
    """Fixations kept by the crop of each ratio: (len(params), len(photos), len(CROP_ASPECTS)), the raw
    maps postprocessed as ``output`` says at each (temperature, prior weight, sigma, confidence)."""
    aspects, options = parse_aspects(CROP_ASPECTS), SearchOptions()
    out = np.zeros((len(params), len(photos), len(aspects)))
    for k, (t, w, s, c) in enumerate(params):
        for i, (r, p) in enumerate(zip(raw, photos)):
            sal = postprocess(r, output, temperature=t, prior=CentrePrior(w, s, c))
            for j, crop in enumerate(find_crops(sal, p.width, p.height, aspects, options)):
                out[k, i, j] = fixations_inside(p.fixations, crop.x, crop.y, crop.width, crop.height)
    return out


def cells(kept: np.ndarray, baselines: dict[str, np.ndarray], index: dict[str, np.ndarray]) -> np.ndarray:
    """Normalised scores (model - centre) / (best - centre) of every (set, ratio), for every parameter
    set: (len(params), sets * ratios). ``index`` picks each set's photos."""
    out = []
    for idx in index.values():
        n = baselines["n"][idx][:, None]
        model = (kept[:, idx, :] / n).mean(axis=1)  # (params, ratios)
        centre = (baselines["centre"][idx] / n).mean(axis=0)
        best = (baselines["best"][idx] / n).mean(axis=0)
        out.append((model - centre) / np.maximum(best - centre, 1e-9))
    return np.concatenate(out, axis=1)


def pooled(kept: np.ndarray, baselines: dict[str, np.ndarray], index: dict[str, np.ndarray]) -> np.ndarray:
    """Per set, fixations gained over the centre crop summed over the ratios, over what the best
    placements gain: (len(params), sets)."""
    out = []
    for idx in index.values():
        n = baselines["n"][idx][:, None]
        gain = (kept[:, idx, :] / n).mean(axis=1).sum(axis=1) - (baselines["centre"][idx] / n).mean(axis=0).sum()
        room = ((baselines["best"][idx] - baselines["centre"][idx]) / n).mean(axis=0).sum()
        out.append(gain / max(room, 1e-9))
    return np.stack(out, axis=1)


def objective(sets: np.ndarray) -> np.ndarray:
    """Mean plus worst of the sets' pooled scores."""
    return sets.mean(axis=1) + sets.min(axis=1)


def fit(model: bytes | Path | str, sets: dict[str, list[Photo]]) -> dict:
    """The best (temperature, centre prior) on the validation sets, with its evidence."""
    params = grid()
    names = list(sets)
    photos = [p for n in names for p in sets[n]]
    starts = np.cumsum([0] + [len(sets[n]) for n in names])
    index = {n: np.arange(starts[i], starts[i + 1]) for i, n in enumerate(names)}
    raw = [m for n in names for m in raw_maps(model, sets[n])]
    with Cropper.from_model(model) as cropper:
        output = cropper.model.info.card.output
    no_prior = CentrePrior(0.0, SIGMAS[0])
    rows = photo_rows([postprocess(r, output, temperature=1.0, prior=no_prior) for r in raw], photos)
    baselines = {
        "n": np.array([r["n"] for r in rows], float),
        "centre": np.array([[r[f"centre_{a}"] for a in CROP_ASPECTS] for r in rows], float),
        "best": np.array([[r[f"best_{a}"] for a in CROP_ASPECTS] for r in rows], float),
    }
    log.info("calibrating on %d photos x %d parameter sets", len(photos), len(params))
    kept = kept_counts(raw, photos, params, output)
    t, _, s, _ = params[int(np.argmax(objective(pooled(kept, baselines, index))))]
    more = confidence_grid(t, s)
    log.info("and %d more: the prior's weight following the map's unsureness", len(more))
    params, kept = params + more, np.concatenate([kept, kept_counts(raw, photos, more, output)])
    all_cells = cells(kept, baselines, index)
    score = objective(pooled(kept, baselines, index))
    best = int(np.argmax(score))
    plain = params.index((1.0, 0.0, SIGMAS[0], 0.0))

    # 2-fold cross-validation: choose on one half of every set, measure on the other half
    rng = np.random.default_rng(CV_SEED)
    halves = {n: np.array_split(rng.permutation(idx), 2) for n, idx in index.items()}
    held_out = []
    for fold in (0, 1):
        fit_idx = {n: h[fold] for n, h in halves.items()}
        test_idx = {n: h[1 - fold] for n, h in halves.items()}
        k = int(np.argmax(objective(pooled(kept, baselines, fit_idx))))
        test = pooled(kept, baselines, test_idx)
        held_out.append(
            {
                "chosen": _named(params[k]),
                "test_pooled": dict(zip(names, np.round(test[k], 4).tolist())),
                "test_pooled_uncalibrated": dict(zip(names, np.round(test[plain], 4).tolist())),
                "test": _cells_dict(cells(kept, baselines, test_idx)[k], names),
            }
        )
    t, w, s, c = params[best]
    return {
        "temperature": t,
        "centre_prior": {"weight": w, "sigma": s, "confidence": c} if w > 0 or c != 0 else None,
        "objective": f"mean + worst over ({', '.join(names)}) of the pooled normalised crop score",
        "photos": {n: len(sets[n]) for n in names},
        "pooled": dict(zip(names, np.round(pooled(kept, baselines, index)[best], 4).tolist())),
        "pooled_uncalibrated": dict(zip(names, np.round(pooled(kept, baselines, index)[plain], 4).tolist())),
        "chosen": _cells_dict(all_cells[best], names),
        "uncalibrated": _cells_dict(all_cells[plain], names),
        "cross_validation": held_out,
        "grid": {"temperature": TEMPERATURES, "weight": WEIGHTS, "sigma": SIGMAS, "confidence": CONFIDENCES},
    }


def _named(p: Params) -> dict:
    return {"temperature": p[0], "weight": p[1], "sigma": p[2], "confidence": p[3]}


def _cells_dict(row: np.ndarray, names: list[str]) -> dict:
    out: dict = {}
    for i, n in enumerate(names):
        part = row[i * len(CROP_ASPECTS) : (i + 1) * len(CROP_ASPECTS)]
        out[n] = {a: round(float(v), 4) for a, v in zip(CROP_ASPECTS, part)} | {"mean": round(float(part.mean()), 4)}
    out["mean"] = round(float(row.mean()), 4)
    out["worst"] = round(float(row.min()), 4)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="edgecrop_int8", help="bundled name or .tflite (its raw logit maps are used)")
    ap.add_argument("--shared")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = fit(args.model, validation_sets(paths.shared_dir(args.shared), args.limit))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
