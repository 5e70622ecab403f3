"""The Java cropcore (android_demo) and the Python SDK must behave the same: golden vectors, and the Java tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.golden_vectors import GOLDEN, golden

ANDROID = GOLDEN.parents[4]


def test_golden_file_is_up_to_date():
    """Fails when the search, layout or quantisation code changed and golden.json was not regenerated."""
    stored = json.loads(GOLDEN.read_text())
    fresh = json.loads(json.dumps(golden()))
    hint = "golden.json is stale: run python -m tests.golden_vectors"
    assert stored.keys() == fresh.keys(), hint
    for name, m in fresh["maps"].items():
        np.testing.assert_allclose(stored["maps"][name], m, rtol=1e-6, atol=1e-12, err_msg=hint)
    assert [c["name"] for c in stored["search"]] == [c["name"] for c in fresh["search"]], hint
    for s, f in zip(stored["search"], fresh["search"]):
        assert [c[:5] + [c[6]] for c in s["crops"]] == [c[:5] + [c[6]] for c in f["crops"]], f"{s['name']}: {hint}"
        np.testing.assert_allclose([c[5] for c in s["crops"]], [c[5] for c in f["crops"]], atol=1e-9, err_msg=hint)
        assert {k: v for k, v in s.items() if k != "crops"} == {k: v for k, v in f.items() if k != "crops"}, hint
    assert stored["layout"] == fresh["layout"], hint
    assert stored["lut"] == fresh["lut"], hint
    assert len(stored["output"]) == len(fresh["output"]), hint
    for s, f in zip(stored["output"], fresh["output"]):
        np.testing.assert_allclose(s["probability"], f["probability"], rtol=1e-6, err_msg=hint)
        assert s["q"] == f["q"] and s["dequantized"] == f["dequantized"] and s["card"] == f["card"], hint
    assert stored["cards"] == fresh["cards"], hint


def test_golden_cases_cover_ties_options_and_photos():
    stored = json.loads(GOLDEN.read_text())
    names = {c["name"] for c in stored["search"]}
    for needed in (
        "two_peaks/largest",
        "uniform/top3",
        "photo_portrait/focus",
        "random_peaky/scales",
        "photo_square/twitter",
    ):
        assert needed in names
    assert sum(len(c["crops"]) for c in stored["search"]) > 300


def _can_run_java() -> bool:
    have = shutil.which("javac") and os.path.exists("/usr/share/java/junit4.jar")
    return bool(have) or (shutil.which("apt-get") is not None and os.geteuid() == 0)


@pytest.mark.skipif(not _can_run_java(), reason="needs javac + junit4, or root to apt-get install them")
def test_java_cropcore_passes_its_junit_tests():
    """Compiles cropcore with plain javac and runs its JUnit tests (golden vectors included)."""
    run = subprocess.run(["bash", str(ANDROID / "run_cropcore_tests.sh")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "OK (" in run.stdout
