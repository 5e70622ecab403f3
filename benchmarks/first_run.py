"""The first `edgecrop crop` after an install (Numba's cache empty) and the runs after it, each a fresh
process on the sample photo; then what a process pays when it does use the Numba kernels (a batch past
search.COMPILE_AFTER, or top-k): compiling them with the cache empty, and loading them from it.

    python -m benchmarks.first_run [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from edgecrop.apps.bench import machine, sample_photo

KERNELS = (  # a process's first search with the kernels: importing Numba, then compiling or loading them
    "import time, numpy as np; from edgecrop.search import find_crops, SearchOptions, AspectRatio;"
    "t = time.perf_counter();"
    "find_crops(np.ones((48, 64), np.float32) / 3072, 4000, 3000, [AspectRatio(16, 9)], SearchOptions(engine='numba'));"
    "print(time.perf_counter() - t)"
)


def timed(args: list[str], cache: str) -> tuple[float, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t, p.stdout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    crop = [sys.executable, "-m", "edgecrop", "crop", str(sample_photo()), "--json", "--threads", "1"]
    first, later, compiling, loading = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            first.append(timed(crop, cache)[0])
            later.append(timed(crop, cache)[0])
        with tempfile.TemporaryDirectory() as cache:
            compiling.append(float(timed([sys.executable, "-c", KERNELS], cache)[1]))
            loading.append(float(timed([sys.executable, "-c", KERNELS], cache)[1]))
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; python -m benchmarks.first_run --repeats {args.repeats} (best of each)")
    print(f"first edgecrop crop, empty Numba cache: {min(first):.2f} s")
    print(f"a later run, cache warm: {min(later):.2f} s")
    print(f"the Numba kernels' first search in a process, cache empty (import, compile): {min(compiling):.2f} s")
    print(f"the same, cache warm (import, load): {min(loading):.2f} s")


if __name__ == "__main__":
    main()
