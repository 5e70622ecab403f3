"""Batch throughput: photos per second with --jobs 1 against threads and processes on every core.

    python -m benchmarks.batch_throughput [--photos 24] [--repeats 3] [--engine numba]

Inputs are made from the sample photo (12 MP JPEGs and 800x600 JPEGs). Each way is timed over the same
photos, warm (the model loaded, Numba compiled), best of --repeats; the speedups are ratios within the run.
Threads: Cropper.crop_many (each thread its own interpreter; Pillow's decode and LiteRT's invoke release
the GIL). Processes: a multiprocessing pool, each process with its own Cropper. --engine picks the search's
engine: numba (the default here: a long batch's steady state), numpy (a short batch's), or auto, which
switches from one to the other during the run (search.COMPILE_AFTER), so its ratios mix the two.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from edgecrop import Cropper, CropperOptions, Engine, SearchOptions
from edgecrop.apps.bench import machine, sample_photo

SIZES = {"12 MP JPEG": (4000, 3000), "800x600 JPEG": (800, 600)}
_worker: Cropper | None = None
_options = SearchOptions()


def _init(options: SearchOptions) -> None:
    global _worker, _options
    _worker, _options = Cropper(CropperOptions(num_threads=1)), options


def _crop(path: str) -> int:
    assert _worker is not None
    return len(_worker.crop(path, options=_options).crops)


def make(folder: Path, size: tuple[int, int], n: int) -> list[Path]:
    with Image.open(sample_photo()) as im:
        src = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    paths = []
    for k in range(n):  # distinct files, so no cache helps
        path = folder / f"{size[0]}_{k}.jpg"
        src.rotate(k % 4 * 0.5).save(path, quality=90 - k % 5)
        paths.append(path)
    return paths


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(photos: int, repeats: int, options: SearchOptions) -> list[dict]:
    jobs = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Cropper(CropperOptions(num_threads=1)) as cropper:
        pool = mp.get_context("spawn").Pool(jobs, _init, (options,))
        try:
            pool.map(_crop, [str(sample_photo())] * jobs)  # warm every process
            for label, size in SIZES.items():
                paths = make(Path(tmp), size, photos)
                list(cropper.crop_many(paths[:2], options=options, jobs=jobs))  # warm the threads' interpreters
                one = best_of(lambda paths=paths: list(cropper.crop_many(paths, options=options, jobs=1)), repeats)
                threads = best_of(
                    lambda paths=paths: list(cropper.crop_many(paths, options=options, jobs=jobs)), repeats
                )
                procs = best_of(lambda paths=paths: pool.map(_crop, [str(p) for p in paths]), repeats)
                rows.append(
                    {
                        "input": label,
                        "photos": photos,
                        "jobs": jobs,
                        "per_s_jobs1": photos / one,
                        "per_s_threads": photos / threads,
                        "per_s_processes": photos / procs,
                        "threads_speedup": one / threads,
                        "processes_speedup": one / procs,
                    }
                )
        finally:
            pool.close()
            pool.join()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", choices=[e.value for e in Engine], default="numba")
    args = ap.parse_args(argv)
    m = machine()
    command = f"python -m benchmarks.batch_throughput --photos {args.photos} --repeats {args.repeats}"
    command += f" --engine {args.engine}"
    print(f"{m['cpu']}, {m['cores']} cores; {command}")
    print("| input | jobs | --jobs 1 (photos/s) | threads | processes | threads / jobs 1 | processes / jobs 1 |")
    print("|---|---|---|---|---|---|---|")
    for r in run(args.photos, args.repeats, SearchOptions(engine=args.engine)):
        print(
            f"| {r['input']} | {r['jobs']} | {r['per_s_jobs1']:.1f} | {r['per_s_threads']:.1f} "
            f"| {r['per_s_processes']:.1f} | {r['threads_speedup']:.2f}x | {r['processes_speedup']:.2f}x |"
        )


if __name__ == "__main__":
    main()
