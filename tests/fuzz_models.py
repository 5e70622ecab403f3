"""Fuzz the model loader: mutated .tflite files must be refused with a ModelError or run, never crash.

    python -m tests.fuzz_models --count 2000 --seed 1     # longer runs by hand; the suite runs a few hundred

Mutants of a model's bytes (1-4 bytes overwritten, mostly in the flatbuffer's tables rather than in the
weights, where a change only alters numbers) are loaded with SaliencyModel and run once. Each line of
output is ``<seed> ok|refused|BUG <text>``; a mutant that kills the process is the last seed printed
(the parent sees the signal). Exit status 0 unless a BUG line was printed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from edgecrop import EdgecropError, SaliencyModel
from edgecrop.modelfile.registry import resolve_model
from edgecrop.modelfile.verify import _BUFFER_DATA, _MODEL_BUFFERS, _Buffer


def weight_ranges(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the constant buffers (the weights)."""
    buf = _Buffer(data)
    model = buf.table(buf.uoffset(0))
    out = []
    for b in buf.tables(model, _MODEL_BUFFERS):
        start, count = buf.vector(b, _BUFFER_DATA, 1)
        if count > 64:
            out.append((start, start + count))
    return out


def mutate(data: bytes, rng: np.random.Generator, structure: np.ndarray) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        pos = int(rng.choice(structure)) if rng.random() < 0.85 else int(rng.integers(0, len(out)))
        out[pos] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80, int(rng.integers(0, 256))]))
    return bytes(out)


def structure_bytes(data: bytes) -> np.ndarray:
    mask = np.ones(len(data), bool)
    for a, b in weight_ranges(data):
        mask[a:b] = False
    return np.flatnonzero(mask)


def run(data: bytes, count: int, seed: int) -> int:
    structure = structure_bytes(data)
    bugs = 0
    pixels = None
    for k in range(count):
        s = seed * 1_000_003 + k
        mutant = mutate(data, np.random.default_rng(s), structure)
        print(s, end=" ", flush=True)  # the last seed printed is the one that crashed, if any
        try:
            with SaliencyModel(mutant, num_threads=1) as model:
                spec = model.info.spec
                if pixels is None or pixels.shape != (spec.height, spec.width, 3):
                    pixels = np.zeros((spec.height, spec.width, 3), np.uint8)
                out = model.run(pixels)
                print("ok", out.shape, flush=True)
        except EdgecropError as exc:
            print("refused", str(exc)[:200].replace("\n", " "), flush=True)
        except Exception as exc:  # noqa: BLE001 - the point is to find these
            bugs += 1
            print("BUG", type(exc).__name__, str(exc)[:200].replace("\n", " "), flush=True)
    return 1 if bugs else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    return run(resolve_model(args.model).read_bytes(), args.count, args.seed)


if __name__ == "__main__":
    sys.exit(main())
