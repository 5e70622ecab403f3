"""Same crops on two machines? Dump the boxes and raw int8 maps on each, then compare the dumps.

    python -m benchmarks.arm64_compare dump OUT.json        # on each machine (scripts/arm64_emulation.sh)
    python -m benchmarks.arm64_compare compare A.json B.json

Inputs: the shipped sample photo and the benchmark's generated inputs, so no ../shared is needed.
Verdict: boxes must be identical; the raw int8 outputs may differ by at most MAX_INT8_STEPS quantisation
steps per cell (int8 kernels may round differently on another instruction set; measured: 0).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgecrop import Cropper, CropperOptions
from edgecrop._backend import get_backend
from edgecrop.apps.bench import make_inputs, sample_photo

MAX_INT8_STEPS = 1
ASPECTS = ("16:9", "1:1", "4:5", "9:16", "3:1")


def dump(out: Path) -> dict:
    backend = get_backend()
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "runtime": f"{backend.name} {backend.version}",
        "numpy": np.__version__,
        "images": {},
    }
    with tempfile.TemporaryDirectory() as tmp, Cropper(CropperOptions(num_threads=1)) as cropper:
        inputs = {"grace_hopper.jpg": sample_photo(), **make_inputs(Path(tmp))}
        q = cropper.model.info.output_quant
        for name, path in inputs.items():
            res = cropper.crop(path, ASPECTS)
            raw = cropper.model.raw_map(cropper.load(path).rgb).values
            steps = np.round(raw / q.scale).astype(int) + q.zero_point if q.quantized else raw
            result["images"][name] = {
                "crops": [c.as_dict() for c in res.crops],
                "raw": steps.tolist(),
            }
    out.write_text(json.dumps(result))
    return result


def compare(a: dict, b: dict) -> tuple[bool, list[str]]:
    lines, ok = [f"{a['machine']} vs {b['machine']}"], True
    for side in (a, b):  # the same runtime on both sides, or the comparison proves less than it says
        lines.append(
            f"{side['machine']}: {side.get('runtime', 'runtime not recorded')}, numpy {side.get('numpy', '?')}"
        )
    if a.get("runtime") != b.get("runtime"):
        lines.append("runtimes DIFFER: the comparison does not show what a Pi with the host's runtime gets")
        ok = False
    for name in a["images"]:
        if name not in b["images"]:
            lines.append(f"{name}: missing on {b['machine']}")
            ok = False
            continue
        ia, ib = a["images"][name], b["images"][name]
        boxes_a = [(c["aspect"], c["x"], c["y"], c["width"], c["height"]) for c in ia["crops"]]
        boxes_b = [(c["aspect"], c["x"], c["y"], c["width"], c["height"]) for c in ib["crops"]]
        diff = np.abs(np.asarray(ia["raw"], float) - np.asarray(ib["raw"], float))
        same_boxes = boxes_a == boxes_b
        ok &= same_boxes and diff.max() <= MAX_INT8_STEPS
        lines.append(
            f"{name}: boxes {'identical' if same_boxes else 'DIFFER'} ({len(boxes_a)}); raw map max difference "
            f"{diff.max():.0f} int8 steps, {int((diff > 0).sum())} of {diff.size} cells differ"
        )
        if not same_boxes:
            lines += [f"   {x} vs {y}" for x, y in zip(boxes_a, boxes_b) if x != y]
    lines.append(f"verdict: {'PASS' if ok else 'FAIL'} (identical boxes, raw maps within {MAX_INT8_STEPS} int8 step)")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dump").add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out)
        return 0
    ok, lines = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
