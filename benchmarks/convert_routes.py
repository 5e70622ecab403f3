"""`edgecrop-convert model` on real networks: Google's attention-center (its float16 TFLite, a third-party
network with group norms) and this project's own student as a Keras file, a SavedModel, a float32 TFLite
and a PyTorch re-implementation with the same weights (``benchmarks.keras_torch``) saved as an exported
program, TorchScript and ONNX, each converted to int8 by the command a user runs, timed, and compared
with the direct export.

    python -m benchmarks.convert_routes [--run .cache/p192/large] [--out benchmarks/results/DATE-convert-routes.md]

Calibration: 100 corpus photos; check: 40 OSIE validation photos; fixations (the student's routes; the
teacher at 640x480 would take long): NUS Scene (all 250, as a user's own fixations file would be). The
student's run folder (``converters.pipeline --pretrained``) gives its Keras model; the direct export is
``models/edgecrop_int8.tflite``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from converters import paths
from converters.data import load_splits
from converters.tflite_edit import embed_card
from converters.user_model import map_ccs
from edgecrop import read_card

REPO = Path(__file__).resolve().parent.parent


def _convert(source: str, out: Path, photos: Path, check: Path, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "converters.cli", "model", source, "-o", str(out), "--overwrite"]
    command += ["--calibration", str(photos), "--limit", "100", "--check", str(check)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([*command, *extra], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return time.perf_counter() - started, read_card(out.read_bytes(), out.name).checks


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=REPO / ".cache" / "p192" / "large")
    ap.add_argument("--weights", default="refine_model.npz")
    ap.add_argument("--shared")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "convert-routes.md")
    args = ap.parse_args(argv)
    shared = paths.shared_dir(args.shared)
    work = Path(tempfile.mkdtemp(prefix="convert_routes_"))
    check = work / "check"
    check.mkdir()
    val = load_splits()["osie_val"][:40]
    for name in val:
        (check / name).symlink_to(shared / "data" / "osie" / "images" / name)
    photos, fixations = shared / "data" / "corpus", shared / "data" / "nus_scene" / "fixations.json"

    import tensorflow as tf

    from benchmarks.keras_torch import dump
    from converters.student import slim
    from converters.train import load_run

    model, _ = slim(*load_run(args.run, args.weights))
    model.save(work / "student.keras")
    tf.saved_model.save(model, str(work / "student_savedmodel"))
    dump(model, work)  # and the same network re-implemented in PyTorch, saved three ways
    proc = subprocess.run([sys.executable, "-m", "benchmarks.keras_torch", str(work)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    print(proc.stdout.strip())
    direct = (REPO / "models" / "edgecrop_int8.tflite").read_bytes()
    shipped = read_card(direct, "edgecrop_int8")
    student = ["--resize", "letterbox", "--fixations", str(fixations)]
    teacher = str(shared / "teachers" / "attention-center" / "center.tflite")
    teacher_flags = ["--map-output", "Sum", "--map-kind", "logits", "--temperature", "2", "--allow-float"]
    sources = [
        ("attention-center (float16 TFLite)", teacher, teacher_flags),
        ("attention-center, group norms kept float", teacher, [*teacher_flags, "--keep-float", ".*GroupNorm.*"]),
        ("student, Keras", str(work / "student.keras"), [*student, "--custom-objects", "converters.student"]),
        ("student, SavedModel", str(work / "student_savedmodel"), student),
        ("student, float32 TFLite", str(REPO / "models" / "edgecrop_float32.tflite"), student),
        ("student in PyTorch, exported program", str(work / "student.pt2"), [*student, "--size", "192x192"]),
        ("student in PyTorch, TorchScript", str(work / "student.pt"), [*student, "--size", "192x192"]),
        ("student in PyTorch, ONNX", str(work / "student.onnx"), student),
    ]
    rows = []
    for label, source, extra in sources:
        out = work / f"{len(rows)}.tflite"
        seconds, checks = _convert(source, out, photos, check, *extra)
        row = {**checks, "source": label, "seconds": round(seconds, 1), "size": out.stat().st_size}
        if label.startswith("student"):  # against the direct export, both with the shipped card's post-processing
            same = embed_card(out.read_bytes(), shipped)
            row["cc_vs_direct_int8"] = float(np.mean(map_ccs(same, direct, sorted(check.iterdir()))))
        rows.append(row)
        print(json.dumps(row))
    args.out.write_text(table(rows))
    print(args.out.read_text())


def table(rows: list[dict]) -> str:
    """The rows (one JSON line each as printed) as the results file's Markdown."""

    def floats(r: dict) -> str:
        left = r["left_in_float"]
        return left if isinstance(left, str) else f"{sum(left.values())} ops ({', '.join(sorted(left))})"

    lines = [
        "# edgecrop-convert model on real networks",
        "",
        f"`python -m benchmarks.convert_routes` ({time.strftime('%Y-%m-%d')}, 2 cores). Calibration 100 corpus photos,"
        " check 40 OSIE validation photos, fixations NUS Scene (250; the student only). Crop score: 0 = centre"
        " crop, 1 = best window (the converted card: no centre prior).",
        "",
        "| source | route | time (s) | int8 vs float CC mean / worst | vs direct export | left in float | size"
        " | crop score [95%] | NSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        direct = f"{r['cc_vs_direct_int8']:.4f}" if "cc_vs_direct_int8" in r else "-"
        score = f"{r['crop_score_vs_centre']:+.3f} {r['crop_score_ci95']}" if "crop_score_vs_centre" in r else "-"
        nss = f"{r['map_nss']:.2f}" if "map_nss" in r else "-"
        lines.append(
            f"| {r['source']} | {r['route']} | {r['seconds']} | {r['int8_vs_float32_cc_mean']:.4f} / "
            f"{r['int8_vs_float32_cc_worst']:.4f} | {direct} | {floats(r)} | {r['size']:,} | {score} | {nss} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
