"""Whole-pipeline latency per stage against the floors (decoding alone) and smartcrop.py, on this machine.

    python -m benchmarks.latency [--repeats 10] [--threads 1] [--json-out FILE]

Inputs are made at run time from the shipped sample photo (no ../shared needed): an 800x600 JPEG, a
4000x3000 (12-megapixel) JPEG and a 3000x2000 PNG. Warm figures are medians (and p90) after warm-up;
ratios are taken within this run, since absolute times drift on a shared machine. Cold start and peak
memory are of a fresh `edgecrop crop --json` process on the 12-megapixel JPEG.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgecrop import Cropper, CropperOptions
from edgecrop.images import load_image

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg"
INPUTS = {"800x600.jpg": (800, 600), "4000x3000.jpg": (4000, 3000), "3000x2000.png": (3000, 2000)}


def make_inputs(folder: Path) -> dict[str, Path]:
    src = Image.open(SAMPLE).convert("RGB")
    out = {}
    for name, size in INPUTS.items():
        path = folder / name
        src.resize(size, Image.BICUBIC).save(path, quality=92) if name.endswith(".jpg") else src.resize(
            size, Image.BICUBIC
        ).save(path)
        out[name] = path
    return out


def timed(fn, repeats: int) -> dict[str, float]:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(times) * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3}


def stage_times(cropper: Cropper, path: Path, repeats: int) -> dict[str, float]:
    runs = [cropper.crop(path).timings for _ in range(repeats + 1)][1:]
    return {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}


def cli_cold_start(path: Path) -> dict[str, float]:
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        f"p = subprocess.run([sys.executable, '-m', 'edgecrop', 'crop', {str(path)!r}, '--json', '--threads', '1'],"
        "capture_output=True); assert p.returncode == 0, p.stderr;"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    secs, rss_kb = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return {"seconds": float(secs), "peak_rss_mb": int(rss_kb) / 1024}


def smartcrop_ms(path: Path, repeats: int) -> float | None:
    try:
        import smartcrop
    except ImportError:
        return None
    sc = smartcrop.SmartCrop()

    def run():
        img = Image.open(path).convert("RGB")
        sc.crop(img, 100, 100)

    return timed(run, max(1, repeats // 5))["median_ms"]


def machine() -> dict[str, str]:
    import numba

    from edgecrop.backend import get_backend

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    backend = get_backend()
    return {
        "cpu": cpu,
        "cores": str(len(__import__("os").sched_getaffinity(0))),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "litert": f"{backend.name} {backend.version}",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    results: dict = {
        "machine": machine(),
        "command": "python -m benchmarks.latency " + " ".join(argv or sys.argv[1:]),
        "inputs": {},
    }
    with tempfile.TemporaryDirectory() as tmp, Cropper(CropperOptions(num_threads=args.threads)) as cropper:
        inputs = make_inputs(Path(tmp))
        spec = cropper.model.info.spec
        for name, path in inputs.items():
            row = {
                "stages_ms": stage_times(cropper, path, args.repeats),
                "decode_full_ms": timed(lambda p=path: load_image(p), args.repeats)["median_ms"],
                "decode_reduced_ms": timed(
                    lambda p=path: load_image(p, min_size=(spec.width, spec.height)), args.repeats
                )["median_ms"],
                "smartcrop_ms": smartcrop_ms(path, args.repeats),
            }
            total = row["stages_ms"]["total"]
            row["total_over_reduced_decode"] = total / row["decode_reduced_ms"]
            row["search_share"] = row["stages_ms"]["search"] / total
            if row["smartcrop_ms"]:
                row["smartcrop_over_edgecrop"] = row["smartcrop_ms"] / total
            results["inputs"][name] = row
        results["cli_cold_start_12mp"] = cli_cold_start(inputs["4000x3000.jpg"])
    results["this_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(format_markdown(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return results


def format_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, "
        f"numba {m['numba']}, {m['litert']}",
        "",
        "| input | decode | preprocess | inference | search | total | full decode | reduced decode "
        "| total / reduced decode | smartcrop.py | smartcrop / edgecrop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["inputs"].items():
        s = row["stages_ms"]
        sc = row["smartcrop_ms"]
        lines.append(
            f"| {name} | {s['decode']:.1f} | {s['preprocess']:.1f} | {s['inference']:.2f} | {s['search'] * 1e3:.0f} us "
            f"| {s['total']:.1f} | {row['decode_full_ms']:.1f} | {row['decode_reduced_ms']:.1f} "
            f"| {row['total_over_reduced_decode']:.2f}x | {sc:.0f} | {row.get('smartcrop_over_edgecrop', 0):.0f}x |"
            if sc
            else f"| {name} | {s['total']:.1f} | (smartcrop not installed) |"
        )
    c = r["cli_cold_start_12mp"]
    lines += [
        "",
        "times in ms (medians); search in microseconds",
        f"CLI cold start on the 12-megapixel JPEG: {c['seconds']:.2f} s, peak RSS {c['peak_rss_mb']:.0f} MB",
        f"rerun: {r['command']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
