"""Crop search on the low-resolution saliency map (Numba, compiled once and cached on disk).

The map is a piecewise-constant density over the image (each cell covers W/w x H/h pixels). The
saliency mass of any window is read from a summed-area table by bilinear interpolation, which is
exact for such a density. Mass is piecewise (bi)linear in the window position, with breaks where an
edge crosses a cell boundary, so the best integer position is among the integers next to those
breaks, the window ends and the centred position: evaluating only those is exact, and cheap.

Scoring. A window's score is ``mass - area_cost * area / image_area`` where the map sums to 1 (plus
the weights of caller boosts). With ``area_cost`` = 0 a larger window never scores less, so the
default (scale 1) is the largest window of each ratio. For smaller windows (``min_scale`` < 1), a
region is worth keeping only when its saliency density exceeds ``area_cost`` times the mean: an
``area_cost`` below 1 keeps a uniform map at full size, and ``min_scale`` bounds how small a window
may get, so the search cannot collapse onto a tiny peak.

Ties (within 1e-9) go to the window closest to the image centre, then the smaller y, then smaller x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .geometry import Box, largest_window

TIE_TOLERANCE = 1e-9


@numba.njit(cache=True)
def summed_area(m: np.ndarray) -> np.ndarray:
    """(h+1) x (w+1) table: sat[i, j] = sum of m[:i, :j]."""
    h, w = m.shape
    sat = np.zeros((h + 1, w + 1))
    for i in range(h):
        row = 0.0
        for j in range(w):
            row += m[i, j]
            sat[i + 1, j + 1] = sat[i, j + 1] + row
    return sat


@numba.njit(cache=True)
def _integral(sat: np.ndarray, u: float, v: float) -> float:
    """Mass of [0, u] x [0, v] in cell units (bilinear in the table: exact for constant cells)."""
    h = sat.shape[0] - 1
    w = sat.shape[1] - 1
    j = min(int(u), w - 1)
    i = min(int(v), h - 1)
    fu = u - j
    fv = v - i
    top = sat[i, j] * (1 - fu) + sat[i, j + 1] * fu
    bottom = sat[i + 1, j] * (1 - fu) + sat[i + 1, j + 1] * fu
    return top * (1 - fv) + bottom * fv


@numba.njit(cache=True)
def window_mass(sat: np.ndarray, width: int, height: int, x: int, y: int, cw: int, ch: int) -> float:
    """Saliency mass of the pixel window (x, y, cw, ch) in a width x height image."""
    sx = (sat.shape[1] - 1) / width
    sy = (sat.shape[0] - 1) / height
    u0, u1 = x * sx, (x + cw) * sx
    v0, v1 = y * sy, (y + ch) * sy
    return _integral(sat, u1, v1) - _integral(sat, u0, v1) - _integral(sat, u1, v0) + _integral(sat, u0, v0)


@numba.njit(cache=True)
def candidates(length: int, size: int, cells: int) -> np.ndarray:
    """Integer window starts that contain the best one: next to breaks, ends and centre."""
    top = length - size
    out = np.empty(4 * (cells + 1) + 4, dtype=np.int64)
    n = 0
    for k in range(cells + 1):
        b = k * length / cells
        for p in (np.floor(b), np.ceil(b), np.floor(b - size), np.ceil(b - size)):
            if 0 <= p <= top:
                out[n] = int(p)
                n += 1
    out[n] = 0
    out[n + 1] = top
    out[n + 2] = top // 2
    out[n + 3] = (top + 1) // 2
    return np.unique(out[: n + 4])


@numba.njit(cache=True)
def score_grid(sat: np.ndarray, width: int, height: int, cw: int, ch: int, area_cost: float):
    """Candidate starts and the score of each (x, y) pair: (xs, ys, scores[len(ys), len(xs)])."""
    xs = candidates(width, cw, sat.shape[1] - 1)
    ys = candidates(height, ch, sat.shape[0] - 1)
    penalty = area_cost * (cw * ch) / (width * height)
    scores = np.empty((ys.size, xs.size))
    for a in range(ys.size):
        for b in range(xs.size):
            scores[a, b] = window_mass(sat, width, height, xs[b], ys[a], cw, ch) - penalty
    return xs, ys, scores


@numba.njit(cache=True)
def _better(score, dist, y, x, best_score, best_dist, best_y, best_x) -> bool:
    if score > best_score + TIE_TOLERANCE:
        return True
    if score < best_score - TIE_TOLERANCE:
        return False
    if dist != best_dist:
        return dist < best_dist
    if y != best_y:
        return y < best_y
    return x < best_x


@numba.njit(cache=True)
def best_window(sat: np.ndarray, width: int, height: int, cw: int, ch: int, area_cost: float):
    """(x, y, score) of the best position of a cw x ch window, ties broken as documented."""
    xs, ys, scores = score_grid(sat, width, height, cw, ch, area_cost)
    best = (-np.inf, 0, 0, 0)
    for a in range(ys.size):
        for b in range(xs.size):
            y, x = ys[a], xs[b]
            dist = (2 * x + cw - width) ** 2 + (2 * y + ch - height) ** 2
            if _better(scores[a, b], dist, y, x, best[0], best[1], best[2], best[3]):
                best = (scores[a, b], dist, y, x)
    return best[3], best[2], best[0]


@dataclass(frozen=True)
class Boost:
    """Caller guidance: a box (x, y, width, height in image pixels; width = height = 0 for a point)
    that adds ``weight`` times the model map's total mass. A point boosts one map cell around it."""

    x: float
    y: float
    width: float = 0.0
    height: float = 0.0
    weight: float = 1.0


