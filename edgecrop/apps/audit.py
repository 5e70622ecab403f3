"""Measuring what a cropper does to people: paired photos (demographic parity) and face boxes.

``pairs``, after Twitter's own study (Yee, Tantipongpipat, Mishra, CSCW 2021): draw pairs of photos, one
from each group the user brings, make each a square, join them side by side and stacked, in both orders,
crop each join, and see which photo the crop keeps (the one with more of its area inside the box).
Per policy: how often group A's photo is kept (with a bootstrap 95% interval over photos) and its
distance from parity (0.5), swap consistency (the same photo kept in both orders), and position rates
(left kept, top kept), which show a bias for a place rather than for a photo.

``faces``: for photos with face boxes (the EyeCrowd layout), the share of frontal faces each policy's
crop keeps whole (at least 90% of the box inside), by face size, the centre crop beside it.

A small audit is not proof of fairness: it measures this model on these photos. The heatmap and a
focal point (``--focus``) are the user's control over any single crop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from .._validate import finite, shown
from ..cropper import Cropper
from ..errors import ImageError, OptionError, OutputError
from ..geometry import AspectRatio
from ..search import Crop, Policy, SearchOptions, find_crops
from .output import OutputWriter

SQUARE = 512  # each photo of a pair, as a square of this side
BOOTSTRAP = 2000
MIN_PHOTOS = 3  # per group: below this an audit is refused
FEW_PHOTOS = 20  # per group: below this the report says loudly that its figures say little
FACE_INSIDE = 0.9
LAYOUTS = ("side", "stacked")


def square(image: Image.Image, side: int = SQUARE) -> Image.Image:
    """The centred square of a photo, resized to ``side``."""
    w, h = image.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR, box=box)


def join(first: Image.Image, second: Image.Image, layout: str) -> Image.Image:
    """Two squares side by side (first on the left) or stacked (first on top)."""
    side = first.width
    canvas = Image.new("RGB", (2 * side, side) if layout == "side" else (side, 2 * side))
    canvas.paste(first, (0, 0))
    canvas.paste(second, (side, 0) if layout == "side" else (0, side))
    return canvas


def kept(c: Crop, layout: str, side: int = SQUARE) -> int | None:
    """0 if the crop holds more of the first photo, 1 if more of the second, None if exactly as much."""
    if layout == "side":
        first = max(0, min(c.x + c.width, side) - c.x) * c.height
        second = max(0, c.x + c.width - max(c.x, side)) * c.height
    else:
        first = max(0, min(c.y + c.height, side) - c.y) * c.width
        second = max(0, c.y + c.height - max(c.y, side)) * c.width
    return None if first == second else (0 if first > second else 1)


@dataclass(frozen=True)
class PairOutcome:
    """Which photo each policy kept in each join of one pair: keep[policy][layout][order] is 'a', 'b'
    or None (a tie), where order 0 puts A first (left or top) and order 1 puts B first."""

    a: str
    b: str
    keep: dict[str, dict[str, list[str | None]]]


def pair_outcomes(
    cropper: Cropper,
    group_a: Sequence[Path],
    group_b: Sequence[Path],
    n_pairs: int,
    seed: int,
    ratio: AspectRatio,
    policies: Sequence[Policy],
    progress: Callable = lambda items, **kw: items,
) -> list[PairOutcome]:
    for label, group in (("A", group_a), ("B", group_b)):
        if len(set(group)) < MIN_PHOTOS:
            raise OptionError(
                f"group {label} has {len(set(group))} photo(s): an audit needs at least {MIN_PHOTOS} per group "
                f"({FEW_PHOTOS} or more for figures worth reading)"
            )
    picks = [(group_a[i], group_b[j]) for i, j in distinct_pairs(len(group_a), len(group_b), n_pairs, seed)]
    cache: dict[Path, Image.Image] = {}

    def photo(p: Path) -> Image.Image:
        if p not in cache:
            cache[p] = square(cropper.load(p).rgb)
        return cache[p]

    out = []
    for a, b in progress(picks, desc="pairs"):
        keep: dict[str, dict[str, list[str | None]]] = {p.value: {lay: [] for lay in LAYOUTS} for p in policies}
        for layout in LAYOUTS:
            for first, second, names in ((a, b, ("a", "b")), (b, a, ("b", "a"))):
                joined = join(photo(first), photo(second), layout)
                sal = cropper.saliency(joined)
                for policy in policies:
                    (c,) = find_crops(sal, joined.width, joined.height, [ratio], SearchOptions(policy=policy))
                    k = kept(c, layout)
                    keep[policy.value][layout].append(None if k is None else names[k])
        out.append(PairOutcome(str(a), str(b), keep))
    return out


def distinct_pairs(n_a: int, n_b: int, n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """``n_pairs`` distinct (A, B) index pairs drawn without replacement; every pair, shuffled, when the
    groups have no more than that (a pair drawn twice would only repeat its figures)."""
    rng = np.random.default_rng(seed)
    total = n_a * n_b
    flat = rng.permutation(total) if n_pairs >= total else rng.choice(total, n_pairs, replace=False)
    return [(int(k // n_b), int(k % n_b)) for k in flat]


def _mean(values: list) -> float | None:
    """The mean, or None (JSON null) when nothing was decided."""
    return float(np.mean(values)) if values else None


def _interval(values: list, photos: list[tuple[str, str]], seed: int = 0) -> list[float] | None:
    """Bootstrap 95% interval of the mean of ``values``, resampling photos, not pairs: each replicate draws
    group A's photos and group B's photos with replacement, and a value counts as often as both of its
    photos were drawn. Pairs share photos, so resampling pairs would pretend to more evidence than the
    photos hold. None when empty."""
    if not values:
        return None
    v = np.asarray(values, float)
    a_names, a_idx = np.unique([a for a, _ in photos], return_inverse=True)
    b_names, b_idx = np.unique([b for _, b in photos], return_inverse=True)
    rng = np.random.default_rng(seed)
    wa = rng.multinomial(len(a_names), np.full(len(a_names), 1 / len(a_names)), BOOTSTRAP)
    wb = rng.multinomial(len(b_names), np.full(len(b_names), 1 / len(b_names)), BOOTSTRAP)
    w = wa[:, a_idx] * wb[:, b_idx]
    total = w.sum(axis=1)
    means = (w @ v)[total > 0] / total[total > 0]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise_pairs(outcomes: list[PairOutcome]) -> dict[str, Any]:
    """Per policy: group A's keep rate with its interval and disparity, swap consistency, position rates."""
    policies = list(outcomes[0].keep) if outcomes else []
    photos_a, photos_b = len({o.a for o in outcomes}), len({o.b for o in outcomes})
    result: dict[str, Any] = {
        "pairs": len({(o.a, o.b) for o in outcomes}),
        "photos_a": photos_a,
        "photos_b": photos_b,
        "few_photos": min(photos_a, photos_b) < FEW_PHOTOS,
        "policies": {},
    }
    for p in policies:
        a_share = _Values()
        consistent = {lay: _Values() for lay in LAYOUTS}
        first_kept = {lay: _Values() for lay in LAYOUTS}
        ties = 0
        for o in outcomes:
            pair = (o.a, o.b)
            decided = [k for lay in LAYOUTS for k in o.keep[p][lay] if k is not None]
            ties += 4 - len(decided)
            if decided:
                a_share.add(float(np.mean([k == "a" for k in decided])), pair)
            for lay in LAYOUTS:
                ab, ba = o.keep[p][lay]
                if ab is not None and ba is not None:
                    consistent[lay].add(float(ab == ba), pair)
                for order, k in enumerate((ab, ba)):
                    if k is not None:  # the first photo (left / top) is A in order 0, B in order 1
                        first_kept[lay].add(float(k == ("a" if order == 0 else "b")), pair)
        both = consistent["side"] + consistent["stacked"]
        rate = a_share.mean()
        result["policies"][p] = {
            "group_a_rate": rate,
            "group_a_ci": a_share.interval(),
            "disparity": None if rate is None else rate - 0.5,
            "swap_consistency": both.mean(),
            "swap_consistency_ci": both.interval(),
            "swap_consistency_side": consistent["side"].mean(),
            "swap_consistency_stacked": consistent["stacked"].mean(),
            "left_rate": first_kept["side"].mean(),
            "left_ci": first_kept["side"].interval(),
            "top_rate": first_kept["stacked"].mean(),
            "top_ci": first_kept["stacked"].interval(),
            "ties": ties / (4 * len(outcomes)) if outcomes else 0.0,
        }
    return result


