"""The full benchmark: `edgecrop bench` plus the peers and the quality that need ../shared.

    python -m benchmarks.run [--repeats 10] [--out benchmarks/results]

Beside the bundled models it times the teacher (attention-center, converted by converters.teacher) and
Twitter's FastGaze (converted from ../shared's .vxm by converters.fastgaze, cached in .cache/), at 1 and 2
threads, and evaluates every model and peer on the OSIE validation split (NSS, CC, AUC, sAUC and the share
of human fixations the crops keep), smartcrop.py and the centre crop included. Writes
``<date>-bench.{json,md}`` and PNG plots into --out. Without ../shared it is `edgecrop bench`.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import report
from converters import paths
from converters.evaluate import CROP_ASPECTS, Photo, evaluate_model, fixations_inside, validation_sets
from edgecrop import SearchOptions
from edgecrop.apps import bench
from edgecrop.apps.progress import progress
from edgecrop.geometry import AspectRatio
from edgecrop.modelfile.registry import list_models

REPO = Path(__file__).resolve().parents[1]
OUR_INPUT = 256


def peer_models(shared: Path) -> dict[str, bytes | Path]:
    """The teacher, and FastGaze int8 at its own input size and at ours (256), when ../shared has them.
    FastGaze is converted once by converters.fastgaze and cached in .cache/."""
    out: dict[str, bytes | Path] = {}
    teacher = paths.teacher_model_path(shared)
    if teacher.exists():
        from converters.teacher import convert_teacher

        out["teacher (attention-center)"] = convert_teacher(teacher)
    vxm = shared / "teachers" / "fastgaze" / "fastgaze.vxm"
    if vxm.exists():
        from converters.fastgaze import DEFAULT_VARIANT, convert_fastgaze, default_photos

        for size in (DEFAULT_VARIANT.size, OUR_INPUT):
            cached = paths.cache_dir() / f"fastgaze_int8_{size}.tflite"
            if not cached.exists():
                calib, check = default_photos(shared, 240, 100)
                variant = replace(DEFAULT_VARIANT, size=size)
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(convert_fastgaze(vxm, ("int8",), calib, check, variant)["int8"])
            out[f"fastgaze_int8@{size}"] = cached
    return out


def smartcrop_shares(photos: list[Photo]) -> dict[str, float]:
    """Share of fixations inside smartcrop.py's crop of each ratio (largest size, as edgecrop's)."""
    import smartcrop

    sc = smartcrop.SmartCrop()
    shares: dict[str, list[float]] = {a: [] for a in CROP_ASPECTS}
    for p in progress(photos, desc="smartcrop"):
        rgb = p.image()
        for a in CROP_ASPECTS:
            r = AspectRatio.parse(a)
            box = sc.crop(rgb, r.width, r.height, min_scale=1.0)["top_crop"]
            share = fixations_inside(p.fixations, box["x"], box["y"], box["width"], box["height"])
            shares[a].append(share / len(p.fixations))
    return {a: float(np.mean(v)) for a, v in shares.items()}


def quality(models: dict[str, bytes | Path], shared: Path) -> dict[str, dict]:
    """Map metrics and crops on OSIE validation for each model, smartcrop.py and the centre crop."""
    sets = {"osie_val": validation_sets(shared)["osie_val"]}
    out = {}
    for label, source in models.items():
        twitter = label.startswith("fastgaze")  # FastGaze with Twitter's crop rule, as Twitter ran it
        report = evaluate_model(source, sets, options=SearchOptions(policy="twitter") if twitter else None)
        osie = report["sets"]["osie_val"]
        shares = {a: r["model"] for a, r in osie["ratios"].items()}
        out[label] = {**osie["maps"], "crop_fixation_share": shares, "normalised": osie["mean_normalised"]}
        logging.info("quality of %s: NSS %.3f", label, out[label]["NSS"])
    out["centre crop"] = {"crop_fixation_share": {a: r["centre"] for a, r in osie["ratios"].items()}}
    out["best possible crop"] = {"crop_fixation_share": {a: r["best"] for a, r in osie["ratios"].items()}}
    try:
        out["smartcrop.py"] = {"crop_fixation_share": smartcrop_shares(sets["osie_val"])}
    except ImportError:
        pass
    for q in out.values():
        q["crop_share"] = float(np.mean(list(q["crop_fixation_share"].values())))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shared")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shared = paths.shared_dir(args.shared)
    models: dict[str, bytes | Path] = {m.name: m.path for m in list_models()}
    models.update(peer_models(shared))
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    bench.check_writable(args.out, datetime.date.today().isoformat(), args.overwrite)
    results = bench.run(models, args.threads, args.repeats, command.strip(), progress=progress).to_dict()
    if not args.no_quality and (shared / "data" / "osie").exists():
        results["quality"] = quality(models, shared)
    results["targets"] = report.check_targets(results)
    text = report.full_markdown(results)
    print(text)
    written = bench.write(results, args.out, args.overwrite, text)
    written += report.plots(results, args.out, f"{results['date']}-bench")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
