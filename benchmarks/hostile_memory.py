"""Peak memory of one `edgecrop crop` process fed one hostile image, under the default limits.

    python -m benchmarks.hostile_memory [--out benchmarks/results]

Small files that decode to a great deal (a 20 KB 1-bit PNG of 13000x13000, a 16-bit PNG, a palette GIF,
a 169-megapixel JPEG, a compressed TIFF, an RGBA PNG just under the memory limit), each cropped three ways
in a fresh process: to stdout, with crops and a heatmap written (--out-dir --heatmap), and with top-k (the
Numba search, the largest process). The peak resident set size of each process is read from wait4(2): what
the kernel charged it, native decoders and the runtime included. The target (issue 27): at most 600 MB for
any single input; what goes over the limits is refused with one line.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

TARGET_MB = 600
SIDE = 13000


def hostile_inputs(folder: Path, write: bool = True) -> dict[str, Path]:
    """The inputs in ``folder`` (written there unless ``write`` is False): name -> path."""
    made: dict[str, Path] = {}

    def save(name: str, image: Callable[[], Image.Image], **kw) -> None:
        made[name] = folder / name
        if write:
            image().save(made[name], **kw)

    def ramp16() -> Image.Image:  # mode I;16
        return Image.fromarray(np.linspace(0, 65535, SIDE).astype(np.uint16)[:, None].repeat(SIDE, 1))

    save("bilevel-13000.png", lambda: Image.new("1", (SIDE, SIDE), 1), optimize=True)
    save("grey16-13000.png", ramp16)
    save("palette-13000.gif", lambda: Image.new("P", (SIDE, SIDE), 3))
    save("rgb-13000.jpg", lambda: Image.new("RGB", (SIDE, SIDE), (90, 120, 200)), quality=50)
    save("rgb-13000.tif", lambda: Image.new("RGB", (SIDE, SIDE), (90, 120, 200)), compression="tiff_deflate")
    save("rgba-9000.png", lambda: Image.new("RGBA", (9000, 9000), (90, 120, 200, 128)))
    return made


# Linux counts, in a child's peak, the memory of the process it was forked from (until it execs): so each run
# is started by this small launcher (a bare Python, about 10 MB), which reports its child's peak
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.buffer.write(err)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_mb(args: list[str]) -> tuple[float, int, str]:
    """(peak RSS in MB, exit status, stderr) of ``python -m edgecrop ARGS`` in a fresh process."""
    run = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "edgecrop", *args], capture_output=True, text=True
    )
    kb, code = run.stdout.split()
    return int(kb) / 1024, int(code), run.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write <date>-hostile-memory.md here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # made in a child: a process forked from this one would otherwise count this one's peak as its own
        make = f"import benchmarks.hostile_memory as m, pathlib; m.hostile_inputs(pathlib.Path({tmp!r}))"
        subprocess.run([sys.executable, "-c", make], check=True)
        for name, path in hostile_inputs(folder, write=False).items():
            kb = path.stat().st_size / 1024
            for how, extra in (
                ("crop", []),
                ("crops and heatmap written", ["--out-dir", str(folder / "out"), "--heatmap"]),
                ("top-k 3 (Numba)", ["--top-k", "3", "--aspect", "1:1"]),
            ):
                mb, code, err = peak_mb(["crop", str(path), *extra])
                said = err.strip().splitlines()[0] if err.strip() else ""
                outcome = "cropped" if code == 0 else f"refused: {said.split(': ', 2)[-1]}" if code == 1 else said
                rows.append((name, kb, how, mb, outcome))
                print(f"{name:20s} {how:28s} {mb:6.0f} MB  {outcome[:90]}", flush=True)
    worst = max(r[3] for r in rows)
    lines = [
        f"# Peak memory per hostile image ({datetime.date.today()})",
        "",
        "| input | file size | run | peak RSS (MB) | outcome |",
        "|---|---|---|---|---|",
        *[f"| {n} | {kb:,.0f} KB | {how} | {mb:.0f} | {out} |" for n, kb, how, mb, out in rows],
        "",
        f"Worst: {worst:.0f} MB (target {TARGET_MB} MB). Rerun: python -m benchmarks.hostile_memory",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        (args.out / f"{datetime.date.today()}-hostile-memory.md").write_text(text)
    return 0 if worst <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