@dataclass
class _Values:
    """One measure's values, each with the pair of photos behind it (for the photo bootstrap)."""

    values: list[float] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, value: float, pair: tuple[str, str]) -> None:
        self.values.append(value)
        self.pairs.append(pair)

    def __add__(self, other: _Values) -> _Values:
        return _Values(self.values + other.values, self.pairs + other.pairs)

    def mean(self) -> float | None:
        return _mean(self.values)

    def interval(self) -> list[float] | None:
        return _interval(self.values, self.pairs)


def few_photos_warning(result: dict[str, Any]) -> str:
    """The loud line of a report from small groups ("" when the groups are large enough)."""
    if not result["few_photos"]:
        return ""
    return (
        f"Few photos: group A has {result['photos_a']}, group B {result['photos_b']}; with fewer than {FEW_PHOTOS} "
        "per group these figures say little about the model (see how wide the intervals are)."
    )


def pairs_markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# edgecrop audit: paired photos",
        "",
        f"Command: `{command}`",
        f"{result['pairs']} distinct pairs of {result['photos_a']} photos of group A and {result['photos_b']} of "
        f"group B, each joined side by side and stacked, in both orders ({4 * result['pairs']} crops per policy). "
        "Intervals: bootstrap 95%, resampling the photos of both groups.",
        "",
        *([f"**{few_photos_warning(result)}**", ""] if result["few_photos"] else []),
        "| policy | group A kept | 95% interval | disparity | swap consistency (side / stacked) | left kept "
        "| top kept | ties |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, r in result["policies"].items():
        lines.append(
            f"| {p} | {_f(r['group_a_rate'])} | {_ci(r['group_a_ci'])} | {_f(r['disparity'], '+.3f')} "
            f"| {_f(r['swap_consistency'])} ({_f(r['swap_consistency_side'])} / {_f(r['swap_consistency_stacked'])}) "
            f"| {_f(r['left_rate'])} {_ci(r['left_ci'])} | {_f(r['top_rate'])} {_ci(r['top_ci'])} | {r['ties']:.3f} |"
        )
    lines += ["", _CAVEAT]
    return "\n".join(lines) + "\n"


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


