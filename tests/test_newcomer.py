"""What a new user meets first, each through the command line in a subprocess, its whole stderr checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import REPO

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "edgecrop", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env or ENV
    )


def err_lines(proc) -> list[str]:
    return proc.stderr.splitlines()


def blob_photo(path: Path, size=(160, 120), mode="RGB", at=(0.7, 0.5)) -> Path:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xx - at[0] * w) ** 2 + (yy - at[1] * h) ** 2) / (2 * (0.1 * w) ** 2))
    rgb = np.stack([blob * 255, blob * 200, np.full_like(blob, 40)], -1).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(path)
    return path


def test_runs_from_the_checkout_without_the_package_data_mapping(tmp_path):
    """A Python started in a clone's root imports the source folder, where edgecrop.models does not exist."""
    if not (REPO / "edgecrop" / "__init__.py").exists():
        pytest.skip("needs the source checkout (these tests run from an installed edgecrop)")
    for name in ("edgecrop", "models", "examples"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), sysconfig.get_paths()["purelib"]])}
    code = "import edgecrop; print(edgecrop.__file__); print(edgecrop.crop('examples/grace_hopper.jpg', '1:1'))"
    # -S: no site hooks, so no editable-install finder maps edgecrop.models for us (as in a plain clone)
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.stderr == "" and proc.returncode == 0
    assert proc.stdout.splitlines()[0] == str(tmp_path / "edgecrop" / "__init__.py")
    assert proc.stdout.splitlines()[1].startswith("CropResult(")
    cli = subprocess.run(
        [sys.executable, "-S", "-m", "edgecrop", "crop", "examples/grace_hopper.jpg", "--aspect", "1:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert cli.stderr == "" and cli.returncode == 0 and "1:1:" in cli.stdout


def _groups(tmp_path: Path, n_a: int, n_b: int) -> tuple[Path, Path]:
    a, b = tmp_path / "A", tmp_path / "B"
    for folder, n, offset in ((a, n_a, 0), (b, n_b, 50)):
        folder.mkdir()
        for i in range(n):
            blob_photo(folder / f"p{i}.png", (64, 64), at=(0.2 + 0.6 * ((i + offset) % 7) / 6, 0.5))
    return a, b


def test_audit_pairs_refuses_groups_too_small_to_mean_anything(tmp_path):
    a, b = _groups(tmp_path, 1, 1)
    proc = run("audit", "pairs", a, b, "--out-dir", tmp_path / "out", "--policy", "saliency")
    assert proc.returncode == 2
    assert err_lines(proc) == [
        "edgecrop: error: group A has 1 photo(s): an audit needs at least 3 per group (20 or more for figures "
        "worth reading)"
    ]
    assert not (tmp_path / "out" / "audit.json").exists()


def test_audit_pairs_on_small_groups_counts_distinct_pairs_and_says_so(tmp_path):
    a, b = _groups(tmp_path, 5, 6)
    out = tmp_path / "out"
    proc = run("audit", "pairs", a, b, "--out-dir", out, "--pairs", "200", "--policy", "saliency")
    assert proc.returncode == 0, proc.stderr
    warning = (
        "edgecrop: warning: Few photos: group A has 5, group B 6; with fewer than 20 per group these figures say "
        "little about the model (see how wide the intervals are)."
    )
    assert [line for line in err_lines(proc) if not line.startswith("edgecrop: wrote ")] == [warning]
    result = json.loads((out / "audit.json").read_text())
    assert (result["pairs"], result["photos_a"], result["photos_b"]) == (30, 5, 6)  # every pair once, not 200
    low, high = result["policies"]["saliency"]["left_ci"]
    assert high - low > 0.1  # photos resampled: 5 and 6 photos cannot give a tight interval
    assert "30 distinct pairs of 5 photos of group A and 6 of group B" in (out / "audit.md").read_text()


def test_a_closed_pipe_is_a_quiet_end(sample_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecrop", "crop", *[str(sample_path)] * 40, "--json", "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert json.loads(first)["image"] == str(sample_path)
    assert stderr == ""


def test_outputs_of_an_earlier_run_in_the_same_folder_are_not_inputs(tmp_path, sample_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(sample_path, folder / "grace_hopper.jpg")
    first = run("crop", folder, "--out-dir", folder)
    assert first.returncode == 0 and err_lines(first) == [f"edgecrop: wrote 4 files to {folder}"]
    again = run("crop", folder, "--out-dir", folder, "--overwrite")
    assert again.returncode == 0
    assert err_lines(again) == [
        f"edgecrop: note: {folder}: skipped 4 earlier outputs of edgecrop (grace_hopper_16x9.jpg, "
        "grace_hopper_1x1.jpg, grace_hopper_4x5.jpg, ...)",
        f"edgecrop: wrote 4 files to {folder}",
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        "grace_hopper.jpg",
        "grace_hopper_16x9.jpg",
        "grace_hopper_1x1.jpg",
        "grace_hopper_4x5.jpg",
        "grace_hopper_9x16.jpg",
    ]


def test_a_focus_outside_one_photo_is_that_photos_error(tmp_path, sample_path):
    small = blob_photo(tmp_path / "small.png", (64, 48))
    proc = run("crop", small, sample_path, "--focus", "300,300", "--aspect", "1:1")
    assert proc.returncode == 1
    assert err_lines(proc) == [f"edgecrop: error: {small}: focus (300, 300) is outside the 64x48 photo"]
    assert proc.stdout.startswith(f"{sample_path} (512x600)")


def test_greyscale_and_transparency_are_kept_and_outputs_are_named(tmp_path):
    grey = blob_photo(tmp_path / "tiny16.jpg", mode="L")
    rgba_img = Image.open(blob_photo(tmp_path / "rgba.png")).convert("RGBA")
    rgba_img.putalpha(Image.new("L", rgba_img.size, 128))
    rgba_img.save(tmp_path / "rgba.png")
    clash = blob_photo(tmp_path / "tiny16.png")
    out = tmp_path / "out"
    proc = run("crop", grey, tmp_path / "rgba.png", clash, "--out-dir", out, "--aspect", "1:1", "--json")
    assert proc.returncode == 0
    assert err_lines(proc) == [
        f"edgecrop: note: {clash}: its outputs are named tiny16-1_* (another input has its name)",
        f"edgecrop: wrote 3 files to {out}",
    ]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    files = [Path(r["crops"][0]["file"]) for r in records]
    assert files == [out / "tiny16_1x1.jpg", out / "rgba_1x1.png", out / "tiny16-1_1x1.png"]
    assert [Image.open(f).mode for f in files] == ["L", "RGBA", "RGB"]
    assert Image.open(files[1]).getextrema()[3] == (128, 128)  # the alpha itself, not white behind it


def test_top_k_shortfalls_are_one_summary_line(tmp_path):
    photos = [blob_photo(tmp_path / f"p{i}.png", (64, 64)) for i in range(6)]
    proc = run("crop", *photos, "--top-k", "3", "--aspect", "16:9", "--aspect", "1:1")
    assert proc.returncode == 0
    lines = err_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("edgecrop: note: fewer than 3 distinct crops for ")
    assert "on 6 photos" in lines[0]


def test_missing_matplotlib_is_said_not_swallowed(tmp_path):
    blocker = tmp_path / "block"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    a, b = _groups(tmp_path, 3, 3)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    out = tmp_path / "out"
    proc = run("audit", "pairs", a, b, "--out-dir", out, "--policy", "centre", env=env)
    assert proc.returncode == 0
    notes = [line for line in err_lines(proc) if not line.startswith(("edgecrop: warning: Few", "edgecrop: wrote"))]
    assert notes == ["edgecrop: note: no audit.png: the plot needs matplotlib (pip install matplotlib)"]
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.md"]
    assert "PNG" not in run("bench", "--help").stdout  # it writes JSON and Markdown, and says no more


def test_smaller_things(tmp_path, sample_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(sample_path, folder / "a.jpg")
    out = tmp_path / "out"
    proc = run("crop", folder, "--out-dir", out, "--aspect", "1:1")
    assert err_lines(proc) == [
        f"edgecrop: note: {folder}: skipped 1 subfolder (folders are not searched)",
        f"edgecrop: wrote 1 file to {out}",
    ]
    plain = run("crop", folder / "a.jpg", "--out-dir", tmp_path / "h1", "--heatmap", "--aspect", "1:1")
    focused = run(
        "crop", folder / "a.jpg", "--out-dir", tmp_path / "h2", "--heatmap", "--aspect", "1:1", "--focus", "100,500"
    )
    assert plain.returncode == focused.returncode == 0
    h1 = np.asarray(Image.open(tmp_path / "h1" / "a_heatmap.png"), np.int16)
    h2 = np.asarray(Image.open(tmp_path / "h2" / "a_heatmap.png"), np.int16)
    ring = np.abs(h2 - h1).sum(-1) > 0
    ys, xs = np.nonzero(ring[300:, :300])  # the focus is marked where it is (the legend is top-left)
    assert len(xs) and abs(xs.mean() - 100) < 15 and abs(ys.mean() + 300 - 500) < 15
    if shutil.which("git") and (REPO / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "crops/grace_hopper_1x1.jpg"], cwd=REPO)
        assert ignored.returncode == 0  # the README's first command leaves nothing untracked


@pytest.mark.parametrize("args", [["info", "--json"], ["info"]])
def test_info_into_a_pipe_closed_before_it_writes(args):
    proc = subprocess.Popen([sys.executable, "-m", "edgecrop", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # every write meets a closed pipe, however large or small the output
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == b""


def test_a_symlink_loop_is_that_inputs_one_line(tmp_path, sample_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    out = tmp_path / "out"
    proc = run("crop", tmp_path / "loop", sample_path, "--aspect", "1:1", "--out-dir", out)
    assert proc.returncode == 1
    assert err_lines(proc) == [
        f"edgecrop: error: {tmp_path / 'loop'}: a symbolic link that leads nowhere (a loop or a missing target)",
        f"edgecrop: wrote 1 file to {out}",
    ]


def test_tiff_crops_decode_at_their_size_with_the_boxes_pixels(tmp_path, sample_path):
    """A TIFF's own layout tags (size, strips) once went into every crop as EXIF: crops declared 400x300."""
    source = tmp_path / "p.tif"
    Image.open(sample_path).convert("RGB").resize((400, 300)).save(source)
    out = tmp_path / "out"
    proc = run("crop", source, "--out-dir", out, "--aspect", "1:1", "--aspect", "16:9", "--json")
    assert proc.returncode == 0 and err_lines(proc) == [f"edgecrop: wrote 2 files to {out}"]
    original = np.asarray(Image.open(source))
    for c in json.loads(proc.stdout)["crops"]:
        crop = Image.open(c["file"])
        assert crop.size == (c["width"], c["height"])
        box = original[c["y"] : c["y"] + c["height"], c["x"] : c["x"] + c["width"]]
        assert np.array_equal(np.asarray(crop), box)


def test_a_crop_that_cannot_be_written_whole_does_not_exist(tmp_path, sample_path):
    """Out of room (a file-size limit stands in for a full disk): one line, and no file keeps a final name."""
    out = tmp_path / "out"
    out.mkdir()
    command = f"ulimit -f 20; exec {sys.executable} -m edgecrop crop {sample_path} --out-dir {out} --aspect 1:1"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 1
    assert err_lines(proc) == [f"edgecrop: error: {out / 'grace_hopper_1x1.jpg'}: cannot write it (File too large)"]
    assert list(out.iterdir()) == []
