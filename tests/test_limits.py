"""What bounds a hostile input or a rough environment meets (issue 27): signals at start-up, model files that
are huge or noisy, images that cost more memory than they look, options that ask for too much. The command
line runs in a subprocess and its whole stderr is compared."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_hardening import one_error_line, run

# a background job of a non-interactive shell inherits SIGINT ignored (as pytest may run): the child puts
# Python's own handler back first, as an interactive `edgecrop` has it, then starts as `python -m edgecrop`
WITH_SIGINT = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv[0] = "edgecrop"
runpy.run_module("edgecrop", run_name="__main__")
"""


def _handlers_set(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (Linux: the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc (Linux)")
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_start_up_is_one_line(sample_path, sig, code, word):
    """Sent as soon as the command handles signals: while NumPy, Pillow and the runtime still import."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_SIGINT, "crop", sample_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 30
    while not _handlers_set(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err, out) == (code, f"edgecrop: {word}\n", "")


# a signal inside a C extension's initialisation surfaces as an ImportError ("no TFLite runtime found"): here
# the runtime's import is made to receive the signal and fail that way, as it does when the timing is unlucky
SIGNAL_IN_RUNTIME_IMPORT = """
import builtins, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in WITH_SIGINT
real_import = builtins.__import__
def hooked(name, *args, **kwargs):
    if name.startswith("ai_edge_litert"):
        try:
            os.kill(os.getpid(), int(sys.argv[1]))
            time.sleep(5)
        except BaseException as exc:
            raise ImportError("initialization failed") from exc
    return real_import(name, *args, **kwargs)
builtins.__import__ = hooked
from edgecrop.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_that_breaks_the_runtime_import_is_still_the_signal(sample_path, sig, code, word):
    proc = run(int(sig), "crop", sample_path, prefix=("-c", SIGNAL_IN_RUNTIME_IMPORT))
    assert (proc.returncode, proc.stderr) == (code, f"edgecrop: {word}\n")


# a runtime that, like LiteRT refusing some models, writes ERROR lines to file descriptor 2 and raises a
# RuntimeError of many lines
NOISY_RUNTIME = """
import os, sys
import edgecrop._backend as backend
class Noisy:
    def __init__(self, **kwargs):
        os.write(2, b"ERROR: tensor 7 has a bad type\\nERROR: Node number 3 (ADD) failed to prepare.\\n" * 5)
        raise RuntimeError("Failed to prepare.\\nNode number 3 (ADD) failed to prepare.\\n" * 3)
backend.get_backend = lambda: backend.Backend("noisy", "1", Noisy, None)
from edgecrop.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_runtime_refusal_of_many_lines_is_one_line(sample_path):
    proc = run("crop", sample_path, prefix=("-c", NOISY_RUNTIME))
    line = one_error_line(proc, "the TFLite runtime cannot load it", "Node number 3 (ADD) failed to prepare")
    assert proc.returncode == 2 and len(line) < 400


def test_numba_never_caches_into_the_package_folder(sample_path, tmp_path):
    import edgecrop

    package = Path(edgecrop.__file__).parent
    before = {p: p.stat().st_mtime_ns for p in package.rglob("*.nbi")}
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [sys.executable, "-m", "edgecrop", "crop", sample_path, "--aspect", "16:9", "--top-k", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert {p: p.stat().st_mtime_ns for p in package.rglob("*.nbi")} == before
    assert list((tmp_path / "cache" / "edgecrop" / "numba").rglob("*.nbi"))  # cached where the user's caches are


@pytest.mark.parametrize(
    "text, words",
    [
        ("[1, 2]", ["expected an object of photo names, not list"]),
        ('{"a.jpg": null}', ["'a.jpg'", "expected"]),
        ('{"a.jpg": {"faces": [[1, 2, null, 4, 1]]}}', ["a face is [left, top, width, height, frontal]"]),
        ('{"a.jpg": {"faces": [[1, 2, 3]]}}', ["a face is"]),
        ('{"a.jpg": {"faces": "x"}}', ["expected"]),
        ('{"a.jpg": {"faces": [[1, 2, 1e999, 4, 1]]}}', ["a face is"]),
        ('{"../secret.jpg": {"faces": []}}', ["is not a photo's file name"]),
        ("[" * 100_000 + "]" * 100_000, ["cannot read the annotations (RecursionError"]),
        ("{not json", ["cannot read the annotations (JSONDecodeError"]),
    ],
)
def test_malformed_face_annotations_are_one_line(tmp_path, text, words):
    path = tmp_path / "faces.json"
    path.write_text(text)
    proc = run("audit", "faces", path, "--images", tmp_path, "--out-dir", tmp_path / "out")
    one_error_line(proc, str(path), *words)
    assert proc.returncode == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--top-k", "9" * 400], ["top_k", "an integer of 400 digits"]),
        (["--min-scale", "1" + "0" * 400], ["min_scale"]),
        (["--focus", "1" + "0" * 400 + ",5"], ["focus"]),
    ],
)
def test_huge_numbers_are_one_short_line(sample_path, args, words):
    proc = run("crop", sample_path, *args)
    assert proc.returncode == 2 and len(one_error_line(proc, *words)) < 200


def test_options_of_the_wrong_type_are_option_errors():
    from edgecrop import Boost, OptionError, SearchOptions

    for make in (
        lambda: SearchOptions(min_scale=10**400),
        lambda: SearchOptions(boosts=5),  # type: ignore[arg-type]
        lambda: SearchOptions(boosts=[Boost(1, 1)] * 65),
        lambda: Boost(x=10**400, y=0),
        lambda: Boost(x=None, y=0),  # type: ignore[arg-type]
    ):
        with pytest.raises(OptionError):
            make()


# ---- folders the user cannot read, EXIF that outgrows a JPEG ------------------------------------------------


def _without_permission_override() -> list[str]:
    """A command prefix under which root, too, is refused what the permission bits refuse (setpriv drops
    the capabilities that override them); none for another user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    prefix.append("--inh-caps=-dac_override,-dac_read_search")
    if setpriv is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("as root, needs setpriv (util-linux) to drop the permission override")
    return prefix


def test_folders_the_user_cannot_read_are_one_line_each(tmp_path, sample_path):
    prefix = _without_permission_override()
    locked, ok = tmp_path / "locked", tmp_path / "ok"
    locked.mkdir()
    ok.mkdir()
    shutil.copy(sample_path, locked / "a.jpg")
    shutil.copy(sample_path, ok / "b.jpg")
    locked.chmod(0)
    try:

        def edgecrop(*args):
            command = [*prefix, sys.executable, "-m", "edgecrop", *map(str, args)]
            return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)

        inside = edgecrop("crop", "locked/a.jpg", "ok/b.jpg")
        assert inside.returncode == 1 and inside.stdout.startswith("ok/b.jpg (")  # the batch went on
        assert inside.stderr == "edgecrop: error: locked/a.jpg: cannot read it (Permission denied)\n"
        folder = edgecrop("crop", "locked", "ok/b.jpg")
        assert folder.stderr == "edgecrop: error: locked: cannot read the folder (Permission denied)\n"
        for out in ("locked/out", "locked/x/y"):
            proc = edgecrop("crop", "ok/b.jpg", "--out-dir", out)
            assert proc.returncode == 2
            assert proc.stderr == f"edgecrop: error: {out}: cannot create the folder (Permission denied)\n"
    finally:
        locked.chmod(0o700)


def hostile_exif(comment: int = 40_000) -> bytes:
    """EXIF whose Exif and GPS pointers share one IFD of ``comment`` bytes: written back, each pointer gets
    its own copy, past the 64 KB a JPEG segment holds."""
    import struct

    sub = 8 + 2 + 2 * 12 + 4
    data = sub + 2 + 12 + 4
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2)
    tiff += struct.pack("<HHII", 0x8769, 4, 1, sub) + struct.pack("<HHII", 0x8825, 4, 1, sub) + struct.pack("<I", 0)
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", 0x9286, 7, comment, data) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + b"A" * comment


