"""Crop-search latency: all four ratios on 64x64-class maps (random ones, and the model's map of the
sample photo), for every option set (warm medians).

    python -m benchmarks.search_latency

Both engines: the Numba kernels for every option set, NumPy for the one it has (top-1). The first call's
cost in a fresh process is printed apart from the warm figures: NumPy's (nothing to compile), and the
kernels' (importing Numba and loading them from its on-disk cache, warmed by the run before).
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from PIL import Image

from edgecrop import Boost, Cropper, SearchOptions, find_crops
from edgecrop._resources import sample_photo
from edgecrop.cropper import DEFAULT_ASPECTS
from edgecrop.search import parse_aspects

RATIOS = parse_aspects(DEFAULT_ASPECTS)
NUMBA = {"engine": "numba"}
OPTION_SETS = {
    "largest window, top-1 (default), NumPy engine": SearchOptions(engine="numpy"),
    "largest window, top-1 (default)": SearchOptions(**NUMBA),
    "top-3": SearchOptions(top_k=3, **NUMBA),
    "4 scales, area cost 0.5, NumPy engine": SearchOptions(min_scale=0.6, scale_steps=4, area_cost=0.5, engine="numpy"),
    "4 scales, area cost 0.5": SearchOptions(min_scale=0.6, scale_steps=4, area_cost=0.5, **NUMBA),
    "top-3, 4 scales, area cost 0.5 (README)": SearchOptions(
        top_k=3, min_scale=0.6, scale_steps=4, area_cost=0.5, **NUMBA
    ),
    "focus point": None,  # made per photo: a point at three quarters of the width
    "twitter": SearchOptions(policy="twitter"),
}


def first_call_seconds(engine: str) -> float:
    code = (
        "import time, numpy as np; t = time.perf_counter();"
        "from edgecrop import find_crops, SearchOptions, AspectRatio;"
        "find_crops(np.ones((48, 64), np.float32) / 3072, 4000, 3000, [AspectRatio(16, 9)],"
        f" SearchOptions(engine='{engine}'));"
        "print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def random_map(shape: tuple[int, int]) -> np.ndarray:
    m = np.random.default_rng(0).random(shape).astype(np.float32)
    return m / m.sum()


def model_map(width: int, height: int) -> np.ndarray:
    """The default model's map of the sample photo stretched to width x height: a real, peaked map."""
    with Image.open(sample_photo()) as im, Cropper() as cropper:
        return cropper.saliency(im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))


def warm_micros(m: np.ndarray, width: int, height: int, opts: SearchOptions, repeats: int = 300) -> tuple[float, float]:
    for _ in range(20):
        find_crops(m, width, height, RATIOS, opts)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        find_crops(m, width, height, RATIOS, opts)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6), float(np.percentile(times, 90) * 1e6)


def main() -> None:
    print("crop search, 4 ratios (16:9, 1:1, 4:5, 9:16)")
    first_call_seconds("numba")  # the kernels in Numba's on-disk cache
    print(
        f"  first call in a fresh process, NumPy engine (import edgecrop, search): {first_call_seconds('numpy'):.3f} s"
    )
    print(f"  the same, Numba engine (also import Numba, load the kernels): {first_call_seconds('numba'):.3f} s")
    maps = [
        ("random", random_map((48, 64)), (4000, 3000)),
        ("random", random_map((64, 64)), (1000, 1000)),
        ("random", random_map((36, 64)), (1920, 1080)),
        ("the model's", model_map(4000, 3000), (4000, 3000)),
    ]
    for name, opts in OPTION_SETS.items():
        for kind, m, size in maps:
            used = opts or SearchOptions(boosts=[Boost(0.75 * size[0], 0.2 * size[1], weight=2.0)], **NUMBA)
            med, p90 = warm_micros(m, *size, used)
            where = f"{kind} map {m.shape[1]}x{m.shape[0]}, {size[0]}x{size[1]} photo"
            print(f"  {name}; {where}: median {med:.0f} us, p90 {p90:.0f} us")
    print("rerun: python -m benchmarks.search_latency")


if __name__ == "__main__":
    main()
