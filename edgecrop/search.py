"""The search stage: the best crop box for each aspect ratio on the low-resolution saliency map.

Everything about choosing crops lives here (the Java core keeps the same names in CropSearch):
``SearchOptions`` and ``Policy`` say how, ``find_crops`` does it, a ``Crop`` is a box with the parts
of its score. Two engines give the same boxes and scores, bit for bit (``Engine``): Numba kernels
(``_search_numba``: every option, fast once compiled, the compile cached on disk) and NumPy
(``_search_numpy``: the best window only, nothing to compile or import). By default a process searches
with NumPy until that has cost it as much as compiling would (ski rental), then with the kernels: one
photo is cropped at once, a batch at full speed.

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

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ._validate import count, member, number
from .errors import OptionError
from .geometry import AspectRatio, Box, largest_window

TIE_TOLERANCE = 1e-9


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


class Engine(str, Enum):
    """Which implementation runs the saliency policy's search; each gives the same boxes and scores, bit
    for bit. ``numba``: compiled kernels for every option, the fastest once compiled (once per install,
    then loaded from the disk cache); ``numpy``: the best window only (top_k 1), with nothing to compile;
    ``auto``: NumPy until it has cost the process ``COMPILE_AFTER`` seconds, then Numba (and Numba for
    top-k)."""

    AUTO = "auto"
    NUMBA = "numba"
    NUMPY = "numpy"


COMPILE_AFTER = 1.0  # seconds: between what loading the kernels (0.6 s here) and compiling them (2.7 s) costs


class _Ledger:
    """AUTO's account, a ski rental: NumPy is paid per search, Numba once per process (its compile, or its
    load from the disk cache). A short job never pays for the kernels; a long one pays at most
    COMPILE_AFTER more than if it had started with them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rent = 0.0  # seconds spent in AUTO's NumPy searches
        self.buying = False  # a thread is compiling (or loading) the kernels; the others keep renting
        self.compiled = False  # the kernels have run in this process

    def choose(self, engine: Engine, top_k: int) -> Engine:
        if engine is not Engine.AUTO:
            return engine
        if top_k > 1 or self.compiled:
            return Engine.NUMBA
        with self.lock:
            if self.rent < COMPILE_AFTER or self.buying:
                return Engine.NUMPY
            self.buying = True
        return Engine.NUMBA

    def paid(self, seconds: float, engine: Engine) -> None:
        if engine is Engine.AUTO:
            with self.lock:
                self.rent += seconds


_LEDGER = _Ledger()


MAX_SCALE_STEPS = 64
MAX_ASPECTS = 64  # ratios in one call: with top_k and min_scale, what a call may ask of the search is bounded
MAX_TOP_K = 64
MAX_BOOST_WEIGHT = 1e6
MAX_BOOSTS = 64  # each adds a pass over the map


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
            number(getattr(self, name), f"boost {name}", -1e9, 1e9)
        for name in ("width", "height"):
            number(getattr(self, name), f"boost {name}", 0.0, 1e9)
        number(self.weight, "boost weight", 0.0, MAX_BOOST_WEIGHT, low_open=True)

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
    engine: Engine = Engine.AUTO  # which implementation searches (the same results from each)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", member(Policy, self.policy, "policy"))
        number(self.min_scale, "min_scale", 0.0, 1.0, low_open=True)
        count(self.scale_steps, "scale_steps", MAX_SCALE_STEPS)
        number(self.area_cost, "area_cost", 0.0, 1e6)
        count(self.top_k, "top_k", MAX_TOP_K)
        object.__setattr__(self, "engine", member(Engine, self.engine, "engine"))
        if self.engine is Engine.NUMPY and self.top_k > 1:
            raise OptionError("the numpy engine finds the best window only: top_k > 1 needs numba (or auto)")
        number(self.nms_iou, "nms_iou", 0.0, 1.0, low_open=True)
        if isinstance(self.boosts, (str, bytes)) or not isinstance(self.boosts, Sequence):
            raise OptionError("boosts must be a list of Boost objects")
        boosts = tuple(self.boosts)
        if len(boosts) > MAX_BOOSTS or not all(isinstance(b, Boost) for b in boosts):
            raise OptionError(f"boosts must be at most {MAX_BOOSTS} Boost objects")
        object.__setattr__(self, "boosts", boosts)
        conflicts = _policy_conflicts(self.policy, {name: getattr(self, name) for name in _POLICY_BOUND})
        if conflicts:
            raise OptionError(conflicts[0][1])

    @classmethod
    def relaxed(cls, **wanted: Any) -> tuple[SearchOptions, list[str]]:
        """The options wanted, less what their policy would refuse (those set back to their defaults), and
        for each the sentence the refusal would give: for a page, where switching the policy should not
        turn the other choices into an error."""
        policy = member(Policy, wanted.get("policy", Policy.SALIENCY), "policy")
        notes = []
        for names, message in _policy_conflicts(policy, wanted):
            notes.append(message)
            for name in names:
                del wanted[name]
        return cls(**wanted), notes


