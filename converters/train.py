"""Stage 4: distillation. Train the student on teacher maps (KL) and human fixations (NLL).

Loss = w_teacher * KL(teacher || student) + w_fix * NLL(fixations | student), both over the
picture's cells only (letterbox padding is masked out of the softmax). Seeded, logged, resumable:
a run folder keeps the recipe, the architecture, a tf.train.Checkpoint per epoch and a CSV log;
rerunning the same command continues from the last finished epoch.

    python -m converters.train --run .cache/runs/base              # the shipped recipe
    python -m converters.train --run /tmp/r --recipe my_recipe.json
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import paths
from .data import FIXATION_SETS, Example, Sample, batch, load_fixations, load_samples, make_example, photo_sets
from .recipe import SHIPPED, LossWeights, Recipe
from .student import AnyArchitecture, Architecture, architecture_from_json, build_student

log = logging.getLogger("converters.train")


def per_example_losses(logits, teacher, fix, valid):
    """(KL(teacher || student), fixation NLL, has-fixations) per example, in nats."""
    z = logits[..., 0] + (valid - 1.0) * 1e9
    logp = z - tf.reduce_logsumexp(z, axis=[1, 2], keepdims=True)
    logp = tf.where(valid > 0, logp, 0.0)
    safe_t = tf.where(teacher > 0, teacher, 1.0)
    kl = tf.reduce_sum(teacher * (tf.math.log(safe_t) - logp), axis=[1, 2])
    n_fix = tf.reduce_sum(fix, axis=[1, 2])
    nll = -tf.reduce_sum(fix * logp, axis=[1, 2]) / tf.maximum(n_fix, 1.0)
    return kl, nll, tf.cast(n_fix > 0, tf.float32)


def total_loss(logits, b, weights: LossWeights):
    kl, nll, has_fix = per_example_losses(logits, b["teacher"], b["fix"], b["valid"])
    fix_term = tf.reduce_sum(nll * has_fix) / tf.maximum(tf.reduce_sum(has_fix), 1.0)
    return weights.teacher * tf.reduce_mean(kl) + weights.fixations * fix_term, kl, nll, has_fix


def load_training_data(shared: Path, cache: Path, limit: int | None = None) -> dict[str, list[Sample]]:
    """Every photo set (corpus, its holdout, each fixation set's train and val) with teacher maps and,
    for the eye-tracking sets, fixations."""
    fixations = {d: load_fixations(shared / "data" / d) for d in FIXATION_SETS}
    return {k: load_samples(v, cache, fixations.get(k.rsplit("_", 1)[0])) for k, v in photo_sets(shared, limit).items()}


def train_and_val(data: dict[str, list[Sample]], recipe: Recipe) -> tuple[list[Sample], list[Sample]]:
    """The recipe's training photos (corpus + each fixation set's train split) and validation photos."""
    train_set = data["corpus"] + [s for d in recipe.fixation_sets for s in data[f"{d}_train"]]
    return train_set, [s for d in recipe.fixation_sets for s in data[f"{d}_val"]]


class Batches:
    """Augmented batches made on worker threads (PIL releases the GIL while resizing)."""

    pool = ThreadPoolExecutor(2)  # shared by every Batches: one pool for the whole process

    def __init__(self, samples: list[Sample], arch: AnyArchitecture, batch_size: int):
        self.samples, self.spec, self.batch_size = samples, arch.spec(), batch_size

    def epoch(self, seed: int, augment: bool = True):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.samples)) if augment else np.arange(len(self.samples))
        seeds = rng.integers(0, 2**32, len(order))

        def one(i: int) -> Example:
            r = np.random.default_rng(seeds[i]) if augment else None
            return make_example(self.samples[order[i]], self.spec, r)

        starts = range(0, len(order), self.batch_size)
        futures = [self.pool.map(one, range(s, min(s + self.batch_size, len(order)))) for s in starts[:2]]
        for k, _ in enumerate(starts):
            if k + 2 < len(starts):
                s = starts[k + 2]
                futures.append(self.pool.map(one, range(s, min(s + self.batch_size, len(order)))))
            yield batch(list(futures[k]))


def evaluate_loss(model, samples: list[Sample], arch: AnyArchitecture, weights: LossWeights) -> dict[str, float]:
    """Validation KL and NLL, and NSS and CC-to-teacher at map resolution, in one pass over the photos
    (fast figures for logs and the pruning curve; converters.evaluate is the reference)."""
    kls, nlls, nss, ccs = [], [], [], []
    for b in Batches(samples, arch, 32).epoch(0, augment=False):
        logits = model(b["pixels"], training=False)
        _, kl, nll, has_fix = total_loss(logits, b, weights)
        kls += list(kl.numpy())
        nlls += [v for v, h in zip(nll.numpy(), has_fix.numpy()) if h]
        for z, t, f, v in zip(logits.numpy()[..., 0], b["teacher"], b["fix"], b["valid"]):
            rows, cols = np.nonzero(v)
            cells = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
            sal = np.exp(z[cells] - z[cells].max())
            zs = (sal - sal.mean()) / (sal.std() + 1e-12)
            nss.append(float((zs * f[cells]).sum() / max(f[cells].sum(), 1)))
            ccs.append(float(np.corrcoef(sal.ravel(), t[cells].ravel())[0, 1]))
    return {
        "kl": float(np.mean(kls)),
        "nll": float(np.mean(nlls)) if nlls else float("nan"),
        "NSS": float(np.mean(nss)),
        "CC_teacher": float(np.mean(ccs)),
    }


def train(
    model,
    arch: AnyArchitecture,
    train_samples: list[Sample],
    val_samples: list[Sample],
    run: Path,
    epochs: int,
    *,
    lr: float,
    batch_size: int,
    seed: int,
    weights: LossWeights,
    tag: str = "train",
) -> None:
    """Train ``model`` in place for ``epochs`` (cosine-decayed Adam), resuming from the run's checkpoint."""
    from tqdm import tqdm

    run.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = -(-len(train_samples) // batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps_per_epoch), alpha=0.05)
    optimizer = tf.keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, run / f"{tag}_checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        log.info("%s: resuming after epoch %d", tag, int(epoch_var.numpy()))

    @tf.function(reduce_retracing=True)
    def step(b):
        with tf.GradientTape() as tape:
            loss, *_ = total_loss(model(b["pixels"], training=True), b, weights)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    batches = Batches(train_samples, arch, batch_size)
    with open(run / "log.csv", "a", newline="") as f:
        writer = csv.writer(f)
        for epoch in range(int(epoch_var.numpy()), epochs):
            t0, losses = time.time(), []
            for b in tqdm(
                batches.epoch(seed * 1000 + epoch), total=steps_per_epoch, desc=f"{tag} {epoch + 1}/{epochs}"
            ):
                losses.append(float(step(b)))
            val = evaluate_loss(model, val_samples, arch, weights)
            writer.writerow(
                [tag, epoch + 1, f"{np.mean(losses):.5f}", f"{val['kl']:.5f}", f"{val['nll']:.5f}"]
                + [f"{val['NSS']:.4f}", f"{time.time() - t0:.1f}"]
            )
            f.flush()
            log.info(
                "%s epoch %d: train %.4f val KL %.4f NLL %.4f NSS %.3f (%.0fs)",
                tag,
                epoch + 1,
                np.mean(losses),
                val["kl"],
                val["nll"],
                val["NSS"],
                time.time() - t0,
            )
            epoch_var.assign(epoch + 1)
            manager.save()
    _save_npz(model.weights, run / f"{tag}_model.npz")


def _save_npz(variables, path: Path) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, *[np.asarray(v.numpy()) for v in variables])
    tmp.replace(path)


