"""Crop-search latency: all four ratios on 64x64-class maps, for every option set (warm medians).

    python -m benchmarks.search_latency

The first call's cost (Numba compiling, or loading its on-disk cache) is measured in a fresh process
and printed separately from the warm figures.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from edgecrop import Boost, SearchOptions, find_crops
from edgecrop.cropper import DEFAULT_ASPECTS
from edgecrop.search import parse_aspects

RATIOS = parse_aspects(DEFAULT_ASPECTS)
OPTION_SETS = {
    "largest window, top-1 (default)": SearchOptions(),
    "top-3": SearchOptions(top_k=3),
    "4 scales, area cost 0.5": SearchOptions(min_scale=0.6, scale_steps=4, area_cost=0.5),
    "top-3, 4 scales, area cost 0.5 (README)": SearchOptions(top_k=3, min_scale=0.6, scale_steps=4, area_cost=0.5),
    "focus point": None,  # made per photo: a point at three quarters of the width
    "twitter": SearchOptions(policy="twitter"),
}


def first_call_seconds() -> float:
    code = (
        "import time, numpy as np; t = time.perf_counter();"
        "from edgecrop import find_crops, SearchOptions, AspectRatio;"
        "find_crops(np.ones((48, 64), np.float32) / 3072, 4000, 3000, [AspectRatio(16, 9)], SearchOptions());"
        "print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def warm_micros(
    shape: tuple[int, int], width: int, height: int, opts: SearchOptions, repeats: int = 300
) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    m = rng.random(shape).astype(np.float32)
    m /= m.sum()
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
    print(f"  first call in a fresh process (import + Numba cache load or compile): {first_call_seconds():.3f} s")
    print(f"  second fresh process (Numba on-disk cache warm): {first_call_seconds():.3f} s")
    for name, opts in OPTION_SETS.items():
        for shape, size in [((48, 64), (4000, 3000)), ((64, 64), (1000, 1000)), ((36, 64), (1920, 1080))]:
            used = opts or SearchOptions(boosts=[Boost(0.75 * size[0], 0.2 * size[1], weight=2.0)])
            med, p90 = warm_micros(shape, *size, used)
            print(
                f"  {name}; map {shape[1]}x{shape[0]}, {size[0]}x{size[1]} photo: median {med:.0f} us, p90 {p90:.0f} us"
            )
    print("rerun: python -m benchmarks.search_latency")


if __name__ == "__main__":
    main()
