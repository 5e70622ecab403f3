"""The command line end to end: JSON schema, outputs, exit codes, never overwriting."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgecrop import Cropper
from edgecrop.apps.cli import main, parse_focus
from edgecrop.search import centred_window, most_salient_point


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgecrop", *map(str, args)], capture_output=True, text=True)


def test_crop_json_schema(sample_path, photo, capsys):
    assert main(["crop", str(sample_path), str(photo), "--json", "--aspect", "16:9", "--aspect", "1:1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, path, size in zip(lines, [sample_path, photo], [(512, 600), (200, 120)]):
        obj = json.loads(line)
        assert set(obj) == {"image", "width", "height", "crops"}
        assert obj["image"] == str(path) and (obj["width"], obj["height"]) == size
        assert [c["aspect"] for c in obj["crops"]] == ["16:9", "1:1"]
        for c in obj["crops"]:
            assert set(c) == {"aspect", "x", "y", "width", "height", "score", "rank"}
            assert all(isinstance(c[k], int) for k in ("x", "y", "width", "height"))


def test_bad_file_reported_rest_continue(sample_path, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    code = main(["crop", str(bad), str(sample_path), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg" in captured.err
    assert len(captured.out.strip().splitlines()) == 1


def test_out_dir_writes_crops_and_heatmap(sample_path, tmp_path):
    out = tmp_path / "out"
    assert main(["crop", str(sample_path), "--out-dir", str(out), "--heatmap", "--aspect", "1:1"]) == 0
    crop = Image.open(out / "grace_hopper_1x1.jpg")
    assert crop.size == (512, 512) and crop.format == "JPEG"
    assert Image.open(out / "grace_hopper_heatmap.png").size == (512, 600)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # a second run must not overwrite, unless asked
    before = (out / "grace_hopper_1x1.jpg").stat().st_mtime_ns
    assert main(["crop", str(sample_path), "--out-dir", str(out), "--aspect", "1:1"]) == 1
    assert (out / "grace_hopper_1x1.jpg").stat().st_mtime_ns == before
    assert main(["crop", str(sample_path), "--out-dir", str(out), "--aspect", "1:1", "--overwrite"]) == 0


def test_never_writes_over_an_input(tmp_path, photo, capsys):
    victim = tmp_path / "photo_1x1.jpg"
    Image.new("RGB", (30, 30)).save(victim)
    original = victim.read_bytes()
    code = main(["crop", str(photo), str(victim), "--out-dir", str(tmp_path), "--aspect", "1:1", "--overwrite"])
    assert code == 1
    assert victim.read_bytes() == original
    assert "refusing to overwrite an input" in capsys.readouterr().err


def test_same_names_in_one_batch_kept_apart(tmp_path, photo):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d in (a, b):
        Image.open(photo).save(d / "x.png")
    out = tmp_path / "out"
    assert main(["crop", str(a), str(b), "--out-dir", str(out), "--aspect", "1:1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x-1_1x1.png", "x_1x1.png"]


def test_saliency_npy_and_png(sample_path, tmp_path):
    assert main(["saliency", str(sample_path), "--out-dir", str(tmp_path), "--format", "npy"]) == 0
    m = np.load(tmp_path / "grace_hopper.npy")
    assert m.dtype == np.float32 and m.ndim == 2 and m.sum() == pytest.approx(1, abs=1e-3)
    assert main(["saliency", str(sample_path), "--out-dir", str(tmp_path), "--format", "png"]) == 0
    assert Image.open(tmp_path / "grace_hopper_heatmap.png").mode == "RGB"


def test_focus_and_policy_options(photo, capsys):
    assert main(["crop", str(photo), "--json", "--aspect", "1:1", "--focus", "5,60@10"]) == 0
    c = json.loads(capsys.readouterr().out)["crops"][0]
    assert c["x"] <= 5 < c["x"] + c["width"]
    assert main(["crop", str(photo), "--json", "--aspect", "1:1", "--policy", "twitter"]) == 0
    twitter = json.loads(capsys.readouterr().out)["crops"][0]
    with Cropper() as cropper:  # Twitter's rule: the largest window centred on the map's peak
        sal = cropper.saliency(photo)
    box = centred_window(*most_salient_point(sal, 200, 120), 200, 120, 1.0)
    assert (twitter["x"], twitter["y"], twitter["width"], twitter["height"]) == box.as_tuple()
    assert twitter["x"] > 0  # the blob is right of centre: the window moved off the centre
    assert parse_focus("1,2,3,4@0.5").weight == 0.5
    with pytest.raises(ValueError):
        parse_focus("1,2,3")


def test_usage_errors_exit_2(sample_path, capsys):
    assert main(["crop", str(sample_path), "--aspect", "16:0"]) == 2
    assert main(["crop", str(sample_path), "--model", "nonexistent_model"]) == 2
    assert main(["crop", str(sample_path), "--delegate", "edgetpu"]) == 2
    err = capsys.readouterr().err
    assert "aspect" in err and "unknown model" in err and "libedgetpu" in err
    assert "Traceback" not in err


def test_module_entry_point_and_info(sample_path):
    proc = run("crop", sample_path, "--json", "--aspect", "4:5")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["crops"][0]["aspect"] == "4:5"
    info = run("info", "--json")
    assert info.returncode == 0
    data = json.loads(info.stdout)
    assert data["backend"]["name"] and data["models"]
    assert all("card" in m for m in data["models"])
    missing = run("crop", "/nonexistent/photo.jpg", "--json")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_import_never_loads_tensorflow():
    code = "import sys, edgecrop, edgecrop.apps.cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_info_shows_the_default_models_crop_scores_with_their_interval():
    proc = run("info")
    assert proc.returncode == 0 and proc.stderr == ""
    osie = next(line for line in proc.stdout.splitlines() if "osie_val: NSS" in line and "interval" in line)
    assert "of the way from the centre crop to the best (95% interval +" in osie
