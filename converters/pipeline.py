"""The whole model pipeline, stage after stage, with the settings the shipped model was made with.

    python -m converters.pipeline                      # teacher maps, train, prune, export, evaluate
    python -m converters.pipeline --smoke --work /tmp/smoke   # a few steps of every stage (CI)

Every stage is resumable, so rerunning after an interruption continues where it stopped. Each stage
is also its own command (converters.teacher, .train, .prune, .export, .evaluate) for experiments.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import evaluate, export, paths, prune, teacher, train

# The recipe of the shipped default model (see models/edgecrop_int8.md).
RECIPE = {
    "input_size": 256,
    "resize": "letterbox",
    "epochs": 80,
    "w_teacher": 0.5,
    "w_fix": 0.5,
    "target_mflops": 35.0,
    "beta": 1e-4,
    "eval_every": 10,
    "seed": 0,
}
SMOKE = {**RECIPE, "epochs": 1, "limit": 8}


def _flags(recipe: dict, keys: tuple[str, ...]) -> list[str]:
    """Recipe entries as command-line flags: {'w_fix': 0.5} -> ['--w-fix', '0.5']."""
    return [item for k in keys for item in (f"--{k.replace('_', '-')}", str(recipe[k]))]


def run_pipeline(work: Path, shared: Path, out: Path, recipe: dict, smoke: bool = False) -> dict:
    cache = work / "cache"
    run = work / "run"
    limit = ["--limit", str(recipe["limit"])] if smoke else []
    common = ["--shared", str(shared), "--cache", str(cache)]
    teacher.main([*common, "--workers", "1" if smoke else "2", *limit])
    train_keys = ("epochs", "input_size", "resize", "w_teacher", "w_fix", "seed")
    train.main([*common, "--run", str(run), *_flags(recipe, train_keys), *limit])
    schedule = ["--prune-every", "1", "--eval-every", "2", "--max-removals", "4"] if smoke else []
    prune_keys = ("target_mflops", "beta", "seed") + (() if smoke else ("eval_every",))
    prune.main([*common, "--run", str(run), *_flags(recipe, prune_keys), *schedule, *limit])
    return publish(run, work, shared, out, recipe, smoke)


def publish(run: Path, work: Path, shared: Path, out: Path, recipe: dict, smoke: bool = False) -> dict:
    """Export the chosen operating point of a pruned run, evaluate it, and put the figures in its cards."""
    chosen = json.loads((run / "operating_point.json").read_text())
    card_extra = work / "card_extra.json"
    card_extra.write_text(json.dumps({"training": {**recipe, "operating_point": chosen}}))
    weights = f"prune_snapshots/removed_{chosen['removed']:04d}.npz"
    smoke_export = ["--smoke", "8"] if smoke else []
    export.main(
        [
            "--run",
            str(run),
            "--weights",
            weights,
            "--out",
            str(out),
            "--shared",
            str(shared),
            "--card-extra",
            str(card_extra),
            *smoke_export,
        ]
    )
    int8 = str(out / "edgecrop_int8.tflite")
    smoke_eval = ["--limit", "5", "--no-teacher"] if smoke else ["--holdout"]
    results = evaluate.main(
        [
            "--shared",
            str(shared),
            "--model",
            int8,
            "--json-out",
            str(work / "evaluation.json"),
            "--threads",
            "2",
            *smoke_eval,
        ]
    )
    export.add_to_cards(
        out,
        "metrics",
        {
            "command": "python -m converters.evaluate --model edgecrop_int8 --split val --holdout",
            "osie_val_int8": results["models"][int8],
            "osie_val_teacher": results["models"].get("teacher"),
            "osie_val_centre_bias": results["models"]["centre-bias"],
            "crop_baselines": results["crop_baselines"],
            "holdout_agreement_with_teacher": results.get("holdout_vs_teacher", {}).get(int8),
        },
    )
    return results


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=paths.cache_dir() / "pipeline", help="caches and runs")
    ap.add_argument("--shared")
    ap.add_argument("--out", type=Path, help="where the models go (default: models/, or WORK/models for --smoke)")
    ap.add_argument("--smoke", action="store_true", help="a few steps of every stage on a handful of photos")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = args.out or (args.work / "models" if args.smoke else paths.REPO / "models")
    return run_pipeline(args.work, paths.shared_dir(args.shared), out, SMOKE if args.smoke else RECIPE, args.smoke)


if __name__ == "__main__":
    main()
