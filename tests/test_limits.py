"""What bounds a hostile input or a rough environment meets (issue 27): signals at start-up, model files that
are huge or noisy, images that cost more memory than they look, options that ask for too much. The command
line runs in a subprocess and its whole stderr is compared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_hardening import one_error_line, run


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
        [sys.executable, "-m", "edgecrop", "crop", sample_path],
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
