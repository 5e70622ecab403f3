"""Inference time of the bundled models and of the teacher, same interpreter, same thread count.

    python -m benchmarks.model_speed [--threads 1] [--repeats 50]

Only the interpreter's invoke is timed (input already in place), median of the repeats after warm-up.
The teacher (attention-center, from ../shared) is converted on the fly when ../shared is present.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from edgecrop.model import SaliencyModel
from edgecrop.registry import list_models

SHARED = Path(os.environ.get("EDGECROP_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def invoke_ms(model: SaliencyModel, repeats: int) -> float:
    spec = model.info.spec
    pixels = np.random.default_rng(0).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
    for _ in range(5):
        model.run(pixels)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.run(pixels)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def models() -> dict[str, bytes | Path]:
    out: dict[str, bytes | Path] = {m.name: m.path for m in list_models()}
    teacher = SHARED / "teachers" / "attention-center" / "center.tflite"
    if teacher.exists():
        try:
            from converters.teacher import convert_teacher

            out["teacher (attention-center)"] = convert_teacher(teacher)
        except ImportError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    rows = {}
    for threads in args.threads:
        for name, source in models().items():
            with SaliencyModel(source, num_threads=threads, name=name) as m:
                rows[(name, threads)] = invoke_ms(m, args.repeats)
                print(f"{name:<28} {threads} thread(s): {rows[(name, threads)]:8.2f} ms per image (inference)")
        teacher = rows.get(("teacher (attention-center)", threads))
        student = rows.get(("edgecrop_int8", threads))
        if teacher and student:
            print(f"  edgecrop_int8 is {teacher / student:.0f}x faster than the teacher at {threads} thread(s)")
    print("rerun: python -m benchmarks.model_speed")


if __name__ == "__main__":
    main()