def test_exif_that_outgrows_a_jpeg_on_resave_still_gives_crops(tmp_path, sample_path):
    from PIL import Image

    photo = tmp_path / "gps.jpg"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(photo, exif=hostile_exif())
    proc = run("crop", photo, sample_path, "--aspect", "1:1", "--out-dir", tmp_path / "out")
    assert (proc.returncode, proc.stderr) == (0, f"edgecrop: wrote 2 files to {tmp_path / 'out'}\n")
    with Image.open(tmp_path / "out" / "gps_1x1.jpg") as crop:
        assert crop.size == (48, 48) and crop.getexif().get_ifd(0x8769)  # the Exif IFD kept, GPS dropped


# ---- memory: the estimate before decoding, shrinking before converting --------------------------------------


def test_the_memory_limit_is_decided_before_decoding(tmp_path):
    from PIL import Image

    from edgecrop import ImageError, load_image

    grey = tmp_path / "grey.png"
    Image.new("L", (2000, 2000), 90).save(grey)  # 4 MB decoded
    small = load_image(grey, min_size=(256, 256), max_memory=5 << 20)
    assert small.rgb.mode == "RGB" and small.rgb.size == (285, 285) and (small.width, small.height) == (2000, 2000)
    with pytest.raises(ImageError, match=r"2000x2000 \(L\) needs about 7 MB to decode, over the memory limit of 5 MB"):
        load_image(grey, max_memory=5 << 20, keep_mode=True)  # crops to write: a second full-size copy
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (1000, 1000), (9, 9, 9, 9)).save(rgba)  # 4 MB; crops to write are composited
    assert load_image(rgba, min_size=(256, 256), max_memory=10 << 20).rgb.size == (333, 333)
    with pytest.raises(ImageError, match="needs about 15 MB"):
        load_image(rgba, max_memory=10 << 20, keep_mode=True)


@pytest.mark.parametrize("mode", ["1", "P", "I;16", "I", "F", "LA", "RGBA", "CMYK"])
def test_every_mode_shrinks_to_what_the_model_needs(tmp_path, mode):
    from PIL import Image

    from edgecrop import load_image

    path = tmp_path / f"big.{'tif' if mode in ('I', 'F', 'CMYK', 'I;16') else 'png'}"
    Image.new(mode, (1200, 900)).save(path)
    loaded = load_image(path, min_size=(256, 192))
    assert loaded.rgb.mode == "RGB" and loaded.rgb.size == (300, 225)
    assert load_image(path, keep_mode=True).rgb.size == (1200, 900)


def test_a_photo_over_the_memory_limit_writes_nothing(tmp_path, sample_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1500), (90, 120, 200)).save(big)  # 12 MB decoded, 24 MB to write crops
    proc = run("crop", big, sample_path, "--out-dir", tmp_path / "out", "--heatmap", "--max-memory", "20")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"edgecrop: error: {big}: 2000x1500 (RGB) needs about 22 MB to decode, over the memory limit of 20 MB "
        "(max_memory; --max-memory MB on the command line)",
        f"edgecrop: wrote 5 files to {tmp_path / 'out'}",
    ]
    assert not list((tmp_path / "out").glob("big*"))
