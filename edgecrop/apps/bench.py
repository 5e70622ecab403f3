"""Latency benchmark that runs on the device itself: `edgecrop bench`.

Needs nothing beyond the runtime (no TensorFlow, no ../shared): inputs are generated at run time
(an 800x600 JPEG, a 12-megapixel JPEG and a 3000x2000 PNG, resized from the sample photo that every
install ships). It measures, on this machine and in one run:
  * every model's stages (decode, preprocess, inference, postprocess, search, total) at each thread count,
    warm medians and p90 after warm-up, plus the model's load time; the search with the Numba kernels, as a
    long-running process has it (a short one searches with NumPy: see the cold start below);
  * per input, the default model's stages against the floors (decoding alone, full and reduced-size) and
    against smartcrop.py when it is installed;
  * a fresh `edgecrop crop --json` process on the 12-megapixel JPEG: cold start and peak RSS.
Ratios are taken within the run: absolute times drift on a shared machine. The result is a typed
``BenchResult``; judging it against this project's targets, quality figures and plots live in
``benchmarks/`` (``python -m benchmarks.run``), which adds the teacher and FastGaze from ../shared.
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
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._resources import sample_photo
from ..cropper import Cropper, CropperOptions
from ..errors import OutputError
from ..images import load_image
from ..model import ModelSource
from ..search import Engine, SearchOptions

INPUTS = {"800x600.jpg": (800, 600), "4000x3000.jpg": (4000, 3000), "3000x2000.png": (3000, 2000)}
TIMED_INPUT = "800x600.jpg"  # the size of the OSIE photos the quality is measured on
STAGES = ("decode", "preprocess", "inference", "postprocess", "search")


def make_inputs(folder: Path) -> dict[str, Path]:
    """The benchmark inputs, resized from the sample photo."""
    with Image.open(sample_photo()) as im:
        src = im.convert("RGB")
    out = {}
    for name, size in INPUTS.items():
        path = folder / name
        resized = src.resize(size, Image.Resampling.BICUBIC)
        if name.endswith(".jpg"):
            resized.save(path, quality=92)
        else:
            resized.save(path)
        out[name] = path
    return out


@dataclass(frozen=True)
class Timing:
    """Warm median and 90th percentile of repeated runs, in milliseconds."""

    median_ms: float
    p90_ms: float


@dataclass(frozen=True)
class ModelRun:
    """One model at one thread count on the timed input."""

    model: str
    threads: int
    input_size: int
    load_ms: float
    stages: dict[str, Timing]  # the STAGES and "total"


@dataclass(frozen=True)
class InputRun:
    """The default model on one input, against decoding it (full and reduced size) and smartcrop.py."""

    input: str
    stages: dict[str, Timing]
    decode_full: Timing
    decode_reduced: Timing
    smartcrop: Timing | None

    @property
    def total_over_reduced_decode(self) -> float:
        return self.stages["total"].median_ms / self.decode_reduced.median_ms

    @property
    def search_share(self) -> float:
        return self.stages["search"].median_ms / self.stages["total"].median_ms

    @property
    def smartcrop_over_edgecrop(self) -> float | None:
        return self.smartcrop.median_ms / self.stages["total"].median_ms if self.smartcrop else None


@dataclass(frozen=True)
class ColdStart:
    """A fresh ``edgecrop crop --json`` process on the 12 MP JPEG."""

    seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class BenchResult:
    date: str
    command: str
    machine: dict[str, str]
    models: list[ModelRun]
    inputs: list[InputRun]
    cli: ColdStart
    extra: dict[str, Any] = field(default_factory=dict)  # what benchmarks/ adds (quality, targets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: models by name and thread count, inputs by name (the results files' layout)."""
        models: dict[str, dict[str, Any]] = {}
        for m in self.models:
            models.setdefault(m.model, {})[str(m.threads)] = {
                "load_ms": m.load_ms,
                "input": m.input_size,
                "stages_ms": {k: asdict(t) for k, t in m.stages.items()},
            }
        inputs = {
            i.input: {
                "stages_ms": {k: asdict(t) for k, t in i.stages.items()},
                "decode_full_ms": i.decode_full.median_ms,
                "decode_reduced_ms": i.decode_reduced.median_ms,
                "smartcrop_ms": asdict(i.smartcrop) if i.smartcrop else None,
                "total_over_reduced_decode": i.total_over_reduced_decode,
                "search_share": i.search_share,
                "smartcrop_over_edgecrop": i.smartcrop_over_edgecrop,
            }
            for i in self.inputs
        }
        return {
            "date": self.date,
            "command": self.command,
            "machine": self.machine,
            "inputs_from": "the sample photo (edgecrop.examples/grace_hopper.jpg)",
            "models": models,
            "inputs": inputs,
            "cli": asdict(self.cli),
            **self.extra,
        }


