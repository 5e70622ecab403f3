"""The search stage: the best crop box for each aspect ratio on the low-resolution saliency map.

Everything about choosing crops lives here (the Java core keeps the same names in CropSearch):
``SearchOptions`` and ``Policy`` say how, ``find_crops`` does it, a ``Crop`` is a box with the parts
of its score. The kernels are Numba, compiled once and cached on disk, in three stages: ``candidates``
(the window starts worth scoring), ``score_windows`` (every one of them, and the best) and
``alternatives`` (top-k with non-maximum suppression, compiled only when asked for): the first crop of
a fresh install compiles only what it runs.

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

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .errors import OptionError
from .geometry import AspectRatio, Box, largest_window

TIE_TOLERANCE = 1e-9


def _jit(fn):
    """numba.njit with the compiled code cached on disk, where there is a place for it: beside the
    package, in NUMBA_CACHE_DIR or the user's cache; else in a private folder under the temporary
    directory (a service account with a read-only home and site-packages); else compiled per process."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "no locator available": nowhere writable
        pass
    folder = Path(tempfile.gettempdir()) / f"edgecrop-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.stat()
        private = not hasattr(os, "getuid") or (st.st_uid == os.getuid() and not st.st_mode & 0o022)
        if private and os.access(folder, os.W_OK):  # never load code another user could have planted
            numba.config.CACHE_DIR = str(folder)
            return numba.njit(cache=True, nogil=True)(fn)
    except (OSError, RuntimeError):
        pass
    return numba.njit(nogil=True)(fn)


def summed_area(m: np.ndarray) -> np.ndarray:
    """(h+1) x (w+1) table: sat[i, j] = sum of m[:i, :j]."""
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    np.cumsum(np.cumsum(m, axis=0, dtype=np.float64), axis=1, out=sat[1:, 1:])
    return sat


def window_mass(sat: np.ndarray, width: int, height: int, x: int, y: int, cw: int, ch: int) -> float:
    """Saliency mass of the pixel window (x, y, cw, ch) in a width x height image (as the kernel computes it)."""
    sx, sy = (sat.shape[1] - 1) / width, (sat.shape[0] - 1) / height
    u0, u1, v0, v1 = x * sx, (x + cw) * sx, y * sy, (y + ch) * sy
    return _integral(sat, u1, v1) - _integral(sat, u0, v1) - _integral(sat, u1, v0) + _integral(sat, u0, v0)


def _integral(sat, u: float, v: float) -> float:
    """Mass of [0, u] x [0, v] in cell units (bilinear in the table: exact for constant cells)."""
    h, w = sat.shape[0] - 1, sat.shape[1] - 1
    j, i = min(int(u), w - 1), min(int(v), h - 1)
    fu, fv = u - j, v - i
    top = sat[i, j] * (1 - fu) + sat[i, j + 1] * fu
    bottom = sat[i + 1, j] * (1 - fu) + sat[i + 1, j + 1] * fu
    return top * (1 - fv) + bottom * fv


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


class Policy(str, Enum):
    """How a crop is placed. ``saliency``: the window holding the most saliency (max-sum);
    ``twitter``: the largest window centred on the most salient cell (Twitter's 2018 rule);
    ``centre``: the centred window (the baseline every model must beat)."""

    SALIENCY = "saliency"
    TWITTER = "twitter"
    CENTRE = "centre"

    @classmethod
    def _missing_(cls, value: object) -> Policy | None:
        return cls.CENTRE if value == "center" else None  # the American spelling is accepted too


MAX_SCALE_STEPS = 64
MAX_TOP_K = 64
MAX_BOOST_WEIGHT = 1e6


def _number(value: object, name: str, low: float, high: float, *, low_open: bool = False) -> float:
    """A finite real in [low, high] (or (low, high]), else OptionError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(f"{name} must be a finite number, not {value!r}")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise OptionError(f"{name} must be in {bracket}{low:g}, {high:g}], not {value!r}")
    return float(value)


def _count(value: object, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise OptionError(f"{name} must be an integer from 1 to {high}, not {value!r}")
    return value


@dataclass(frozen=True)
class Boost:
    """Caller guidance: a box (x, y, width, height in image pixels; width = height = 0 for a point)
    that adds ``weight`` times the model map's total mass. A point boosts one map cell around it."""

    x: float
    y: float
    width: float = 0.0
    height: float = 0.0
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            _number(getattr(self, name), f"boost {name}", -1e9, 1e9)
        for name in ("width", "height"):
            _number(getattr(self, name), f"boost {name}", 0.0, 1e9)
        _number(self.weight, "boost weight", 0.0, MAX_BOOST_WEIGHT, low_open=True)

    def check_inside(self, width: int, height: int) -> None:
        """A boost must touch the photo it steers."""
        if self.x + self.width < 0 or self.y + self.height < 0 or self.x > width or self.y > height:
            raise OptionError(f"focus ({self.x:g}, {self.y:g}) is outside the {width}x{height} photo")


