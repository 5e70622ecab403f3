"""What a new user and an attacker meet: every mistake is one line on stderr, never a traceback or a crash;
outputs are written as a user expects. The CLI runs in a subprocess and its whole stderr is compared."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from edgecrop import Cropper, ModelError, OutputError, crop
from edgecrop.apps.cli import expand_inputs
from edgecrop.apps.output import OutputWriter
from edgecrop.modelfile.registry import resolve_model

REPO = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, env=None, umask=None, prefix=()):
    """``edgecrop ARGS`` in a fresh process (or ``python -c PREFIX... ARGS``)."""
    command = [sys.executable, *prefix] if prefix else [sys.executable, "-m", "edgecrop"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        umask=-1 if umask is None else umask,  # set by the C fork path: Python code in a forked child can hang
    )


def one_error_line(proc, *words) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecrop: error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ---- 2. a read-only home and site-packages -----------------------------------------------------------

NO_CACHE_LOCATION = """
import numba.core.caching as c
c.CacheImpl._locator_classes = []   # as for a service account: nowhere Numba may write
import sys
from edgecrop.apps.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_import_and_crop_without_a_writable_cache(sample_path):
    args = ("--aspect", "1:1", "--top-k", "2", "--min-scale", "0.5")  # top-k: the Numba kernels
    proc = run("crop", sample_path, "--json", *args, prefix=("-c", NO_CACHE_LOCATION))
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["crops"][0]["width"] == 512


# ---- 3. a decoder that raises anything, an unreadable folder -------------------------------------------

