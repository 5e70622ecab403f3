"""`edgecrop audit`: the statistics find a difference that is there, report parity when there is none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecrop import AspectRatio, Cropper, Policy
from edgecrop.apps.audit import (
    PairOutcome,
    face_outcomes,
    faces_markdown,
    join,
    kept,
    pair_outcomes,
    read_faces,
    summarise_faces,
    summarise_pairs,
)
from edgecrop.geometry import Box
from edgecrop.search import Crop


def _group(folder: Path, n: int, salient: bool, seed: int) -> list[Path]:
    """Photos of one synthetic group: a bright, high-contrast object on grey, or grey alone."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        img = np.full((200, 200, 3), 120, np.uint8) + rng.integers(0, 6, (200, 200, 3), dtype=np.uint8)
        if salient:
            yy, xx = np.mgrid[0:200, 0:200]
            cx, cy = rng.integers(60, 140, 2)
            blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < 30**2
            img[blob] = (250, 30, 30)
            img[blob & ((xx + yy) % 12 < 6)] = (255, 255, 255)
        path = folder / f"{k}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def test_kept_is_the_photo_with_more_area():
    def c(x, y, w, h):
        return Crop(AspectRatio(1, 1), Box(x, y, w, h), 0.0, 0.0, 0.0, 0.0)

    assert kept(c(0, 0, 512, 512), "side") == 0
    assert kept(c(400, 0, 512, 512), "side") == 1
    assert kept(c(256, 0, 512, 512), "side") is None
    assert kept(c(0, 300, 512, 512), "stacked") == 1
    assert join(Image.new("RGB", (512, 512)), Image.new("RGB", (512, 512)), "stacked").size == (512, 1024)


def test_a_real_difference_is_found(tmp_path):
    a = _group(tmp_path / "a", 6, salient=True, seed=1)
    b = _group(tmp_path / "b", 6, salient=False, seed=2)
    with Cropper() as cropper:
        outcomes = pair_outcomes(cropper, a, b, 12, 0, AspectRatio(1, 1), [Policy.SALIENCY, Policy.CENTRE])
    r = summarise_pairs(outcomes)["policies"]
    assert r["saliency"]["group_a_rate"] > 0.9 and r["saliency"]["group_a_ci"][0] > 0.5  # not parity
    assert r["saliency"]["swap_consistency"] > 0.9  # the same photo whichever side it is on
    assert r["centre"]["ties"] == 1.0 and r["centre"]["group_a_rate"] is None  # the centre crop splits the join


def test_parity_when_there_is_no_difference():
    rng = np.random.default_rng(0)
    outcomes = []
    for k in range(200):  # a fair coin per crop: no group effect, no position effect
        keep = {"saliency": {lay: [str(rng.choice(["a", "b"])) for _ in range(2)] for lay in ("side", "stacked")}}
        outcomes.append(PairOutcome(f"a{k}", f"b{k}", keep))
    r = summarise_pairs(outcomes)["policies"]["saliency"]
    lo, hi = r["group_a_ci"]
    assert lo < 0.5 < hi and abs(r["disparity"]) < 0.06
    assert r["left_ci"][0] < 0.5 < r["left_ci"][1] and r["top_ci"][0] < 0.5 < r["top_ci"][1]
    assert 0.35 < r["swap_consistency"] < 0.65  # a coin agrees with itself half of the time


def test_position_bias_shows_in_position_rates():
    outcomes = [  # always the left / top photo, whoever it is: swap consistency 0, left and top rates 1
        PairOutcome(f"a{k}", f"b{k}", {"saliency": {"side": ["a", "b"], "stacked": ["a", "b"]}}) for k in range(50)
    ]
    r = summarise_pairs(outcomes)["policies"]["saliency"]
    assert r["left_rate"] == r["top_rate"] == 1.0 and r["swap_consistency"] == 0.0 and r["group_a_rate"] == 0.5


def test_faces_kept_whole_against_the_centre(tmp_path):
    Image.new("RGB", (300, 100), (128, 128, 128)).save(tmp_path / "p.png")
    faces = {"p.png": {"faces": [[140, 40, 20, 20, 1, 0, 0, 0], [0, 40, 20, 20, 1, 0, 0, 0], [5, 5, 9, 9, 0, 1, 0, 0]]}}
    (tmp_path / "faces.json").write_text(json.dumps(faces))
    annotations = read_faces(tmp_path / "faces.json")
    with Cropper() as cropper:
        rows = face_outcomes(cropper, annotations, tmp_path, [AspectRatio(1, 1)], [Policy.CENTRE])
    assert len(rows) == 2  # the profile face is not counted
    result = summarise_faces(rows, [AspectRatio(1, 1)], [Policy.CENTRE])
    assert result["kept_whole"]["centre"]["1:1"]["all"] == 0.5  # the centre face, not the one at the edge
    report = faces_markdown(result, "edgecrop audit faces ann.json")
    assert "faces whole" in report and "group A" not in report  # its own reading, not the pairs audit's


def test_audit_cli_writes_reports_and_never_overwrites(tmp_path):
    _group(tmp_path / "a", 3, salient=True, seed=3)
    _group(tmp_path / "b", 3, salient=False, seed=4)
    args = [sys.executable, "-m", "edgecrop", "audit", "pairs", tmp_path / "a", tmp_path / "b"]
    args += ["--pairs", "4", "--out-dir", tmp_path / "out", "--policy", "saliency", "--policy", "twitter"]
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert data["pairs"] == 4 and set(data["policies"]) == {"saliency", "twitter"}
    for r in data["policies"].values():
        assert {"group_a_rate", "group_a_ci", "swap_consistency", "left_rate", "top_rate"} <= set(r)
    assert (tmp_path / "out" / "audit.md").read_text().startswith("# edgecrop audit")
    again = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert (
        again.stderr
        == f"edgecrop: error: {tmp_path / 'out' / 'audit.json'}: already exists (use --overwrite to replace it)\n"
    )


@pytest.mark.shared
def test_audit_faces_on_eyecrowd_layout(shared, tmp_path):
    from converters.data import load_splits

    raw = json.loads((shared / "data" / "eyecrowd" / "fixations.json").read_text())
    names = load_splits()["eyecrowd_val"][:3]
    (tmp_path / "ann.json").write_text(json.dumps({n: raw[n] for n in names}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecrop",
            "audit",
            "faces",
            str(tmp_path / "ann.json"),
            "--images",
            str(shared / "data" / "eyecrowd" / "images"),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert data["faces"] > 10 and set(data["kept_whole"]) == {"saliency", "twitter", "centre"}