@dataclass(frozen=True)
class SearchOptions:
    """How to choose crops. Options that a policy does not use are refused rather than ignored:
    ``min_scale``, ``area_cost`` and ``top_k`` apply to the saliency policy only, and the centre
    policy takes no boosts (twitter's peak moves with them)."""

    policy: Policy = Policy.SALIENCY
    min_scale: float = 1.0  # < 1 lets windows shrink to this fraction of the largest
    scale_steps: int = 4
    area_cost: float = 0.0  # density threshold for smaller windows (0: always the largest)
    top_k: int = 1  # distinct crops per ratio (non-maximum suppression)
    nms_iou: float = 0.5
    boosts: Sequence[Boost] = field(default=())  # caller's focal points / regions that steer the crop

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "policy", Policy(self.policy))
        except ValueError:
            raise OptionError(
                f"policy must be one of {', '.join(p.value for p in Policy)}, not {self.policy!r}"
            ) from None
        _number(self.min_scale, "min_scale", 0.0, 1.0, low_open=True)
        _count(self.scale_steps, "scale_steps", MAX_SCALE_STEPS)
        _number(self.area_cost, "area_cost", 0.0, 1e6)
        _count(self.top_k, "top_k", MAX_TOP_K)
        _number(self.nms_iou, "nms_iou", 0.0, 1.0, low_open=True)
        boosts = tuple(self.boosts)
        if not all(isinstance(b, Boost) for b in boosts):
            raise OptionError("boosts must be Boost objects")
        object.__setattr__(self, "boosts", boosts)
        if self.policy is not Policy.SALIENCY:
            changed = [
                name
                for name, default in (("min_scale", 1.0), ("area_cost", 0.0), ("top_k", 1))
                if getattr(self, name) != default
            ]
            if changed:
                raise OptionError(f"{', '.join(changed)} apply to the saliency policy only, not {self.policy.value}")
        if self.policy is Policy.CENTRE and boosts:
            raise OptionError("the centre policy ignores the map, so a focus cannot steer it: use saliency")


@dataclass(frozen=True)
class Crop:
    """One crop box with the parts of its score (as smartcrop.js reports its parts):
    ``score = model_mass + boost_mass - area_cost``, where the masses are shares of the boosted map."""

    aspect: AspectRatio
    box: Box  # pixels of the orientation-corrected, full-resolution image
    score: float
    model_mass: float  # share of the map inside the box that came from the model
    boost_mass: float  # share that came from the caller's boosts
    area_cost: float  # area_cost * box area / image area
    rank: int = 0  # 0 = best; 1.. for top-k alternatives

    @property
    def x(self) -> int:
        return self.box.x

    @property
    def y(self) -> int:
        return self.box.y

    @property
    def width(self) -> int:
        return self.box.width

    @property
    def height(self) -> int:
        return self.box.height

    def as_dict(self) -> dict[str, Any]:
        return {
            "aspect": self.aspect.label,
            "x": self.box.x,
            "y": self.box.y,
            "width": self.box.width,
            "height": self.box.height,
            "score": round(self.score, 6),
            "rank": self.rank,
        }