BROKEN_PLUGIN = """
from PIL import Image, ImageFile
class Broken(ImageFile.ImageFile):
    format = "BROKEN"
    def _open(self):
        self._size, self._mode = (40, 30), "RGB"
    def load(self):
        raise TypeError("Missing dimensions")   # what a corrupt TIFF or AVIF does
Image.register_open("BROKEN", Broken, lambda prefix: prefix.startswith(b"BROKEN"))
import sys
from edgecrop.apps.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_any_decoder_exception_is_that_images_error(sample_path, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"BROKEN and then nothing")
    proc = run("crop", bad, sample_path, "--json", prefix=("-c", BROKEN_PLUGIN))
    assert proc.returncode == 1
    assert proc.stderr == f"edgecrop: error: {bad}: cannot decode image (TypeError: Missing dimensions)\n"
    assert json.loads(proc.stdout)["image"] == str(sample_path)  # the batch went on


def test_unreadable_folder_is_one_item_error(tmp_path, monkeypatch, sample_path):
    locked = tmp_path / "locked"
    locked.mkdir()

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refuse)  # root reads every folder: simulate the user who cannot
    found = expand_inputs([str(locked), str(sample_path)])
    assert found.files == [sample_path] and found.problems == [f"{locked}: cannot read the folder (Permission denied)"]


# ---- 4. small files that declare huge images -------------------------------------------------------------


def test_huge_declared_image_decodes_only_what_outputs_need(tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (10000, 10000), (90, 120, 200)).save(big, quality=50)  # 100 MP, a few hundred KB
    proc = run("crop", big, "--out-dir", tmp_path / "out", "--heatmap", "--aspect", "1:1", "--max-memory", "1000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"edgecrop: wrote 2 files to {tmp_path / 'out'}\n"  # no DecompressionBombWarning
    assert Image.open(tmp_path / "out" / "big_heatmap.png").size == (1600, 1600)
    assert Image.open(tmp_path / "out" / "big_1x1.jpg").size == (10000, 10000)


@pytest.mark.parametrize("size", [(10000, 1), (1, 10000), (1, 1), (3, 2)])
def test_extreme_shapes_get_crops_and_a_heatmap(tmp_path, size):
    photo = tmp_path / "odd.png"
    Image.new("RGB", size, (200, 40, 40)).save(photo)
    out = tmp_path / "out"
    proc = run("crop", photo, "--out-dir", out, "--heatmap", "--aspect", "16:9", "--aspect", "1:1", "--top-k", "2")
    *notes, last = proc.stderr.splitlines()
    assert proc.returncode == 0 and last.startswith("edgecrop: wrote ") and last.endswith(f"to {out}"), proc.stderr
    assert all(n.startswith("edgecrop: note: ") for n in notes), proc.stderr  # top-k says why it found fewer
    assert Image.open(out / "odd_heatmap.png").size[0] >= 1


# ---- 5. and 6. options and errors: one line, exit 2 -----------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threads", "0"], ["num_threads"]),
        (["--threads", "-1"], ["num_threads"]),
        (["--focus", "nan,10"], ["--focus"]),
        (["--focus", "5,10@-2"], ["--focus"]),
        (["--area-cost", "-1"], ["area_cost"]),
        (["--area-cost", "inf"], ["area_cost"]),
        (["--min-scale", "0"], ["min_scale"]),
        (["--top-k", "1000000"], ["top_k"]),
        (["--aspect", "1" * 400 + ":9"], ["not an aspect ratio"]),
        (["--aspect", "16:0"], ["aspect"]),
        (["--policy", "center", "--focus", "5,10"], ["centre policy"]),
        (["--policy", "twitter", "--top-k", "3"], ["saliency policy only"]),
        (["--model", "no_such_model"], ["unknown model"]),
        (["--delegate", "edgetpu"], ["libedgetpu"]),
        (["--delegate", "libm.so.6"], ["not a TFLite delegate library"]),
        (["--delegate-option", "novalue"], ["KEY=VALUE"]),
    ],
)
def test_bad_options_are_one_line(sample_path, args, words):
    proc = run("crop", sample_path, "--json", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    one_error_line(proc, *words)


def _with_raw_card(text: bytes) -> bytes:
    """The bundled model with ``text`` as its card, whatever it is."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(resolve_model("default").read_bytes()), 0)
    buffer = schema.BufferT()
    buffer.data = list(text)
    model.buffers.append(buffer)
    meta = next(m for m in model.metadata if m.name == b"edgecrop_model_card")
    meta.buffer = len(model.buffers) - 1
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(
    "card, words",
    [
        (b"[]", ["must be a JSON object"]),
        (b"null", ["must be a JSON object"]),
        (b'"card"', ["must be a JSON object"]),
        (b'{"name": "m", "input": {"mean": [1]}}', ["input.mean"]),
        (b'{"name": "m", "metrics": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}", ["nested too deeply"]),
        (b'{"name": "m", "output": {"temperature": NaN}}', ["not valid JSON"]),
        (b"\xff\xfe", ["not valid JSON"]),
    ],
)
def test_broken_model_cards_are_one_line(tmp_path, sample_path, card, words):
    model = tmp_path / "m.tflite"
    model.write_bytes(_with_raw_card(card))
    proc = run("crop", sample_path, "--model", model)
    assert proc.returncode == 2
    one_error_line(proc, str(model), "model card", *words)


def test_crafted_model_is_one_line_in_the_cli(tmp_path, sample_path):
    data = bytearray(resolve_model("default").read_bytes())
    data[20] = data[22] = 0  # the subgraph vector gone (crashed Interpreter() before)
    bad = tmp_path / "crafted.tflite"
    bad.write_bytes(bytes(data))
    proc = run("crop", sample_path, "--model", bad)
    assert proc.returncode == 2
    one_error_line(proc, str(bad), "unsafe or corrupt TFLite model")


def test_model_that_fails_at_inference_is_a_model_error(sample_path, monkeypatch):
    with Cropper() as c:

        def fail():
            raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.")

        monkeypatch.setattr(c.model._interpreter, "invoke", fail)
        with pytest.raises(ModelError, match="inference failed"):
            c.crop(sample_path)


def test_out_dir_that_is_a_file_or_cannot_be_made(sample_path, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    proc = run("crop", sample_path, "--out-dir", a_file)
    assert proc.returncode == 2
    one_error_line(proc, f"{a_file}: not a folder")
    proc = run("crop", sample_path, "--out-dir", a_file / "sub")
    assert proc.returncode == 2
    one_error_line(proc, f"{a_file / 'sub'}: cannot create the folder")


def test_full_disk_names_the_file(tmp_path, photo, monkeypatch):
    writer = OutputWriter([photo], tmp_path, overwrite=False)

    def no_space(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=f"{tmp_path / 'photo_x.npy'}: cannot write it .No space left on device."):
        writer._write(writer.target(photo, "x", ".npy"), no_space)
    assert list(tmp_path.iterdir()) == [photo]  # nothing half-written left behind


def test_a_string_is_one_ratio(sample_path):
    assert [c.aspect.label for c in crop(sample_path, "16:9").crops] == ["16:9"]


# ---- 7. exactly one line: no runtime chatter, no __del__ traceback ------------------------------------------


def test_no_runtime_chatter_on_stderr(sample_path):
    proc = run("crop", sample_path, "--json")
    assert proc.returncode == 0 and proc.stderr == ""


def test_missing_delegate_is_exactly_one_line(sample_path):
    proc = run("crop", sample_path, "--delegate", "edgetpu")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


# ---- 8. Ctrl-C and SIGTERM ------------------------------------------------------------------------------------


def _batch(tmp_path: Path, n: int = 12) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(folder / f"{k:02d}.png")
    return folder


# a background job of a non-interactive shell inherits SIGINT ignored: the child restores Python's handler itself
# (not a preexec_fn: Python code between fork and exec can hang a child of a threaded process, as under qemu)
WITH_SIGINT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from edgecrop.apps.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "sig, code, message", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_interrupted_batch_cleans_up(tmp_path, sig, code, message):
    folder, out = _batch(tmp_path), tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_SIGINT, "crop", folder, "--out-dir", out, "--heatmap"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and any(out.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.splitlines()[-1] == f"edgecrop: {message}" and "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no hidden temporary files


# ---- 9. the converter without TensorFlow ---------------------------------------------------------------------

NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None   # as if not installed
from converters.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_convert_without_tensorflow_names_the_extra(tmp_path):
    proc = run("fastgaze", tmp_path / "x.vxm", "-o", tmp_path / "x.tflite", prefix=("-c", NO_TENSORFLOW), cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr == 'edgecrop-convert: error: needs tensorflow: pip install "edgecrop[convert]"\n'


# ---- 10.-12. outputs as a user expects -----------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_follow_the_umask(sample_path, tmp_path, umask, mode):
    out = tmp_path / "out"
    proc = run("crop", sample_path, "--out-dir", out, "--aspect", "1:1", "--heatmap", umask=umask)
    assert proc.returncode == 0, proc.stderr
    files = list(out.iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == mode for f in files)


def test_crops_keep_icc_profile_and_exif(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways
    exif[0x010F] = "Camera maker"
    src = tmp_path / "cam.jpg"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(src, quality=90, icc_profile=icc, exif=exif.tobytes())
    for ext in ("jpg", "png", "webp"):
        photo = tmp_path / f"cam_{ext}.{ext}"
        if ext == "jpg":
            photo = src
        else:
            Image.open(src).save(photo, icc_profile=icc, exif=exif.tobytes())
        out = tmp_path / f"out_{ext}"
        proc = run("crop", photo, "--out-dir", out, "--aspect", "1:1")
        assert proc.returncode == 0, proc.stderr
        (cropped,) = out.iterdir()
        with Image.open(cropped) as im:
            assert im.info.get("icc_profile") == icc, ext
            kept = im.getexif()
            assert kept[0x010F] == "Camera maker" and kept.get(0x0112, 1) == 1, ext  # pixels are upright
            assert im.size == (200, 200)  # the upright photo is 200 x 300


def test_two_writers_never_both_write_one_name(tmp_path, photo):
    a = OutputWriter([photo], tmp_path, overwrite=False)
    b = OutputWriter([photo], tmp_path, overwrite=False)
    dest = a.target(photo, "1x1", ".npy")  # both checked the name while it was free...
    b._write(b.target(photo, "1x1", ".npy"), lambda f: np.save(f, np.ones(3)))  # ...b wrote first
    with pytest.raises(OutputError, match="already exists"):
        a._write(dest, lambda f: np.save(f, np.zeros(3)))
    assert np.load(dest).tolist() == [1, 1, 1]  # b's file, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---- 13. heatmaps: one colour per ratio, alternatives dashed, labels readable at any size -----------------


def test_heatmap_colours_by_ratio_and_legend_scales(tmp_path):
    from edgecrop.apps.render import _legend, ratio_colours
    from edgecrop.search import SearchOptions

    with Cropper() as c:
        r = c.crop(REPO / "examples" / "grace_hopper.jpg", ["16:9", "9:16"], SearchOptions(top_k=3, nms_iou=0.2))
    colours = ratio_colours(r.crops)
    assert list(colours) == ["16:9", "9:16"] and len(set(colours.values())) == 2
    sizes = []
    for side in (300, 4000):
        canvas = Image.new("RGB", (side, side))
        from PIL import ImageDraw

        _legend(ImageDraw.Draw(canvas), canvas.size, colours, dashed=True, focus=False)
        ys = np.flatnonzero(np.asarray(canvas).any(axis=(1, 2)))
        sizes.append(ys.max() - ys.min())
    assert sizes[1] > 8 * sizes[0]  # the legend grows with the picture: readable on 12 MP too


# ---- 14. top-k says why it found fewer; rank in the JSON -----------------------------------------------------


def test_top_k_explains_fewer_crops(sample_path):
    proc = run("crop", sample_path, "--json", "--aspect", "4:5", "--top-k", "3")
    assert proc.returncode == 0
    crops = json.loads(proc.stdout)["crops"]
    assert [c["rank"] for c in crops] == list(range(len(crops)))
    if len(crops) < 3:
        assert proc.stderr == (
            "edgecrop: note: fewer than 3 distinct crops for 4:5 on 1 photo: every other window overlaps a chosen "
            "one by 0.5 IoU or more\n"
        )
    else:
        assert proc.stderr == ""


# ---- 16. info is readable; a first run says what it wrote ---------------------------------------------------


def test_info_is_readable_and_runs_say_what_they_wrote(sample_path, tmp_path):
    info = run("info")
    assert info.returncode == 0 and max(len(line) for line in info.stdout.splitlines()) < 200
    proc = run("crop", sample_path, "--out-dir", tmp_path, "--aspect", "1:1")
    assert proc.stderr == f"edgecrop: wrote 1 file to {tmp_path}\n"


def test_images_with_icc_in_memory_sources_are_fine():
    buf = io.BytesIO()
    Image.new("RGB", (50, 40)).save(buf, "PNG")
    assert len(crop(buf.getvalue(), ["1:1"]).crops) == 1
