"""What sizing the reduced JPEG decode by the picture's place in the model input buys, against sizing it by
the whole square input (the rule before 2026-11-24): decode + model input, and the whole crop, per photo
size, A/B in one process (medians of alternating passes).

    python -m benchmarks.decode_size [--repeats 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

from edgecrop import Cropper
from edgecrop.apps.bench import machine, sample_photo
from edgecrop.images import load_image
from edgecrop.preprocess import to_input

SIZES = ((800, 600), (1024, 768), (2048, 1536), (1920, 1080))
PHOTOS = 20  # per size: the sample photo at that size, shifted so that no two are the same JPEG


def jpegs(size: tuple[int, int]) -> list[bytes]:
    with Image.open(sample_photo()) as im:
        base = im.convert("RGB").resize((size[0] + PHOTOS, size[1]))
    out = []
    for k in range(PHOTOS):
        buf = io.BytesIO()
        base.crop((k, 0, k + size[0], size[1])).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def per_photo_ms(fn: Callable[[bytes], object], photos: list[bytes]) -> float:
    t = time.perf_counter()
    for p in photos:
        fn(p)
    return (time.perf_counter() - t) / len(photos) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; `python -m benchmarks.decode_size --repeats {args.repeats}`, ms a photo\n")
    print("| photo | decoded at, square rule | now | decode + input, square | now | whole crop, square | now |")
    print("|---|---|---|---|---|---|---|")
    with Cropper.from_model("edgecrop_int8", num_threads=1) as cropper:
        spec = cropper.model.info.spec
        rules = {
            "square": lambda p: load_image(p, min_size=(spec.width, spec.height)),
            "now": cropper.load,
        }
        for size in SIZES:
            photos = jpegs(size)
            shapes = {k: rule(photos[0]).rgb.size for k, rule in rules.items()}
            stage: dict[str, list[float]] = {k: [] for k in rules}
            crop: dict[str, list[float]] = {k: [] for k in rules}
            for _ in range(args.repeats):
                for k, rule in rules.items():
                    stage[k].append(per_photo_ms(lambda p, rule=rule: to_input(rule(p).rgb, spec), photos))
                    crop[k].append(per_photo_ms(lambda p, rule=rule: cropper.crop(rule(p)), photos))
            med = {k: (statistics.median(stage[k]), statistics.median(crop[k])) for k in rules}
            print(
                f"| {size[0]}x{size[1]} | {shapes['square'][0]}x{shapes['square'][1]} | "
                f"{shapes['now'][0]}x{shapes['now'][1]} | {med['square'][0]:.2f} | {med['now'][0]:.2f} | "
                f"{med['square'][1]:.2f} | {med['now'][1]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
