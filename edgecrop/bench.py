"""Latency benchmark that runs on the device itself: `edgecrop bench`.

Needs nothing beyond the runtime (no TensorFlow, no ../shared): inputs are generated at run time
(an 800x600 JPEG, a 12-megapixel JPEG and a 3000x2000 PNG, from the sample photo when the checkout is
there, else from a synthetic scene). It measures, on this machine and in one run:
  * every model's stages (decode, preprocess, inference, postprocess, search, total) at each thread count,
    warm medians and p90 after warm-up, plus the model's load time;
  * per input, the default model's stages against the floors (decoding alone, full and reduced-size) and
    against smartcrop.py when it is installed;
  * a fresh `edgecrop crop --json` process on the 12-megapixel JPEG: cold start and peak RSS.
Ratios are taken within the run: absolute times drift on a shared machine. ``benchmarks/run.py`` adds the
teacher, FastGaze and quality on OSIE when ../shared is there.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .cropper import Cropper, CropperOptions
from .errors import OutputError
from .images import load_image
from .model import ModelSource

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg"
INPUTS = {"800x600.jpg": (800, 600), "4000x3000.jpg": (4000, 3000), "3000x2000.png": (3000, 2000)}
TIMED_INPUT = "800x600.jpg"  # the size of the OSIE photos the quality is measured on
STAGES = ("decode", "preprocess", "inference", "postprocess", "search")
TARGETS = {  # name -> (description, lower is better?, bound)
    "int8_vs_teacher_speedup": ("int8 inference at least 50x faster than the teacher", False, 50.0),
    "total_over_reduced_decode": ("12 MP JPEG whole crop <= 1.5x its reduced-size decode", True, 1.5),
    "smartcrop_over_edgecrop": ("12 MP JPEG whole crop >= 30x faster than smartcrop.py", False, 30.0),
    "search_share": ("crop search <= 1% of the total (12 MP JPEG)", True, 0.01),
    "cli_cold_start_s": ("CLI cold start on one photo < 1 s", True, 1.0),
    "cli_peak_rss_mb": ("CLI peak RSS on the 12 MP JPEG < 200 MB", True, 200.0),
}


def scene(sample: Path = SAMPLE) -> Image.Image:
    """The picture the inputs are made from: the sample photo, or a deterministic synthetic scene."""
    if sample.exists():
        with Image.open(sample) as im:
            return im.convert("RGB")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:600, 0:800] / 600.0
    base = np.stack([0.5 + 0.3 * np.sin(3 * xx), 0.4 + 0.3 * yy, 0.6 - 0.2 * xx], -1)
    blob = np.exp(-((xx - 0.9) ** 2 + (yy - 0.4) ** 2) / 0.02)[..., None] * np.array([0.5, 0.2, -0.3])
    pixels = np.clip((base + blob) * 255 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def make_inputs(folder: Path, sample: Path = SAMPLE) -> dict[str, Path]:
    src = scene(sample)
    out = {}
    for name, size in INPUTS.items():
        path = folder / name
        src.resize(size, Image.Resampling.BICUBIC).save(path, **({"quality": 92} if name.endswith(".jpg") else {}))
        out[name] = path
    return out


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and p90 in ms of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(times) * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3}


def stage_times(cropper: Cropper, path: Path, repeats: int, budget_s: float = 20.0) -> dict[str, dict[str, float]]:
    """Per stage median and p90 (ms) of whole crops after one warm-up crop; slow models get fewer
    repeats (at least 3) so that one figure takes about ``budget_s``."""
    start = time.perf_counter()
    cropper.crop(path)
    first = time.perf_counter() - start
    repeats = max(3, min(repeats, int(budget_s / max(first, 1e-6))))
    runs = [cropper.crop(path).timings for _ in range(repeats)]
    return {
        k: {
            "median_ms": statistics.median(r[k] for r in runs) * 1e3,
            "p90_ms": float(np.percentile([r[k] for r in runs], 90)) * 1e3,
        }
        for k in runs[0]
    }


def cli_cold_start(path: Path) -> dict[str, float]:
    """A fresh `edgecrop crop --json` process: wall time and peak RSS of the child."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        f"p = subprocess.run([sys.executable, '-m', 'edgecrop', 'crop', {str(path)!r}, '--json', '--threads', '1'],"
        "capture_output=True); assert p.returncode == 0, p.stderr;"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    with tempfile.TemporaryDirectory() as cwd:
        secs, rss_kb = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
        ).stdout.split()
    return {"seconds": float(secs), "peak_rss_mb": int(rss_kb) / 1024}


