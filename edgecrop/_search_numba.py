"""The search's Numba engine: three kernels, compiled once and cached on disk, for every option.

``candidates`` (the window starts worth scoring) -> ``score_windows`` (every one of them, and the best)
-> ``alternatives`` (top-k with non-maximum suppression, compiled only when asked for). Their arrays are
made in Python (``best_windows``), so that compiling them compiles no allocation code. Imported only when
the search first needs it: importing Numba costs a process about 0.3 s and 90 MB.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from pathlib import Path

import numba
import numpy as np

from .search import TIE_TOLERANCE


@functools.cache  # one choice for the three kernels
def _cache_folder() -> Path | None:
    """Where compiled kernels are cached: NUMBA_CACHE_DIR when the user set it; else the user's cache
    (XDG_CACHE_HOME or ~/.cache, then edgecrop/numba); else a private folder under the temporary directory
    (a service account with a read-only home). Never beside the package: an installed package's folder is
    not ours to write (Numba's default), and others may share it. None: nowhere, compile per process."""
    if getattr(numba.config, "CACHE_DIR", ""):
        return Path(numba.config.CACHE_DIR)  # type: ignore[attr-defined]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for folder in (Path(xdg) / "edgecrop" / "numba", Path(tempfile.gettempdir()) / f"edgecrop-numba-{uid}"):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = folder.stat()
            private = not hasattr(os, "getuid") or (st.st_uid == uid and not st.st_mode & 0o022)
            if private and os.access(folder, os.W_OK):  # never load code another user could have planted
                return folder
        except OSError:
            pass
    return None


def _jit(fn):
    """numba.njit with the compiled code cached on disk in ``_cache_folder()``, else compiled per process."""
    folder = _cache_folder()
    if folder is not None:
        numba.config.CACHE_DIR = str(folder)  # read when a kernel's cache is made
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError:  # "no locator available"
            pass
    return numba.njit(nogil=True)(fn)


@numba.njit(nogil=True)
def _starts(length, size, cells, breaks, out):
    """Integer window starts that contain the best one, sorted and unique, written into ``out``; returns
    how many. They are the integers next to every cell break (the window's start on it, or its end:
    the same list shifted by ``size``), the two ends and the centre: sorted lists, merged."""
    top = length - size
    m = 0
    for k in range(cells + 1):
        b = k * length / cells
        low, high = math.floor(b), math.ceil(b)
        if m == 0 or low > breaks[m - 1]:  # floors never decrease: only a ceiling can repeat
            breaks[m] = low
            m += 1
        if high > breaks[m - 1]:
            breaks[m] = high
            m += 1
    i = j = n = 0
    centre = top // 2  # and centre + 1 for an odd top
    while i < m or j < m:
        v = breaks[i] if i < m else top + 1
        if j < m and breaks[j] - size < v:
            v = breaks[j] - size
        if centre <= (top + 1) // 2 and centre < v:
            v = centre
        while i < m and breaks[i] == v:
            i += 1
        while j < m and breaks[j] - size == v:
            j += 1
        if v == centre:
            centre += 1
        if 0 <= v <= top and (n == 0 or v > out[n - 1]):
            out[n] = v
            n += 1
    return n


@numba.njit(nogil=True)
def _cell(v, cells):
    """The table column (or row) left of the cell coordinate v (>= 0), and v's fraction past it."""
    i = math.floor(v)
    if i > cells - 1:
        i = cells - 1
    return i, v - i


@_jit
def candidates(sat, width, height, sizes, area_cost, breaks, xs, ys, nx, ny, col, frac, penalty, start):
    """Stage 1, per window size: the starts that contain the best window (``_starts``), the table columns
    and fractions of the windows' left and right edges, the area cost, and where its windows' scores
    begin in a list of them all (``start``, one more entry than sizes)."""
    cells_h, cells_w = sat.shape[0] - 1, sat.shape[1] - 1
    sx = cells_w / width
    for k in range(sizes.shape[0]):
        cw, ch = sizes[k, 0], sizes[k, 1]
        nx[k] = _starts(width, cw, cells_w, breaks, xs[k])
        ny[k] = _starts(height, ch, cells_h, breaks, ys[k])
        for b in range(nx[k]):
            col[k, 0, b], frac[k, 0, b] = _cell(xs[k, b] * sx, cells_w)
            col[k, 1, b], frac[k, 1, b] = _cell((xs[k, b] + cw) * sx, cells_w)
        penalty[k] = area_cost * (cw * ch) / (width * height)
        start[k + 1] = start[k] + nx[k] * ny[k]


@numba.njit(nogil=True)
def _row_scores(sat, y, ch, sy, penalty, nx, col, frac, table, done, scores):
    """Scores of the windows starting at row y, into ``scores``, and the highest: the mass from the table's
    four corners, with the same arithmetic as _integral (so the same bits as window_mass). Rows of the
    table interpolated at the candidate columns are computed the first time an edge needs them."""
    cells_h = sat.shape[0] - 1
    i0, f0 = _cell(y * sy, cells_h)
    i1, f1 = _cell((y + ch) * sy, cells_h)
    for e in range(2):  # e = 0: the windows' left edges, 1: their right edges
        for i in (i0, i0 + 1, i1, i1 + 1):
            if not done[e, i]:
                for b in range(nx):
                    table[e, i, b] = sat[i, col[e, b]] * (1 - frac[e, b]) + sat[i, col[e, b] + 1] * frac[e, b]
                done[e, i] = True
    left, right = table[0], table[1]
    r0, r1, l0, l1 = right[i0], right[i0 + 1], left[i0], left[i0 + 1]
    r2, r3, l2, l3 = right[i1], right[i1 + 1], left[i1], left[i1 + 1]
    top = -np.inf
    for b in range(nx):
        mass = (
            (r2[b] * (1 - f1) + r3[b] * f1)
            - (l2[b] * (1 - f1) + l3[b] * f1)
            - (r0[b] * (1 - f0) + r1[b] * f0)
            + (l0[b] * (1 - f0) + l1[b] * f0)
        )
        scores[b] = mass - penalty
        if scores[b] > top:
            top = scores[b]
    return top


@_jit
def score_windows(
    sat, width, height, sizes, xs, ys, nx, ny, col, frac, penalty, table, done, keep_all, kept, start, row_best, best
):
    """Stage 2: every candidate window's score (with ``keep_all``, kept from ``start[k]`` on for the
    alternatives; else ``kept`` holds one row), each row's highest, and the best window by the documented
    tie rules into ``best`` (x, y, cw, ch, score)."""
    sy = (sat.shape[0] - 1) / height
    best[4] = -np.inf
    for k in range(sizes.shape[0]):
        cw, ch = sizes[k, 0], sizes[k, 1]
        for e in range(2):
            for i in range(done.shape[1]):
                done[e, i] = False
        bx, by, b_score, b_dist = 0, 0, -np.inf, 0  # this size's best so far
        for a in range(ny[k]):
            y = ys[k, a]
            o = start[k] + a * nx[k] if keep_all else 0
            scores = kept[o : o + nx[k]]
            row_best[k, a] = _row_scores(sat, y, ch, sy, penalty[k], nx[k], col[k], frac[k], table, done, scores)
            if row_best[k, a] < b_score - TIE_TOLERANCE:  # nothing in this row can win
                continue
            for b in range(nx[k]):
                x, score = xs[k, b], scores[b]
                dx, dy = 2 * x + cw - width, 2 * y + ch - height
                dist = dx * dx + dy * dy
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
        # a smaller window replaces a larger one only when clearly better
        if best[4] == -np.inf or b_score > best[4] + TIE_TOLERANCE:
            best[0], best[1], best[2], best[3], best[4] = bx, by, cw, ch, b_score


@numba.njit(nogil=True)
def _before(a, b):
    """The order of the alternatives (rows x, y, cw, ch, score): higher score, then smaller y, x,
    width, height."""
    for k in (4, 1, 0, 2, 3):
        if a[k] != b[k]:
            return a[k] > b[k] if k == 4 else a[k] < b[k]
    return False


@numba.njit(nogil=True)
def _iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@_jit
def alternatives(sizes, xs, ys, nx, ny, kept, start, row_best, out, nms_iou):
    """Stage 3 (top_k > 1): after out[0], each next row of ``out`` is the best-ordered window whose IoU with
    every chosen one is below nms_iou, reading only rows whose best score can still beat the pick so far.
    Returns how many rows were found."""
    found = 1
    pick, window = np.empty(5), np.empty(5)
    while found < out.shape[0]:
        have = False
        for k in range(sizes.shape[0]):
            for a in range(ny[k]):
                if have and row_best[k, a] < pick[4]:  # no window of this row comes before the pick
                    continue
                scores = kept[start[k] + a * nx[k] :]
                for b in range(nx[k]):
                    if have and scores[b] < pick[4]:
                        continue
                    window[0], window[1], window[2], window[3], window[4] = (
                        xs[k, b],
                        ys[k, a],
                        sizes[k, 0],
                        sizes[k, 1],
                        scores[b],
                    )
                    if have and not _before(window, pick):
                        continue
                    ok = True
                    for c in range(found):
                        if _iou(window, out[c]) >= nms_iou:
                            ok = False
                            break
                    if ok:
                        for i in range(5):
                            pick[i] = window[i]
                        have = True
        if not have:
            break
        for i in range(5):
            out[found, i] = pick[i]
        found += 1
    return found


def best_windows(
    sat: np.ndarray, width: int, height: int, sizes: np.ndarray, area_cost: float, top_k: int, nms_iou: float
) -> np.ndarray:
    """Rows (x, y, width, height, score) of the best window of the sizes and up to top_k - 1 alternatives."""
    count, (cells_h, cells_w) = len(sizes), (sat.shape[0] - 1, sat.shape[1] - 1)
    breaks = np.empty(2 * (max(cells_w, cells_h) + 1), np.int64)
    cap = 2 * len(breaks) + 4  # at most this many starts per axis
    xs, ys = np.empty((count, cap), np.int64), np.empty((count, cap), np.int64)
    col, frac = np.empty((count, 2, cap), np.int64), np.empty((count, 2, cap))  # left and right edges
    nx, ny, penalty = np.empty(count, np.int64), np.empty(count, np.int64), np.empty(count)
    start = np.zeros(count + 1, np.int64)
    candidates(sat, width, height, sizes, float(area_cost), breaks, xs, ys, nx, ny, col, frac, penalty, start)

    keep_all = top_k > 1  # the alternatives read every window's score
    kept = np.empty(start[-1] if keep_all else cap)
    table, done = np.empty((2, cells_h + 1, cap)), np.empty((2, cells_h + 1), np.bool_)
    row_best, rows = np.empty((count, cap)), np.empty((top_k, 5))
    args = (sat, width, height, sizes, xs, ys, nx, ny, col, frac, penalty, table, done)
    score_windows(*args, keep_all, kept, start, row_best, rows[0])

    found = alternatives(sizes, xs, ys, nx, ny, kept, start, row_best, rows, float(nms_iou)) if keep_all else 1
    return rows[:found]
