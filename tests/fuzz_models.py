"""Fuzz the model loader: mutated .tflite files must be refused with a ModelError or run, never crash.

    python -m tests.fuzz_models --count 2000 --seed 1     # longer runs by hand; the suite runs a few hundred

Mutants of a model's bytes are loaded with SaliencyModel and run once. Two kinds, alternately: structural
(1-4 bytes overwritten, mostly in the flatbuffer's tables rather than in the weights, where a change only
alters numbers) and quantisation (a tensor's scale or zero point set to a hostile value: 0, negative,
infinite, NaN, denormal, huge, out of its type's range: what made LiteRT abort the process). Each line of
output is ``<seed> ok|refused|BUG <text>``; a mutant that kills the process is the last seed printed
(the parent sees the signal). Exit status 0 unless a BUG line was printed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from edgecrop import EdgecropError, SaliencyModel
from edgecrop.modelfile.registry import resolve_model
from edgecrop.modelfile.verify import (
    _BUFFER_DATA,
    _GRAPH_TENSORS,
    _MODEL_BUFFERS,
    _MODEL_SUBGRAPHS,
    _QUANT_SCALE,
    _QUANT_ZERO,
    _TENSOR_QUANT,
    _Buffer,
)

HOSTILE_SCALES = np.array([0.0, -1.0, np.inf, -np.inf, np.nan, 1e-42, 1e-31, 1e5, 3e38], np.float32)
HOSTILE_ZEROS = np.array([-129, 128, 256, -32769, 32768, 2**40, -(2**62)], np.int64)


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


def quantisation_fields(data: bytes) -> list[tuple[int, int, str]]:
    """(byte offset, count, "scale" | "zero") of every quantisation vector in the model's tensors."""
    buf = _Buffer(data)
    graph = buf.tables(buf.table(buf.uoffset(0)), _MODEL_SUBGRAPHS)[0]
    out = []
    for t in buf.tables(graph, _GRAPH_TENSORS):
        pos = buf.field(t, _TENSOR_QUANT)
        if pos is None:
            continue
        q = buf.table(buf.uoffset(pos))
        for index, kind, size in ((_QUANT_SCALE, "scale", 4), (_QUANT_ZERO, "zero", 8)):
            start, count = buf.vector(q, index, size)
            if count:
                out.append((start, count, kind))
    return out


def requantise(data: bytes, rng: np.random.Generator, fields: list[tuple[int, int, str]]) -> bytes:
    """One quantisation vector entry (or all of a vector) set to a hostile value."""
    out = bytearray(data)
    start, count, kind = fields[int(rng.integers(0, len(fields)))]
    which = range(count) if rng.random() < 0.3 else [int(rng.integers(0, count))]
    for i in which:
        if kind == "scale":
            out[start + 4 * i : start + 4 * i + 4] = HOSTILE_SCALES[int(rng.integers(0, len(HOSTILE_SCALES)))].tobytes()
        else:
            out[start + 8 * i : start + 8 * i + 8] = HOSTILE_ZEROS[int(rng.integers(0, len(HOSTILE_ZEROS)))].tobytes()
    return bytes(out)


def structure_bytes(data: bytes) -> np.ndarray:
    mask = np.ones(len(data), bool)
    for a, b in weight_ranges(data):
        mask[a:b] = False
    return np.flatnonzero(mask)


def run(data: bytes, count: int, seed: int) -> int:
    structure, fields = structure_bytes(data), quantisation_fields(data)
    bugs = 0
    pixels = None
    for k in range(count):
        s = seed * 1_000_003 + k
        rng = np.random.default_rng(s)
        mutant = requantise(data, rng, fields) if fields and k % 2 else mutate(data, rng, structure)
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