# what only some policies take, with the value that means "not asked for"
_SALIENCY_ONLY = {"min_scale": 1.0, "area_cost": 0.0, "top_k": 1}
_POLICY_BOUND = (*_SALIENCY_ONLY, "boosts")


def _policy_conflicts(policy: Policy, values: dict[str, Any]) -> list[tuple[list[str], str]]:
    """(option names, why) for each rule of ``policy`` that the given option values break."""
    out = []
    changed = [name for name, default in _SALIENCY_ONLY.items() if name in values and values[name] != default]
    if policy is not Policy.SALIENCY and changed:
        verb = "applies" if len(changed) == 1 else "apply"
        out.append((changed, f"{', '.join(changed)} {verb} to the saliency policy only, not {policy.value}"))
    if policy is Policy.CENTRE and values.get("boosts"):
        out.append((["boosts"], "the centre policy ignores the map, so a focus cannot steer it: use saliency"))
    return out


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
    engine: Engine = Engine.AUTO,
) -> list[Scored]:
    """Best windows of one aspect ratio: top-k by score, with non-maximum suppression."""
    scales = [1.0]
    if min_scale < 1.0:  # np.linspace(1, min_scale, n), as the Java core computes it, without its overhead
        n = max(2, scale_steps)
        step = (min_scale - 1.0) / (n - 1)
        scales = [i * step + 1.0 for i in range(n - 1)] + [min_scale]
    sizes = np.array([largest_window(width, height, ratio, s) for s in scales], dtype=np.int64)
    if _LEDGER.choose(engine, top_k) is Engine.NUMPY:
        from . import _search_numpy

        t = time.perf_counter()
        rows = _search_numpy.best_windows(sat, width, height, sizes, area_cost)
        _LEDGER.paid(time.perf_counter() - t, engine)
    else:
        from . import _search_numba

        rows = _search_numba.best_windows(sat, width, height, sizes, area_cost, top_k, nms_iou)
        _LEDGER.compiled = True
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
    if isinstance(aspects, (bytes, bytearray)) or aspects is None:
        raise OptionError(f"aspect ratios are text (W:H) or numbers, not {type(aspects).__name__}")
    items = [aspects] if isinstance(aspects, (str, int, float, AspectRatio)) else list(aspects)
    if not items:
        raise OptionError("no aspect ratio given")
    if len(items) > MAX_ASPECTS:
        raise OptionError(f"at most {MAX_ASPECTS} aspect ratios at once, not {len(items)}")
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
                engine=options.engine,
            )
            crops += [crop(aspect, c.box, c.score, rank) for rank, c in enumerate(found)]
            continue
        if options.policy is Policy.TWITTER:
            box = centred_window(*most_salient_point(boosted, width, height), width, height, ratio)
        else:
            box = centred_window(width / 2, height / 2, width, height, ratio)
        crops.append(crop(aspect, box, float(window_mass(sat, width, height, *box.as_tuple())), 0))
    return crops


def by_aspect(crops: Sequence[Crop]) -> dict[str, list[Crop]]:
    """{ratio label ("16:9"): its crops, best first}, in the order the ratios come."""
    out: dict[str, list[Crop]] = {}
    for c in crops:
        out.setdefault(c.aspect.label, []).append(c)
    return out


def short_ratios(crops: Sequence[Crop], options: SearchOptions) -> dict[str, int]:
    """{ratio label: crops found} for the ratios that got fewer than ``top_k`` crops."""
    if options.top_k == 1:
        return {}
    counts = Counter(c.aspect.label for c in crops)
    return {label: n for label, n in counts.items() if n < options.top_k}


def shortfalls(crops: Sequence[Crop], options: SearchOptions) -> list[str]:
    """Why a ratio got fewer than ``top_k`` crops, one sentence per such ratio (the demo says it)."""
    return [
        f"{label}: {n} of {options.top_k} crops; every other window overlaps a chosen one by {options.nms_iou:g} IoU "
        "or more"
        for label, n in short_ratios(crops, options).items()
    ]
