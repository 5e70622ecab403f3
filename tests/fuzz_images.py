"""Fuzz the image path end to end: mutated files of every format Pillow writes, cropped by the command line.

    python -m tests.fuzz_images --count 3000 --seed 1     # longer runs by hand; the suite runs a few hundred

Seeds: a small picture saved in every format this Pillow can both write and read (JPEG, PNG, GIF, TIFF,
WebP, BMP, ICO, PPM, TGA, PCX, SGI, DDS, QOI, ... as installed), in colour, greyscale and with
transparency. Mutants: bytes overwritten, truncated or inserted. Each batch of mutants is cropped by one
``edgecrop crop FILES --json`` process, and must end with 0 or 1 (never a signal, never 2 or more), with
every line of its stderr edgecrop's own ("edgecrop: ..."): no traceback, no decoder warning, no libtiff
chatter. Prints one line per batch; exit status 0 unless a batch broke that contract (its seed and the
offending lines are printed).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

BATCH = 100


def seeds() -> dict[str, bytes]:
    """``name.ext`` -> the bytes of a small picture in that format (every writable and readable one)."""
    yy, xx = np.mgrid[0:40, 0:56]
    rgb = np.stack([xx * 4, yy * 6, (xx + yy) * 3], -1).astype(np.uint8)
    pictures = {"rgb": Image.fromarray(rgb), "grey": Image.fromarray(rgb[..., 0]), "rgba": Image.fromarray(rgb)}
    pictures["rgba"].putalpha(Image.fromarray((yy * 6).astype(np.uint8)))
    extensions = {fmt: ext for ext, fmt in sorted(Image.registered_extensions().items(), reverse=True)}
    out = {}
    for fmt in sorted(set(Image.SAVE) & set(Image.OPEN)):
        for kind, picture in pictures.items():
            buf = io.BytesIO()
            try:
                picture.save(buf, fmt)
                Image.open(io.BytesIO(buf.getvalue())).load()
            except Exception:  # noqa: BLE001 - a format that cannot hold this mode, or a missing codec
                continue
            out[f"{kind}-{fmt.lower()}{extensions.get(fmt, '.img')}"] = buf.getvalue()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        kind, pos = rng.random(), int(rng.integers(0, len(out)))
        if kind < 0.6:
            out[pos] = int(rng.integers(0, 256))
        elif kind < 0.75:
            del out[pos:]  # truncated
        elif kind < 0.9:
            out[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
        else:  # a size field made huge
            out[pos : pos + 4] = b"\x7f\xff\xff\xff"
        if not out:
            out = bytearray(data[:1])
    return bytes(out)


def run_batch(files: list[Path]) -> tuple[int, list[str]]:
    """(exit status, stderr lines that are not edgecrop's own) of one ``edgecrop crop`` over ``files``."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgecrop", "crop", *map(str, files), "--json", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},  # as a user runs it: warnings on
    )
    return proc.returncode, [line for line in proc.stderr.splitlines() if not line.startswith("edgecrop: ")]


def run(count: int, seed: int) -> int:
    base = seeds()
    names = sorted(base)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, count, BATCH):
            folder = Path(tmp) / str(start)
            folder.mkdir()
            files = []
            for k in range(start, min(count, start + BATCH)):
                name = names[k % len(names)]
                path = folder / f"{k:05d}-{name}"
                path.write_bytes(mutate(base[name], np.random.default_rng(seed * 1_000_003 + k)))
                files.append(path)
            status, foreign = run_batch(files)
            ok = status in (0, 1) and not foreign
            bad += not ok
            print(f"seed {seed} mutants {start}-{start + len(files) - 1}: exit {status}", "ok" if ok else "BUG")
            for line in foreign[:20]:
                print("   ", line)
    print(f"{len(names)} seed files ({', '.join(sorted({n.split('-', 1)[1] for n in names}))})")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    return run(args.count, args.seed)


if __name__ == "__main__":
    sys.exit(main())