_CAVEAT = (
    "What this means: a rate of group A near 0.5 with an interval that includes 0.5 shows no measured "
    "preference on these photos; it is not proof of fairness for other photos or people. Swap consistency "
    "below 1 and left/top rates away from 0.5 show a preference for a place in the picture. The heatmap and "
    "a focal point (--focus) let a person see and override any single crop."
)
_FACES_CAVEAT = (
    "What this means: a policy that keeps faces whole more often than the centre crop at every ratio cuts "
    "fewer people off on these photos; a gap between small and large faces shows whom it favours. It is not "
    "proof for other photos or people. The heatmap and a focal point (--focus) let a person see and "
    "override any single crop."
)


# ---- faces -------------------------------------------------------------------------------------------------


MAX_ANNOTATION_BYTES = 64 << 20


def read_faces(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """{photo file name: its frontal face boxes (left, top, width, height)} from annotations in EyeCrowd's
    layout ({name: {"faces": [[left, top, width, height, frontal], ...]}}); anything else is one OptionError
    naming what is wrong (the file is the user's, perhaps hostile: wrong types, nulls, deep nesting)."""
    try:
        with path.open("rb") as f:
            text = f.read(MAX_ANNOTATION_BYTES + 1)
        if len(text) > MAX_ANNOTATION_BYTES:
            raise OptionError(f"{path}: more than {MAX_ANNOTATION_BYTES >> 20} MB of annotations")
        data = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        raise OptionError(f"{path}: cannot read the annotations ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path}: expected an object of photo names, not {type(data).__name__}")
    out = {}
    for name, entry in data.items():
        where = f"{path}: {name[:60]!r}"
        if not name or Path(name).name != name or name in (".", ".."):
            raise OptionError(f"{where} is not a photo's file name")
        faces = entry.get("faces", []) if isinstance(entry, dict) else None
        if not isinstance(faces, list):
            raise OptionError(f'{where}: expected {{"faces": [[left, top, width, height, frontal], ...]}}')
        boxes = []
        for face in faces:
            if not (isinstance(face, list) and len(face) >= 5 and all(finite(v) for v in face[:5])):
                raise OptionError(f"{where}: a face is [left, top, width, height, frontal], numbers; not {shown(face)}")
            if face[2] <= 0 or face[3] <= 0:
                raise OptionError(f"{where}: a face box has no area ({shown(face)})")
            if face[4]:  # frontal faces only
                boxes.append((float(face[0]), float(face[1]), float(face[2]), float(face[3])))
        out[name] = boxes
    return out


def face_outcomes(
    cropper: Cropper,
    annotations: dict[str, list[tuple[float, float, float, float]]],
    images: Path,
    ratios: Sequence[AspectRatio],
    policies: Sequence[Policy],
    progress: Callable = lambda items, **kw: items,
) -> list[dict[str, Any]]:
    """Per photo and face: its relative size and, per policy and ratio, whether the crop kept it whole."""
    rows = []
    for name in progress(sorted(annotations), desc="faces"):
        faces = annotations[name]
        if not faces:
            continue
        try:
            loaded = cropper.load(images / name)
        except ImageError:
            continue
        sal = cropper.saliency(loaded)
        area = loaded.width * loaded.height
        crops = {
            p.value: find_crops(sal, loaded.width, loaded.height, ratios, SearchOptions(policy=p)) for p in policies
        }
        for left, top, w, h in faces:
            row: dict[str, Any] = {"image": name, "size": (w * h) / area}
            for p, cs in crops.items():
                for r, c in zip(ratios, cs):
                    ix = max(0.0, min(left + w, c.x + c.width) - max(left, c.x))
                    iy = max(0.0, min(top + h, c.y + c.height) - max(top, c.y))
                    row[f"{p}/{r.label}"] = ix * iy >= FACE_INSIDE * w * h
            rows.append(row)
    return rows


def summarise_faces(rows: list[dict[str, Any]], ratios: Sequence[AspectRatio], policies: Sequence[Policy]) -> dict:
    sizes = np.array([r["size"] for r in rows])
    edges = np.quantile(sizes, [1 / 3, 2 / 3]) if len(rows) else np.array([0.0, 0.0])
    bins = {
        "small": sizes < edges[0],
        "medium": (sizes >= edges[0]) & (sizes < edges[1]),
        "large": sizes >= edges[1],
        "all": np.ones(len(rows), bool),
    }
    out: dict[str, Any] = {"faces": len(rows), "photos": len({r["image"] for r in rows}), "size_edges": edges.tolist()}
    out["kept_whole"] = {
        p.value: {
            r.label: {
                b: float(np.mean([rows[i][f"{p.value}/{r.label}"] for i in np.flatnonzero(m)]))
                for b, m in bins.items()
                if m.any()
            }
            for r in ratios
        }
        for p in policies
    }
    return out


def faces_markdown(result: dict[str, Any], command: str) -> str:
    ratios = list(next(iter(result["kept_whole"].values())))
    lines = [
        "# edgecrop audit: faces kept whole",
        "",
        f"Command: `{command}`",
        f"{result['faces']} frontal faces in {result['photos']} photos; a face is kept when at least "
        f"{FACE_INSIDE:.0%} of its box is inside the crop. Sizes: terciles of face area / photo area.",
        "",
        "| policy | " + " | ".join(ratios) + " | small faces (all ratios) | large faces (all ratios) |",
        "|---|" + "---|" * (len(ratios) + 2),
    ]
    for p, by_ratio in result["kept_whole"].items():
        cells = " | ".join(f"{by_ratio[r]['all']:.3f}" for r in ratios)
        small = np.mean([by_ratio[r].get("small", np.nan) for r in ratios])
        large = np.mean([by_ratio[r].get("large", np.nan) for r in ratios])
        lines.append(f"| {p} | {cells} | {small:.3f} | {large:.3f} |")
    lines += ["", _FACES_CAVEAT]
    return "\n".join(lines) + "\n"


def plot_pairs(result: dict[str, Any], out: BinaryIO) -> None:
    """Group A's rate, swap consistency and position rates per policy, with intervals (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(result["policies"])
    measures = (
        ("group_a_rate", "group_a_ci", "group A kept"),
        ("swap_consistency", "swap_consistency_ci", "same photo in both orders"),
        ("left_rate", "left_ci", "left kept"),
        ("top_rate", "top_ci", "top kept"),
    )
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.2), sharey=True)
    for ax, (key, ci, title) in zip(axes, measures):
        shown = [p for p in policies if result["policies"][p][key] is not None]  # the centre crop ties
        values = [result["policies"][p][key] for p in shown]
        lows = [v - result["policies"][p][ci][0] for v, p in zip(values, shown)]
        highs = [result["policies"][p][ci][1] - v for v, p in zip(values, shown)]
        ax.bar(shown, values, yerr=[lows, highs], capsize=4, color=["tab:blue", "tab:orange", "tab:grey"][: len(shown)])
        if key != "swap_consistency":
            ax.axhline(0.5, color="black", lw=0.8, ls="--")
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"edgecrop audit, {result['pairs']} pairs (95% intervals)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)


def plot_faces(result: dict[str, Any], out: BinaryIO) -> None:
    """Share of frontal faces kept whole per ratio, one bar per policy (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = result["kept_whole"]
    ratios = list(next(iter(kept.values())))
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / len(kept)
    for k, (policy, by_ratio) in enumerate(kept.items()):
        xs = np.arange(len(ratios)) + (k - (len(kept) - 1) / 2) * width
        ax.bar(xs, [by_ratio[r]["all"] for r in ratios], width, label=policy)
    ax.set_xticks(np.arange(len(ratios)), ratios)
    ax.set_ylim(0, 1)
    ax.set_ylabel("frontal faces kept whole")
    ax.legend(fontsize=8)
    ax.set_title(f"edgecrop audit: {result['faces']} faces in {result['photos']} photos", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)


def report_paths(out_dir: Path) -> list[Path]:
    return [out_dir / "audit.json", out_dir / "audit.md", out_dir / "audit.png"]


def check_writable(out_dir: Path, overwrite: bool) -> None:
    """Refuse before measuring: never over existing results unless asked."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder")
    existing = [p for p in report_paths(out_dir) if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")


def write_report(out_dir: Path, result: dict[str, Any], markdown: str, overwrite: bool, plot) -> list[Path]:
    """audit.json, audit.md and audit.png; without matplotlib the plot is skipped with a note on stderr."""
    check_writable(out_dir, overwrite)
    json_path, md_path, png_path = report_paths(out_dir)
    writer = OutputWriter([], out_dir, overwrite)
    written = [
        writer.write_text(json_path.name, json.dumps(result, indent=1)),
        writer.write_text(md_path.name, markdown),
    ]
    try:
        written.append(writer.write_with(png_path.name, lambda f: plot(result, f)))
    except ImportError:
        print(
            f"edgecrop: note: no {png_path.name}: the plot needs matplotlib (pip install matplotlib)", file=sys.stderr
        )
    return written
