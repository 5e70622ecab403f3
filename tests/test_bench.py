"""`edgecrop bench` runs on the runtime alone and writes its results; the Edge TPU pre-flight check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import report
from edgecrop import Cropper
from edgecrop.apps import bench
from edgecrop.apps.cli import main
from edgecrop.modelfile.registry import resolve_model


def test_bench_command_writes_results(tmp_path, capsys):
    args = ["bench", "--model", "edgecrop_int8", "--threads", "1", "--repeats", "1", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    with Cropper() as cropper:
        size = cropper.model.info.spec.width
    assert f"| edgecrop_int8 | 1 | {size} |" in out
    (results,) = tmp_path.glob("*-bench.json")
    r = json.loads(results.read_text())
    assert set(r["inputs"]) == set(bench.INPUTS)
    stages = r["models"]["edgecrop_int8"]["1"]["stages_ms"]
    assert all(stages[k]["median_ms"] > 0 for k in bench.STAGES)
    assert stages["total"]["median_ms"] >= stages["inference"]["median_ms"]
    assert r["cli"]["peak_rss_mb"] > 10 and r["cli"]["seconds"] > 0
    assert (tmp_path / results.name.replace(".json", ".md")).exists()
    before = results.read_bytes()
    run = subprocess.run([sys.executable, "-m", "edgecrop", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and results.read_bytes() == before  # never overwritten without --overwrite
    assert run.stderr == f"edgecrop: error: {results} exists (use --overwrite)\n"  # refused before measuring


def test_plots_label_the_measured_total(tmp_path):
    pytest.importorskip("matplotlib")
    stage = {"median_ms": 1.0, "p90_ms": 1.0}
    stages = {**{k: stage for k in bench.STAGES}, "total": {"median_ms": 7.5, "p90_ms": 8.0}}
    r = {
        "date": "d",
        "machine": {"cpu": "cpu"},
        "models": {"m": {"1": {"stages_ms": stages}}},
        "inputs": {bench.TIMED_INPUT: {"stages_ms": stages}},
    }
    import matplotlib.pyplot as plt

    texts = []
    original = plt.Axes.text
    plt.Axes.text = lambda self, x, y, s, **kw: texts.append(s) or original(self, x, y, s, **kw)
    try:
        (png,) = report.plots(r, tmp_path, "t")
    finally:
        plt.Axes.text = original
    assert png.exists() and texts == [" 7.5 ms"]  # not the 5.0 the stage medians add up to


def test_targets_are_judged_from_the_figures():
    r = {
        "inputs": {"4000x3000.jpg": {"total_over_reduced_decode": 1.2, "search_share": 0.02}},
        "cli": {"seconds": 0.5, "peak_rss_mb": 250.0},
        "models": {},
    }
    met = {t["target"]: t["met"] for t in report.check_targets(r)}
    assert met["total_over_reduced_decode"] is True
    assert met["search_share"] is False
    assert met["cli_peak_rss_mb"] is False
    assert met["int8_vs_teacher_speedup"] is None  # not measured without the teacher


def test_edgetpu_check_on_bundled_models():
    pytest.importorskip("ai_edge_litert.schema_py_generated")
    from converters.edgetpu import edgetpu_problems, edgetpu_report

    assert edgetpu_problems(resolve_model("edgecrop_int8").read_bytes()) == []
    problems = edgetpu_problems(resolve_model("edgecrop_float32").read_bytes())
    assert problems and all("not all 8-bit" in p for p in problems)
    ok, text = edgetpu_report(resolve_model("edgecrop_int8").read_bytes())
    assert ok and "CONV_2D" in text


def test_arm64_comparison_verdict():
    from benchmarks.arm64_compare import compare

    crop = {"aspect": "1:1", "x": 10, "y": 0, "width": 600, "height": 600}
    a = {"machine": "x86_64", "images": {"p.jpg": {"crops": [crop], "raw": [[-128, 5], [7, 127]]}}}
    same = {"machine": "aarch64", "images": {"p.jpg": {"crops": [dict(crop)], "raw": [[-128, 6], [7, 127]]}}}
    ok, lines = compare(a, same)
    assert ok and "PASS" in lines[-1]
    moved = {"machine": "aarch64", "images": {"p.jpg": {"crops": [{**crop, "x": 11}], "raw": [[-128, 5], [7, 127]]}}}
    assert not compare(a, moved)[0]
    far = {"machine": "aarch64", "images": {"p.jpg": {"crops": [crop], "raw": [[-128, 9], [7, 127]]}}}
    assert not compare(a, far)[0]
    assert not compare(a, {"machine": "aarch64", "images": {}})[0]
