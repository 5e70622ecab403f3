"""The whole model pipeline, stage after stage, on one typed recipe (converters.recipe).

    python -m converters.pipeline                            # the shipped model, into models/
    python -m converters.pipeline --smoke --work /tmp/smoke  # every stage in seconds (CI)

1. teacher maps of every photo (cached)
2. the large student (the recipe's width multiplier) trained from random initialisation
3. Fisher-pruned to the FLOPs budget, then fine-tuned
4. a student of exactly the pruned widths trained from scratch, same recipe, same number of epochs
5. both refined: a few more epochs with a loss leaning on human fixations
6. both exported to int8 (their cards asking for flip averaging) and compared on validation crops (OSIE,
   EyeCrowd, shape re-cuts): the better ships
7. the centre prior and temperature fitted on validation crops (converters.calibrate), into the card
8. the shipped model evaluated (converters.evaluate); every figure goes into its card

Every stage is resumable, so rerunning after an interruption continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from . import calibrate, evaluate, export, paths, teacher
from .data import photo_sets
from .prune import run_pruning
from .recipe import PRETRAINED, SHIPPED, Recipe
from .student import active_widths, flops
from .train import load_training_data, run_refining, run_training, setup_logging

log = logging.getLogger("converters.pipeline")


def run_pipeline(work: Path, shared: Path, out: Path, recipe: Recipe, cache: Path) -> dict:
    setup_logging(work)
    images = sorted({p for photos in photo_sets(shared, recipe.limit).values() for p in photos})
    teacher.cache_maps(images, cache, teacher.convert_teacher(paths.teacher_model_path(shared)), workers=2)
    data = load_training_data(shared, cache, recipe.limit)

    run_training(recipe, work / "large", data)
    pruned, pruned_arch = run_pruning(recipe, work / "large", data)
    refined = {"fisher_pruned": run_refining(recipe, work / "large", data, "pruned_model.npz")}
    if not recipe.trunk:  # the from-scratch student is compared with a network of its pruned widths
        widths = active_widths(pruned)
        run_training(recipe, work / "scratch", data, widths=widths, epochs=recipe.epochs + recipe.finetune_epochs)
        refined["scratch"] = run_refining(recipe, work / "scratch", data, "train_model.npz")
    candidates = {name: export.convert_run(w.parent, w.name, shared, recipe) for name, w in refined.items()}
    sets = evaluate.validation_sets(shared, recipe.limit)
    comparison = {
        name: evaluate.summary(evaluate.evaluate_model(c.blobs["int8"], sets)) for name, c in candidates.items()
    }
    for name, c in candidates.items():
        comparison[name].update(mflops=c.mflops, parameters=c.parameters)
    winner = max(comparison, key=lambda k: comparison[k]["mean_normalised"])
    log.info("candidates (uncalibrated): %s; shipping %s", json.dumps(comparison), winner)

    fitted = calibrate.fit(candidates[winner].blobs["int8"], sets)
    log.info("calibration: %s", json.dumps(fitted))
    extra = {
        "training": {
            "recipe": recipe.to_dict(),
            "command": "python -m converters.pipeline" + (" --pretrained" if recipe == PRETRAINED else ""),
            "start_mflops": flops(pruned_arch) / 1e6,
            "shipped": winner,
            "pruned_vs_scratch": comparison,
        },
        "temperature": fitted["temperature"],
        "centre_prior": fitted["centre_prior"],
        "calibration": fitted,
    }
    export.write_models(candidates[winner], out, extra)
    report = evaluate.evaluate_model((out / "edgecrop_int8.tflite").read_bytes(), sets, with_teacher=shared)
    publish_metrics(out, report, {**extra["training"], "calibration": fitted})
    (work / "evaluation.json").write_text(json.dumps(report, indent=1))
    curve = work / "large" / "curve.csv"
    if curve.exists() and not recipe.limit:
        shutil.copy(curve, out / "edgecrop_pruning_curve.csv")
        shutil.copy(work / "large" / "curve.png", out / "edgecrop_pruning_curve.png")
        (out / "edgecrop_evaluation.json").write_text(json.dumps(report, indent=1))
    print(evaluate.format_report(report))
    return report


def publish_metrics(out: Path, report: dict, training: dict) -> None:
    """The evaluation goes into the card of the model it measured (int8, the default); the float cards
    say where it is, and carry their own conversion check (int8 vs float32 map CC)."""
    export.update_cards(out, ("int8",), metrics=evaluate.card_metrics(report), training=training)
    pointer = {"note": "measured on edgecrop_int8, the model this one was exported beside (see checks)"}
    export.update_cards(out, ("float16", "float32"), metrics=pointer, training=training)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=paths.cache_dir() / "pipeline", help="runs and logs")
    ap.add_argument("--shared")
    ap.add_argument("--out", type=Path, help="where the models go (default: models/, or WORK/models for --smoke)")
    ap.add_argument("--recipe", type=Path, help="a recipe JSON file (default: the shipped recipe)")
    ap.add_argument(
        "--pretrained",
        action="store_true",
        help="the pretrained-trunk recipe (converters.recipe.PRETRAINED: ImageNet MobileNetV2 features, pruned)",
    )
    ap.add_argument("--smoke", action="store_true", help="a few steps of every stage on a handful of photos")
    args = ap.parse_args(argv)
    recipe = Recipe.from_json(args.recipe.read_text()) if args.recipe else PRETRAINED if args.pretrained else SHIPPED
    if args.smoke:
        recipe = recipe.smoke()
    out = args.out or (args.work / "models" if args.smoke else paths.REPO / "models")
    cache = args.work / "cache" if args.smoke else paths.cache_dir()
    return run_pipeline(args.work, paths.shared_dir(args.shared), out, replace(recipe), cache)


if __name__ == "__main__":
    main()