def _load_npz(variables, path: Path) -> None:
    with np.load(path) as data:
        for i, v in enumerate(variables):
            v.assign(data[f"arr_{i}"])


def load_run(run: Path, weights: str) -> tuple[tf.keras.Model, AnyArchitecture]:
    """The masked student of a run folder with a weights file of it loaded, and its architecture."""
    arch = architecture_from_json((run / "architecture.json").read_text())
    model = build_student(arch)
    _load_npz(model.weights, run / weights)
    return model, arch


def architecture(recipe: Recipe, widths: dict[str, int] | None = None) -> AnyArchitecture:
    """The recipe's student: the base architecture's widths times the recipe's multiplier (or ``widths``);
    or the recipe's pretrained trunk at its full widths (or ``widths``)."""
    if recipe.trunk:
        from .trunk import TrunkArchitecture

        trunk = TrunkArchitecture(recipe.trunk, recipe.input_size, recipe.resize.value, last=recipe.trunk_last)
        return trunk.with_widths(widths) if widths else trunk
    base = Architecture(input_size=recipe.input_size, resize=recipe.resize.value)
    full = base.unit_widths()
    scaled = {k: max(1, round(v * recipe.width_multiplier)) for k, v in full.items()}
    return base.with_widths(widths or scaled)


def setup_run(run: Path, recipe: Recipe, arch: AnyArchitecture) -> AnyArchitecture:
    """Write the recipe and architecture into a new run folder, or check and read them back."""
    run.mkdir(parents=True, exist_ok=True)
    arch_file, recipe_file = run / "architecture.json", run / "recipe.json"
    if recipe_file.exists() and Recipe.from_json(recipe_file.read_text()) != recipe:
        raise SystemExit(f"{run} was started with another recipe ({recipe_file}): use a new --run folder")
    recipe_file.write_text(recipe.to_json())
    if arch_file.exists():
        return architecture_from_json(arch_file.read_text())
    arch_file.write_text(arch.to_json())
    return arch


