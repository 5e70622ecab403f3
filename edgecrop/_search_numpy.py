"""The search's NumPy engine: the best window (top-1) with no compiling, bit for bit as the Numba kernels.

It scores the same candidate windows with the same arithmetic, a whole size at once, so a process that
crops a few photos never waits for Numba (nor imports it). Ties follow the kernels' sequential rule
exactly: only windows above the first gap wider than the tolerance below the best score can end up
chosen (the first of them always displaces anything lower), and when those are all within the tolerance
of each other the rule reduces to the nearest the centre, then the smaller y, then the smaller x.
"""

from __future__ import annotations

import numpy as np

from .search import TIE_TOLERANCE


def starts(length: int, size: int, cells: int) -> np.ndarray:
    """Integer window starts that contain the best one (as ``search_numba._starts``): the integers next to
    every cell break, where the window's start or its end lies on it, and the centred start(s)."""
    top = length - size
    breaks = np.arange(cells + 1) * length / cells
    near = np.concatenate([np.floor(breaks), np.ceil(breaks)]).astype(np.int64)
    found = np.concatenate([near, near - size, [top // 2, (top + 1) // 2]])
    return np.unique(found[(found >= 0) & (found <= top)])


def _cell(v: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The table column (or row) left of each cell coordinate, and the fraction past it."""
    i = np.minimum(np.floor(v).astype(np.int64), cells - 1)
    return i, v - i


def scores(sat: np.ndarray, width: int, height: int, cw: int, ch: int, area_cost: float):
    """(x starts, y starts, scores[y, x]) of the candidate windows of one size."""
    cells_h, cells_w = sat.shape[0] - 1, sat.shape[1] - 1
    xs, ys = starts(width, cw, cells_w), starts(height, ch, cells_h)
    sx, sy = cells_w / width, cells_h / height
    c0, g0 = _cell(xs * sx, cells_w)
    c1, g1 = _cell((xs + cw) * sx, cells_w)
    left = sat[:, c0] * (1 - g0) + sat[:, c0 + 1] * g0  # the table at the windows' left edges, every row
    right = sat[:, c1] * (1 - g1) + sat[:, c1 + 1] * g1
    i0, f0 = _cell(ys * sy, cells_h)
    i1, f1 = _cell((ys + ch) * sy, cells_h)
    f0, f1 = f0[:, None], f1[:, None]
    mass = (
        (right[i1] * (1 - f1) + right[i1 + 1] * f1)
        - (left[i1] * (1 - f1) + left[i1 + 1] * f1)
        - (right[i0] * (1 - f0) + right[i0 + 1] * f0)
        + (left[i0] * (1 - f0) + left[i0 + 1] * f0)
    )
    return xs, ys, mass - area_cost * (cw * ch) / (width * height)


def best_windows(sat: np.ndarray, width: int, height: int, sizes: np.ndarray, area_cost: float) -> np.ndarray:
    """One row (x, y, width, height, score): the best window of the sizes, larger sizes first."""
    best = np.array([0.0, 0.0, 0.0, 0.0, -np.inf])
    for cw, ch in sizes.tolist():
        xs, ys, s = scores(sat, width, height, cw, ch, area_cost)
        flat = s.ravel()
        near = _contenders(flat)
        a, b = np.divmod(near, len(xs))
        x, y, score = xs[b], ys[a], flat[near]
        dist = (2 * x + cw - width) ** 2 + (2 * y + ch - height) ** 2
        if score.max() - score.min() <= TIE_TOLERANCE:
            k = int(np.lexsort((x, y, dist))[0])
            bx, by, b_score = int(x[k]), int(y[k]), float(score[k])
        else:
            bx, by, b_score = _scan(x.tolist(), y.tolist(), score.tolist(), dist.tolist())
        if best[4] == -np.inf or b_score > best[4] + TIE_TOLERANCE:  # a smaller window must be clearly better
            best[:] = bx, by, cw, ch, b_score
    return best[None]


def _contenders(flat: np.ndarray) -> np.ndarray:
    """Indices, in the kernels' scan order, of the scores above the first gap wider than the tolerance below
    the highest: looked for among the scores near the highest first (sorting them all is most of the cost)."""
    near = np.flatnonzero(flat >= flat.max() - 64 * TIE_TOLERANCE)
    cut = _above_first_gap(flat[near])
    if cut is None and len(near) < flat.size:  # no gap that near: all of them
        near = np.arange(flat.size)
        cut = _above_first_gap(flat)
    return near if cut is None else near[flat[near] >= cut]


def _above_first_gap(values: np.ndarray) -> float | None:
    """The lowest value above the first gap wider than the tolerance below the highest; None: no such gap."""
    ranked = np.sort(values)[::-1]
    gaps = np.flatnonzero(ranked[:-1] - ranked[1:] > TIE_TOLERANCE)
    return float(ranked[gaps[0]]) if len(gaps) else None


def _scan(xs: list[int], ys: list[int], scores: list[float], dists: list[int]) -> tuple[int, int, float]:
    """The kernels' tie rule, window by window: a higher score beyond the tolerance wins, a score within it
    wins when nearer the centre, then with a smaller y, then a smaller x. (Written again rather than shared:
    the kernels' disk cache would not see a change made to another file's function; the engines'
    bit-for-bit test holds the two together.)"""
    bx, by, b_score, b_dist = 0, 0, -np.inf, 0
    for x, y, score, dist in zip(xs, ys, scores, dists):
        if b_score == -np.inf or score > b_score + TIE_TOLERANCE:
            better = True
        elif score < b_score - TIE_TOLERANCE:
            better = False
        elif dist != b_dist:
            better = dist < b_dist
        elif y != by:
            better = y < by
        else:
            better = x < bx
        if better:
            bx, by, b_score, b_dist = x, y, score, dist
    return bx, by, b_score