def _timing(seconds: list[float]) -> Timing:
    return Timing(statistics.median(seconds) * 1e3, float(np.percentile(seconds, 90)) * 1e3)


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    """Median and p90 of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return _timing(times)


STEADY = SearchOptions(engine=Engine.NUMBA)  # not AUTO, which would change engines within the run


def stage_times(cropper: Cropper, path: Path, repeats: int, budget_s: float = 20.0) -> dict[str, Timing]:
    """Per stage median and p90 (ms) of whole crops after one warm-up crop; slow models get fewer
    repeats (at least 3) so that one figure takes about ``budget_s``."""
    start = time.perf_counter()
    cropper.crop(path, options=STEADY)
    first = time.perf_counter() - start
    repeats = max(3, min(repeats, int(budget_s / max(first, 1e-6))))
    runs = [cropper.crop(path, options=STEADY).timings.as_dict() for _ in range(repeats)]
    return {k: _timing([r[k] for r in runs]) for k in runs[0]}


def cli_cold_start(path: Path) -> ColdStart:
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
    return ColdStart(float(secs), int(rss_kb) / 1024)


def smartcrop_ms(path: Path, repeats: int) -> Timing | None:
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

    from .._backend import get_backend

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
) -> list[ModelRun]:
    """Every model at every thread count on one input: load time and stage times."""
    out = []
    jobs = [(name, t) for name in models for t in threads]
    for name, t in jobs if progress is None else progress(jobs, desc="models"):
        start = time.perf_counter()
        with Cropper(CropperOptions(model=models[name], num_threads=t)) as cropper:
            load_ms = (time.perf_counter() - start) * 1e3
            stages = stage_times(cropper, path, repeats)
            out.append(ModelRun(name, t, cropper.model.info.spec.width, load_ms, stages))
    return out


def bench_inputs(inputs: dict[str, Path], threads: int, repeats: int) -> list[InputRun]:
    """The default model on each input against the decode floors and smartcrop.py."""
    rows = []
    with Cropper(CropperOptions(num_threads=threads)) as cropper:
        for name, path in inputs.items():
            rows.append(
                InputRun(
                    name,
                    stage_times(cropper, path, repeats),
                    timed(partial(load_image, path), repeats),
                    timed(partial(cropper.load, path), repeats),  # the reduced size the crop decodes at
                    smartcrop_ms(path, repeats),
                )
            )
    return rows


def run(
    models: dict[str, ModelSource],
    threads: Iterable[int] = (1, 2),
    repeats: int = 10,
    command: str = "edgecrop bench",
    progress=None,
) -> BenchResult:
    """The whole on-device benchmark (see the module docstring)."""
    threads = list(threads)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        return BenchResult(
            date=datetime.date.today().isoformat(),
            command=command,
            machine=machine(),
            models=bench_models(models, threads, inputs[TIMED_INPUT], repeats, progress),
            inputs=bench_inputs(inputs, threads[0], repeats),
            cli=cli_cold_start(inputs["4000x3000.jpg"]),
        )


def markdown(r: dict) -> str:
    """The measurements as Markdown tables (``r``: ``BenchResult.to_dict()``)."""
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
    return "\n".join(lines) + "\n"


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


def write(results: dict, folder: Path, overwrite: bool = False, text: str | None = None) -> list[Path]:
    """``<date>-bench.json`` and ``.md`` (``text``, default ``markdown(results)``) in ``folder``."""
    check_writable(folder, results["date"], overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    paths = result_paths(folder, results["date"])
    paths[0].write_text(json.dumps(results, indent=1))
    paths[1].write_text(text if text is not None else markdown(results))
    return paths
