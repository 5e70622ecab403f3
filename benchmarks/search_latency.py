"""Crop-search latency: all four ratios on a 64x64-class map (target: under 100 us after warm-up).

    python -m benchmarks.search_latency

The first call's cost (Numba compiling, or loading its on-disk cache) is measured in a fresh process
and printed separately from the warm figures.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from edgecrop.cropper import DEFAULT_ASPECTS, SearchOptions, find_crops
from edgecrop.geometry import AspectRatio

RATIOS = [(a, AspectRatio.parse(a).value) for a in DEFAULT_ASPECTS]


def first_call_seconds() -> float:
    code = (
        "import time, numpy as np; t = time.perf_counter();"
        "from edgecrop.cropper import find_crops, SearchOptions;"
        f"find_crops(np.ones((48, 64), np.float32) / 3072, 4000, 3000, {RATIOS!r}, SearchOptions());"
        "print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def warm_micros(shape: tuple[int, int], width: int, height: int, repeats: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    m = rng.random(shape).astype(np.float32)
    m /= m.sum()
    opts = SearchOptions()
    for _ in range(50):
        find_crops(m, width, height, RATIOS, opts)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        find_crops(m, width, height, RATIOS, opts)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6), float(np.percentile(times, 90) * 1e6)


def main() -> None:
    print("crop search, 4 ratios (16:9, 1:1, 4:5, 9:16), largest window, top-1")
    print(f"  first call in a fresh process (import + Numba cache load or compile): {first_call_seconds():.3f} s")
    print(f"  second fresh process (Numba on-disk cache warm): {first_call_seconds():.3f} s")
    for shape, size in [((48, 64), (4000, 3000)), ((64, 64), (1000, 1000)), ((64, 36), (1920, 1080))]:
        med, p90 = warm_micros(shape, *size)
        print(f"  map {shape[1]}x{shape[0]} for a {size[0]}x{size[1]} photo: median {med:.1f} us, p90 {p90:.1f} us")
    print("rerun: python -m benchmarks.search_latency")


if __name__ == "__main__":
    main()
