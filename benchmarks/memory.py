"""Where a cropping process's memory goes: resident set size after each step, in a fresh process.

    python -m benchmarks.memory

tracemalloc does not see native memory (LiteRT, Numba's LLVM, decoded pixels), so this reads the
process's RSS (/proc/self/statm) after each step: Python alone, numpy, Pillow, edgecrop (and LiteRT), the
model loaded, the first crop of a 12 MP JPEG (the NumPy search), ten more crops, and then what a process
adds when it searches with the Numba kernels (a batch past search.COMPILE_AFTER, or top-k): importing
Numba, then its compiled code (loaded from the cache this step warms first).
"""

from __future__ import annotations

import json
import subprocess
import sys

STEPS = r"""
import json, os, sys, tempfile
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
out = [("python", rss())]
import numpy; out.append(("import numpy", rss()))
import PIL.Image; out.append(("import Pillow", rss()))
import edgecrop; out.append(("import edgecrop (LiteRT wrapper)", rss()))
from edgecrop import Cropper, CropperOptions, SearchOptions
from edgecrop.apps.bench import make_inputs
folder = tempfile.mkdtemp()
big = make_inputs(__import__("pathlib").Path(folder))["4000x3000.jpg"]
out.append(("made the 12 MP test JPEG (not part of cropping)", rss()))
c = Cropper(CropperOptions(num_threads=1)); out.append(("model loaded (interpreter, tensors)", rss()))
c.crop(big); out.append(("first crop of the 12 MP JPEG", rss()))
for _ in range(10):
    c.crop(big)
out.append(("ten more crops", rss()))
import numba; out.append(("import numba", rss()))
c.crop(big, options=SearchOptions(engine="numba")); out.append(("a crop with the Numba kernels (cache warm)", rss()))
print(json.dumps(out))
"""


WARM_CACHE = (
    "import numpy as np; from edgecrop import find_crops, SearchOptions, AspectRatio;"
    "find_crops(np.ones((3, 4)), 8, 6, [AspectRatio(1, 1)], SearchOptions(engine='numba'))"
)


def main() -> None:
    subprocess.run([sys.executable, "-c", WARM_CACHE], check=True)
    proc = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)
    print("| step | RSS after (MB) | added (MB) |")
    print("|---|---|---|")
    last = 0.0
    for step, mb in rows:
        print(f"| {step} | {mb:.0f} | {mb - last:+.0f} |")
        last = mb
    print("\nrerun: python -m benchmarks.memory")


if __name__ == "__main__":
    main()