def smartcrop_ms(path: Path, repeats: int) -> dict[str, float] | None:
    """smartcrop.py (PyPI smartcrop) on the same file, decode included, as users call it."""
    try:
        import smartcrop
    except ImportError:
        return None
    sc = smartcrop.SmartCrop()

    def run():
        with Image.open(path) as im:
            sc.crop(im.convert("RGB"), 100, 100)

    return timed(run, max(1, repeats // 5))


def machine() -> dict[str, str]:
    import numba

    from .backend import get_backend

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                cpu = line.split(":", 1)[1].strip()
                break
    backend = get_backend()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": str(cores),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "litert": f"{backend.name} {backend.version}",
    }


def bench_models(
    models: dict[str, ModelSource], threads: Iterable[int], path: Path, repeats: int, progress=None
) -> dict[str, dict[str, dict]]:
    """Every model at every thread count on one input: load time and stage times."""
    out: dict[str, dict[str, dict]] = {}
    jobs = [(name, t) for name in models for t in threads]
    for name, t in jobs if progress is None else progress(jobs, desc="models"):
        start = time.perf_counter()
        with Cropper(CropperOptions(model=models[name], num_threads=t)) as cropper:
            load_ms = (time.perf_counter() - start) * 1e3
            stages = stage_times(cropper, path, repeats)
            out.setdefault(name, {})[str(t)] = {
                "load_ms": load_ms,
                "stages_ms": stages,
                "input": cropper.model.info.spec.width,
            }
    return out


def bench_inputs(inputs: dict[str, Path], threads: int, repeats: int) -> dict[str, dict]:
    """The default model on each input against the decode floors and smartcrop.py."""
    rows = {}
    with Cropper(CropperOptions(num_threads=threads)) as cropper:
        spec = cropper.model.info.spec
        for name, path in inputs.items():
            stages = stage_times(cropper, path, repeats)
            total = stages["total"]["median_ms"]
            row = {
                "stages_ms": stages,
                "decode_full_ms": timed(lambda p=path: load_image(p), repeats)["median_ms"],
                "decode_reduced_ms": timed(lambda p=path: load_image(p, min_size=(spec.width, spec.height)), repeats)[
                    "median_ms"
                ],
                "smartcrop_ms": smartcrop_ms(path, repeats),
            }
            row["total_over_reduced_decode"] = total / row["decode_reduced_ms"]
            row["search_share"] = stages["search"]["median_ms"] / total
            if row["smartcrop_ms"]:
                row["smartcrop_over_edgecrop"] = row["smartcrop_ms"]["median_ms"] / total
            rows[name] = row
    return rows


def run(
    models: dict[str, ModelSource],
    threads: Iterable[int] = (1, 2),
    repeats: int = 10,
    command: str = "edgecrop bench",
    progress=None,
) -> dict:
    """The whole on-device benchmark; returns the results dict (see module docstring)."""
    threads = list(threads)
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "command": command,
        "machine": machine(),
        "inputs_from": "examples/grace_hopper.jpg" if SAMPLE.exists() else "a synthetic scene",
    }
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        results["models"] = bench_models(models, threads, inputs[TIMED_INPUT], repeats, progress)
        results["inputs"] = bench_inputs(inputs, threads[0], repeats)
        results["cli"] = cli_cold_start(inputs["4000x3000.jpg"])
    results["targets"] = check_targets(results)
    return results