def boosted_map(
    saliency: np.ndarray, width: int, height: int, boosts: tuple[Boost, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(the map the search works on, summing to 1; the model's share of it).

    The model map is normalised to 1; each boost adds its weight (times that mass) spread over the
    cells its box covers; the sum is renormalised."""
    h, w = saliency.shape
    total = float(saliency.sum())
    model = saliency.astype(np.float64) / total if total > 0 else np.full((h, w), 1.0 / (h * w))
    if not boosts:
        return model, model
    out = model.copy()
    for b in boosts:
        bw = b.width * w / width if b.width > 0 else 1.0  # a point: one cell wide
        bh = b.height * h / height if b.height > 0 else 1.0
        u0 = b.x * w / width - (0 if b.width > 0 else 0.5)
        v0 = b.y * h / height - (0 if b.height > 0 else 0.5)
        cover = np.outer(_coverage(v0, v0 + bh, h), _coverage(u0, u0 + bw, w))
        if cover.sum() > 0:
            out += b.weight * cover / cover.sum()
    norm = float(out.sum())
    return out / norm, model / norm


def _coverage(a: float, b: float, n: int) -> np.ndarray:
    """Length of [a, b] inside each unit cell [k, k+1) of 0..n."""
    k = np.arange(n)
    return np.clip(np.minimum(b, k + 1) - np.maximum(a, k), 0, None)


@dataclass(frozen=True)
class Scored:
    """A window of the search with its score (model and boost mass minus area cost)."""

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
) -> list[Scored]:
    """Best windows of one aspect ratio: top-k by score, with non-maximum suppression."""
    scales = [1.0]
    if min_scale < 1.0:  # np.linspace(1, min_scale, n), as the Java core computes it, without its overhead
        n = max(2, scale_steps)
        step = (min_scale - 1.0) / (n - 1)
        scales = [i * step + 1.0 for i in range(n - 1)] + [min_scale]
    sizes = np.array([largest_window(width, height, ratio, s) for s in scales], dtype=np.int64)
    # the kernels' arrays are made here, so that compiling them compiles no allocation code
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
    rows = rows[:found]
    return [Scored(Box(int(x), int(y), int(w), int(h)), float(score)) for x, y, w, h, score in rows]


def most_salient_point(saliency: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Centre, in image pixels, of the first cell (row-major) holding the map's maximum."""
    i, j = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    h, w = saliency.shape
    return (j + 0.5) * width / w, (i + 0.5) * height / h


def centred_window(cx: float, cy: float, width: int, height: int, ratio: float) -> Box:
    """The largest window of ``ratio`` centred on a point, shifted inside the image."""
    cw, ch = largest_window(width, height, ratio)
    x = min(max(int(np.floor(cx - cw / 2 + 0.5)), 0), width - cw)
    y = min(max(int(np.floor(cy - ch / 2 + 0.5)), 0), height - ch)
    return Box(x, y, cw, ch)


def parse_aspects(aspects: str | float | AspectRatio | Sequence[str | float | AspectRatio]) -> list[AspectRatio]:
    """One ratio or several, as given by a caller ('16:9', 1.5, AspectRatio(4, 5), or a list of them)."""
    items = [aspects] if isinstance(aspects, (str, int, float, AspectRatio)) else list(aspects)
    if not items:
        raise OptionError("no aspect ratio given")
    try:
        return [AspectRatio.parse(a) for a in items]
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def find_crops(
    saliency: np.ndarray, width: int, height: int, aspects: Sequence[AspectRatio], options: SearchOptions
) -> list[Crop]:
    """The search stage: crops for each aspect ratio on a probability map covering a width x height image."""
    for b in options.boosts:
        b.check_inside(width, height)
    boosts = tuple(options.boosts)
    boosted, model = boosted_map(saliency, width, height, boosts)
    sat = summed_area(boosted)
    sat_model = summed_area(model) if boosts else None  # without boosts all the mass is the model's

    def crop(aspect: AspectRatio, box: Box, score: float, rank: int) -> Crop:
        cost = 0.0
        if options.policy is Policy.SALIENCY:
            cost = options.area_cost * box.area / (width * height)
        kept = score + cost
        kept_model = kept if sat_model is None else float(window_mass(sat_model, width, height, *box.as_tuple()))
        return Crop(aspect, box, score, kept_model, kept - kept_model, cost, rank)

    crops = []
    for aspect in aspects:
        ratio = aspect.value
        if options.policy is Policy.SALIENCY:
            found = search(
                sat,
                width,
                height,
                ratio,
                min_scale=options.min_scale,
                scale_steps=options.scale_steps,
                area_cost=options.area_cost,
                top_k=options.top_k,
                nms_iou=options.nms_iou,
            )
            crops += [crop(aspect, c.box, c.score, rank) for rank, c in enumerate(found)]
            continue
        if options.policy is Policy.TWITTER:
            box = centred_window(*most_salient_point(boosted, width, height), width, height, ratio)
        else:
            box = centred_window(width / 2, height / 2, width, height, ratio)
        crops.append(crop(aspect, box, float(window_mass(sat, width, height, *box.as_tuple())), 0))
    return crops