def apply_boosts(saliency: np.ndarray, width: int, height: int, boosts: tuple[Boost, ...]) -> np.ndarray:
    """The map plus each boost's weight (times the map's mass) over the cells its box covers, summing to 1."""
    h, w = saliency.shape
    total = float(saliency.sum())
    out = saliency.astype(np.float64) / total if total > 0 else np.full((h, w), 1.0 / (h * w))
    for b in boosts:
        bw = b.width * w / width if b.width > 0 else 1.0  # a point: one cell wide
        bh = b.height * h / height if b.height > 0 else 1.0
        u0 = b.x * w / width - (0 if b.width > 0 else 0.5)
        v0 = b.y * h / height - (0 if b.height > 0 else 0.5)
        cover_x = _coverage(u0, u0 + bw, w)
        cover_y = _coverage(v0, v0 + bh, h)
        cover = np.outer(cover_y, cover_x)
        if cover.sum() > 0:
            out += b.weight * cover / cover.sum()
    return out / out.sum()


def _coverage(a: float, b: float, n: int) -> np.ndarray:
    """Length of [a, b] inside each unit cell [k, k+1) of 0..n."""
    k = np.arange(n)
    return np.clip(np.minimum(b, k + 1) - np.maximum(a, k), 0, None)


@dataclass(frozen=True)
class Candidate:
    box: Box
    score: float


def search(
    sat: np.ndarray,
    width: int,
    height: int,
    ratio: float,
    *,
    min_scale: float = 1.0,
    scale_steps: int = 1,
    area_cost: float = 0.0,
    top_k: int = 1,
    nms_iou: float = 0.5,
) -> list[Candidate]:
    """Best windows of one aspect ratio: top-k by score, with non-maximum suppression."""
    scales = [1.0] if min_scale >= 1.0 else list(np.linspace(1.0, min_scale, max(2, scale_steps)))
    best: Candidate | None = None
    for s in scales:
        cw, ch = largest_window(width, height, ratio, s)
        x, y, score = best_window(sat, width, height, cw, ch, area_cost)
        if best is None or score > best.score + TIE_TOLERANCE:
            best = Candidate(Box(int(x), int(y), cw, ch), float(score))
    chosen = [best]
    if top_k == 1:
        return chosen
    pool = []
    for s in scales:
        cw, ch = largest_window(width, height, ratio, s)
        xs, ys, scores = score_grid(sat, width, height, cw, ch, area_cost)
        for a, y in enumerate(ys):
            for b, x in enumerate(xs):
                pool.append((-scores[a, b], int(y), int(x), cw, ch))
    pool.sort()
    for neg_score, y, x, cw, ch in pool:
        box = Box(x, y, cw, ch)
        if all(box.iou(c.box) < nms_iou for c in chosen):
            chosen.append(Candidate(box, float(-neg_score)))
            if len(chosen) == top_k:
                break
    return chosen


def most_salient_point(saliency: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Centre, in image pixels, of the first cell (row-major) holding the map's maximum."""
    i, j = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    h, w = saliency.shape
    return (j + 0.5) * width / w, (i + 0.5) * height / h


def centred_window(cx: float, cy: float, width: int, height: int, ratio: float) -> Box:
    """Twitter's policy: the largest window of ``ratio`` centred on a point, shifted inside the image."""
    cw, ch = largest_window(width, height, ratio)
    x = min(max(int(np.floor(cx - cw / 2 + 0.5)), 0), width - cw)
    y = min(max(int(np.floor(cy - ch / 2 + 0.5)), 0), height - ch)
    return Box(x, y, cw, ch)