def _inference(results: dict, name: str, threads: str) -> float | None:
    row = results["models"].get(name, {}).get(threads)
    return row["stages_ms"]["inference"]["median_ms"] if row else None


def check_targets(results: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    big = results["inputs"].get("4000x3000.jpg", {})
    values: dict[str, float | None] = {
        "total_over_reduced_decode": big.get("total_over_reduced_decode"),
        "smartcrop_over_edgecrop": big.get("smartcrop_over_edgecrop"),
        "search_share": big.get("search_share"),
        "cli_cold_start_s": results["cli"]["seconds"],
        "cli_peak_rss_mb": results["cli"]["peak_rss_mb"],
        "int8_vs_teacher_speedup": None,
    }
    teacher = next((n for n in results["models"] if n.startswith("teacher")), None)
    if teacher and "edgecrop_int8" in results["models"]:
        speedups = [
            _inference(results, teacher, t) / _inference(results, "edgecrop_int8", t)
            for t in results["models"]["edgecrop_int8"]
            if _inference(results, teacher, t)
        ]
        values["int8_vs_teacher_speedup"] = min(speedups) if speedups else None
    rows = []
    for key, (text, lower_better, bound) in TARGETS.items():
        v = values[key]
        met = None if v is None else (v <= bound if lower_better else v >= bound)
        rows.append({"target": key, "description": text, "value": v, "bound": bound, "met": met})
    return rows


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# edgecrop benchmark, {r['date']}",
        "",
        f"Machine: {m['cpu']} ({m['arch']}), {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}, "
        f"numba {m['numba']}, {m['litert']}. Inputs made from {r['inputs_from']}.",
        f"Command: `{r['command']}`",
        "",
        f"## Models on the {TIMED_INPUT} input (whole crop, warm medians in ms; p90 of the total in brackets)",
        "",
        "| model | threads | input px | load | decode | preprocess | inference | postprocess | search | total |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_threads in r["models"].items():
        for t, row in by_threads.items():
            s = row["stages_ms"]
            cells = " | ".join(f"{s[k]['median_ms']:.2f}" for k in STAGES)
            lines.append(
                f"| {name} | {t} | {row['input']} | {row['load_ms']:.0f} | {cells} "
                f"| {s['total']['median_ms']:.2f} ({s['total']['p90_ms']:.2f}) |"
            )
    lines += [
        "",
        "## Default model per input, against the floors and smartcrop.py (ms)",
        "",
        "| input | total | full decode | reduced decode | total / reduced decode | search share | smartcrop.py "
        "| smartcrop / edgecrop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["inputs"].items():
        sc = row["smartcrop_ms"]
        lines.append(
            f"| {name} | {row['stages_ms']['total']['median_ms']:.1f} | {row['decode_full_ms']:.1f} "
            f"| {row['decode_reduced_ms']:.1f} | {row['total_over_reduced_decode']:.2f}x | {row['search_share']:.2%} "
            + (f"| {sc['median_ms']:.0f} | {row['smartcrop_over_edgecrop']:.1f}x |" if sc else "| not installed | |")
        )
    c = r["cli"]
    lines += [
        "",
        f"CLI `edgecrop crop --json` on the 12 MP JPEG, fresh process: {c['seconds']:.2f} s, "
        f"peak RSS {c['peak_rss_mb']:.0f} MB",
    ]
    if r.get("quality"):
        lines += ["", "## Quality on OSIE validation (100 photos) beside speed", ""]
        lines += quality_table(r)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in r["targets"]:
        v = "not measured" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"| {t['description']} | {v} | {'n/a' if t['met'] is None else 'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def quality_table(r: dict) -> list[str]:
    keys = ("NSS", "CC", "AUC-Judd", "sAUC")
    lines = [
        "| model | " + " | ".join(keys) + " | fixations kept by crops (mean of 4 ratios) | whole crop, 1 thread (ms) |",
        "|---|" + "---|" * (len(keys) + 2),
    ]
    for name, q in r["quality"].items():
        metrics = " | ".join(f"{q[k]:.3f}" if k in q else "" for k in keys)
        latency = _latency(r, name)
        lines.append(
            f"| {name} | {metrics} | {q['crop_share']:.3f} | {latency:.1f} |"
            if np.isfinite(latency)
            else f"| {name} | {metrics} | {q['crop_share']:.3f} | |"
        )
    return lines


def _latency(r: dict, name: str) -> float:
    """Whole-crop time of a model or peer at 1 thread on the timed input (ms)."""
    if name in r["models"]:
        return r["models"][name]["1"]["stages_ms"]["total"]["median_ms"]
    if name == "smartcrop.py" and r["inputs"][TIMED_INPUT]["smartcrop_ms"]:
        return r["inputs"][TIMED_INPUT]["smartcrop_ms"]["median_ms"]
    if name == "centre crop":
        return r["inputs"][TIMED_INPUT]["decode_reduced_ms"]
    return float("nan")


def plots(r: dict, folder: Path, stem: str) -> list[Path]:
    """Per-stage latency bars and, with quality, a quality-vs-latency scatter (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [(f"{n} ({t}T)", row["stages_ms"]) for n, by in r["models"].items() for t, row in by.items()]
    rows += [(f"default on {n}", row["stages_ms"]) for n, row in r["inputs"].items() if n != TIMED_INPUT]
    fast = [row for row in rows if row[1]["total"]["median_ms"] < 50]
    slow = [row for row in rows if row[1]["total"]["median_ms"] >= 50]
    panels = [p for p in (fast, slow) if p]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 0.42 * len(rows) + 2.5), height_ratios=[len(p) for p in panels], squeeze=False
    )
    for ax, panel in zip(axes[:, 0], panels):
        left = np.zeros(len(panel))
        for stage in STAGES:
            v = np.array([s[stage]["median_ms"] for _, s in panel])
            ax.barh([n for n, _ in panel], v, left=left, label=stage)
            left += v
        for y, total in enumerate(left):
            ax.text(total, y, f" {total:.1f}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, left.max() * 1.15)
        ax.set_xlabel("ms per photo, warm median (linear)")
    axes[0, 0].set_title(f"edgecrop stages on {r['machine']['cpu']} ({r['date']})", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    written.append(folder / f"{stem}-stages.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if r.get("quality"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (name, q) in enumerate(r["quality"].items()):
            x = _latency(r, name)
            if np.isfinite(x):
                ax.scatter(x, q["crop_share"], s=40)
                dy = (4, -11, 15)[i % 3]  # neighbours (the float variants) get different offsets
                ax.annotate(name, (x, q["crop_share"]), fontsize=8, xytext=(5, dy), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"whole crop of an {TIMED_INPUT} photo, 1 thread (ms, log scale)")
        ax.set_ylabel("share of human fixations kept by the crops")
        ax.set_title("quality vs latency on OSIE validation (up and left is better)", fontsize=9)
        fig.tight_layout()
        written.append(folder / f"{stem}-quality_vs_latency.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def result_paths(folder: Path, date: str) -> list[Path]:
    """Where the results of a run on ``date`` go: ``<date>-bench.json`` and ``.md``."""
    return [folder / f"{date}-bench.json", folder / f"{date}-bench.md"]


def check_writable(folder: Path, date: str, overwrite: bool) -> None:
    """Refuse before measuring, not after: existing results are kept unless ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: not a folder")
    existing = [p for p in result_paths(folder, date) if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} exists (use --overwrite)")


def write(results: dict, folder: Path, overwrite: bool = False) -> list[Path]:
    """``<date>-bench.json``, ``.md`` and the PNG plots (when matplotlib is installed) in ``folder``."""
    check_writable(folder, results["date"], overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{results['date']}-bench"
    targets = result_paths(folder, results["date"])
    targets[0].write_text(json.dumps(results, indent=1))
    targets[1].write_text(markdown(results))
    try:
        targets += plots(results, folder, stem)
    except ImportError:
        print("edgecrop bench: no plots (pip install matplotlib)", file=sys.stderr)
    return targets
