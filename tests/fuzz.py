"""Every fuzzer with one budget: mutated models (structure and quantisation) and mutated images of every
format Pillow writes, through the command line. The test suite runs each with a small budget.

    python -m tests.fuzz --count 3000 --seed 1
"""

from __future__ import annotations

import argparse
import sys

from edgecrop.modelfile.registry import resolve_model

from . import fuzz_images, fuzz_models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="mutants of each kind")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    models = fuzz_models.run(resolve_model("default").read_bytes(), args.count, args.seed)
    images = fuzz_images.run(args.count, args.seed)
    return models or images


if __name__ == "__main__":
    sys.exit(main())
