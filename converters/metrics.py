"""Saliency metrics with the MIT/Tuebingen benchmark conventions.

Maps are compared at the image's resolution (a low-resolution map is resized bilinearly first).
Fixation density maps: the fixation points blurred with a Gaussian of sigma = 24 px at 800x600.
- NSS: mean of the z-scored map at fixated pixels.
- CC: Pearson correlation with the fixation density map.
- KL: KL(density || map), both normalised to sum 1, with eps = 2.2e-16 (MIT's convention).
- SIM: sum of the element-wise minimum of the two distributions.
- AUC-Judd: thresholds at the map's values at fixations; false positives over all other pixels
  (with MIT's tiny seeded jitter, so that a flat map scores 0.5).
- sAUC (shuffled): positives at the image's fixations, negatives at the other images' fixations
  (the centre bias cancels); computed exactly as a Mann-Whitney statistic over all negatives.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

EPS = 2.2e-16
DENSITY_SIGMA = 24.0  # pixels at 800x600, about one degree of visual angle


def resize_map(m: np.ndarray, width: int, height: int) -> np.ndarray:
    if m.shape == (height, width):
        return m.astype(np.float64)
    return np.asarray(
        Image.fromarray(m.astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR), np.float64
    )


def fixation_points(fixations: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, column) of each fixation, clipped into the image."""
    cols = np.clip(np.floor(fixations[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.floor(fixations[:, 1]).astype(int), 0, height - 1)
    return rows, cols


@functools.lru_cache(maxsize=8)
def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """n x n Gaussian blur along one axis (zero outside the image), as a matrix."""
    k = np.arange(n)
    return np.exp(-((k[:, None] - k[None, :]) ** 2) / (2 * sigma * sigma))


def density_map(fixations: np.ndarray, width: int, height: int, sigma: float = DENSITY_SIGMA) -> np.ndarray:
    counts = np.zeros((height, width))
    rows, cols = fixation_points(fixations, width, height)
    np.add.at(counts, (rows, cols), 1.0)
    return _blur_matrix(height, sigma) @ counts @ _blur_matrix(width, sigma).T


def nss(s: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    z = (s - s.mean()) / (s.std() + EPS)
    return float(z[rows, cols].mean())


def cc(s: np.ndarray, d: np.ndarray) -> float:
    a, b = s - s.mean(), d - d.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + EPS))


def kl(s: np.ndarray, d: np.ndarray) -> float:
    p, q = d / (d.sum() + EPS), s / (s.sum() + EPS)
    return float((p * np.log(EPS + p / (q + EPS))).sum())


def sim(s: np.ndarray, d: np.ndarray) -> float:
    return float(np.minimum(s / (s.sum() + EPS), d / (d.sum() + EPS)).sum())


def auc_judd(s: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    s = (s - s.min()) / (s.max() - s.min() + EPS)
    s = s + np.random.default_rng(0).random(s.shape) * 1e-7  # MIT's jitter: ties must not decide the AUC
    thresholds = np.sort(s[rows, cols])[::-1]
    n_fix, n_pix = len(thresholds), s.size
    flat = np.sort(s.ravel())
    tp = [0.0]
    fp = [0.0]
    for k, t in enumerate(thresholds):
        above = n_pix - np.searchsorted(flat, t, side="left")
        tp.append((k + 1) / n_fix)
        fp.append((above - (k + 1)) / (n_pix - n_fix))
    tp.append(1.0)
    fp.append(1.0)
    return float(np.trapezoid(tp, fp))


def auc_ranks(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos == neg): the area under the ROC curve."""
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_vals = values[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def shuffled_auc(s: np.ndarray, rows: np.ndarray, cols: np.ndarray, other: np.ndarray) -> float:
    """``other``: (n, 2) x, y fixations of other images, in this image's pixel frame."""
    orows, ocols = fixation_points(other, s.shape[1], s.shape[0])
    return auc_ranks(s[rows, cols], s[orows, ocols])


class GroundTruth:
    """One image's fixations with what every metric needs from them, computed once."""

    def __init__(self, fixations: np.ndarray, width: int, height: int, other_fixations: np.ndarray | None = None):
        self.fixations, self.width, self.height = fixations, width, height
        self.rows, self.cols = fixation_points(fixations, width, height)
        self.density = density_map(fixations, width, height)
        self.other = other_fixations


def ground_truths(names: list[str], images: Path, fixations: dict[str, np.ndarray]) -> dict[str, GroundTruth]:
    """Per photo of one folder: fixations, density map and the other photos' fixations (for sAUC)."""
    out = {}
    for name in names:
        with Image.open(images / name) as im:
            w, h = im.size
        others = np.concatenate([fixations[n] for n in names if n != name])
        out[name] = GroundTruth(fixations[name], w, h, others)
    return out


def all_metrics(sal: np.ndarray, truth: GroundTruth) -> dict[str, float]:
    s = resize_map(sal, truth.width, truth.height)
    out = {
        "NSS": nss(s, truth.rows, truth.cols),
        "CC": cc(s, truth.density),
        "KL": kl(s, truth.density),
        "SIM": sim(s, truth.density),
        "AUC-Judd": auc_judd(s, truth.rows, truth.cols),
    }
    if truth.other is not None and len(truth.other):
        out["sAUC"] = shuffled_auc(s, truth.rows, truth.cols, truth.other)
    return out