def setup_logging(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(run / "train.log")],
        force=True,
    )


def run_training(
    recipe: Recipe,
    run: Path,
    data: dict[str, list[Sample]],
    widths: dict[str, int] | None = None,
    epochs: int | None = None,
):
    """Train the recipe's student (or one of the given ``widths``) from random initialisation in ``run``;
    a pretrained trunk at full width starts from its ImageNet weights (its readout from random)."""
    arch = setup_run(run, recipe, architecture(recipe, widths))
    tf.keras.utils.set_random_seed(recipe.seed)
    model = build_student(arch)
    if recipe.trunk and not widths:
        from .trunk import TrunkArchitecture, load_pretrained, pretrained_state

        assert isinstance(arch, TrunkArchitecture)
        load_pretrained(model, arch, pretrained_state())
    train_stage(recipe, model, arch, data, run, epochs or recipe.epochs, recipe.lr, recipe.loss, recipe.seed, "train")
    return model, arch


def run_refining(recipe: Recipe, run: Path, data: dict[str, list[Sample]], start: str) -> Path:
    """The last stage of every candidate: ``recipe.refine_epochs`` more epochs from the weights ``start``
    of ``run``, with a loss leaning on the human fixations (the teacher brought the student this far;
    where people look is what crops are judged on). Returns the refined weights file."""
    seed = recipe.seed + 2
    tf.keras.utils.set_random_seed(seed)
    model, arch = load_run(run, start)
    train_stage(
        recipe, model, arch, data, run, recipe.refine_epochs, recipe.refine_lr, recipe.refine_loss, seed, "refine"
    )
    return run / "refine_model.npz"


def train_stage(recipe, model, arch, data, run: Path, epochs: int, lr: float, loss: LossWeights, seed: int, tag: str):
    """``train`` on the recipe's training photos, validated on its validation photos."""
    train_set, val_set = train_and_val(data, recipe)
    train(
        model,
        arch,
        train_set,
        val_set,
        run,
        epochs,
        lr=lr,
        batch_size=recipe.batch_size,
        seed=seed,
        weights=loss,
        tag=tag,
    )


def stage_main(argv: list[str] | None, doc: str | None, stage) -> None:
    """The command line of a training stage: a run folder and a recipe (the shipped one, a JSON file, or
    either cut down by --smoke); the stage is then ``stage(recipe, run, data)``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="run folder (created, or resumed)")
    ap.add_argument("--shared")
    ap.add_argument("--cache")
    ap.add_argument("--recipe", help="a recipe JSON file (default: the shipped recipe, converters.recipe)")
    ap.add_argument("--smoke", action="store_true", help="the recipe cut down to seconds")
    args = ap.parse_args(argv)
    recipe = Recipe.from_json(Path(args.recipe).read_text()) if args.recipe else SHIPPED
    recipe = recipe.smoke() if args.smoke else recipe
    setup_logging(args.run)
    stage(
        recipe, args.run, load_training_data(paths.shared_dir(args.shared), paths.cache_dir(args.cache), recipe.limit)
    )


def main(argv: list[str] | None = None) -> None:
    stage_main(argv, __doc__, run_training)


if __name__ == "__main__":
    main()
