"""The first `edgecrop crop` after an install (Numba's cache empty, so the search kernels compile) and the
runs after it (the kernels loaded from the cache), each a fresh process on the sample photo.

    python -m benchmarks.first_run [--repeats 3]

Where the first run's time goes is printed beside it: the same process with the kernels cached, and the
compile alone (a fresh interpreter compiling the kernels after Numba's own start-up).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from edgecrop.bench import machine, sample_photo

COMPILE_ONLY = (
    "import time, numpy as np, numba;"
    "numba.njit(lambda a: a.sum())(np.ones(2));"  # Numba's own first-compile start-up, not counted
    "from edgecrop.search import find_crops, SearchOptions, AspectRatio;"
    "t = time.perf_counter();"
    "find_crops(np.ones((48, 64), np.float32) / 3072, 4000, 3000, [AspectRatio(16, 9)], SearchOptions());"
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
    first, later, compile_only = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            first.append(timed(crop, cache)[0])
            later.append(timed(crop, cache)[0])
        with tempfile.TemporaryDirectory() as cache:
            compile_only.append(float(timed([sys.executable, "-c", COMPILE_ONLY], cache)[1]))
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; python -m benchmarks.first_run --repeats {args.repeats} (best of each)")
    print(f"first edgecrop crop, empty Numba cache: {min(first):.2f} s")
    print(f"a later run, cache warm: {min(later):.2f} s")
    print(f"of the first run, compiling the search kernels: {min(compile_only):.2f} s")


if __name__ == "__main__":
    main()
