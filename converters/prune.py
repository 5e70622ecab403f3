"""Stage 5: Fisher pruning (Theis et al. 2018, arXiv:1801.05787).

First the feature maps that never fire on the training photos are removed (free). Then, while
fine-tuning, each alive feature map k gets a per-example gradient of the loss with respect to
a mask on it, g_nk = sum_ij a_nkij dL_n/da_nkij; its Fisher estimate of the loss increase when it is
removed is D_k = 1/(2N) sum_n g_nk^2, over the N examples seen since the last removal. Every
``prune_every`` steps the map minimising D_k + beta * dC_k is removed (dC_k < 0: the FLOPs removing it
saves, in MFLOPs), i.e. the one whose loss increase is smallest once its saving is credited (a large
pretrained trunk removes the recipe's ``prune_removals`` best maps at each decision instead of one).
Every ``eval_every`` decisions the validation loss, NSS and CC are logged to curve.csv; pruning stops
at the recipe's FLOPs budget, and a short annealed fine-tune follows (its result is the curve's last
row). curve.png plots the trade-off from the large start down to the budget.

    python -m converters.prune --run .cache/runs/base     # after converters.train in the same run
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .data import Sample
from .recipe import Recipe
from .student import AnyArchitecture, active_widths, flops, mask_layers
from .train import (
    Batches,
    _load_npz,
    _save_npz,
    evaluate_loss,
    load_run,
    per_example_losses,
    stage_main,
    train_and_val,
    train_stage,
)

log = logging.getLogger("converters.prune")


def removal_savings(arch: AnyArchitecture, widths: dict[str, int]) -> dict[str, float]:
    """MFLOPs saved by removing one feature map of each unit, at the current widths."""
    base = flops(arch, widths)
    return {u: (base - flops(arch, {**widths, u: widths[u] - 1})) / 1e6 for u in widths}


def prune(
    model,
    arch: AnyArchitecture,
    train_samples: list[Sample],
    val_samples: list[Sample],
    run: Path,
    recipe: Recipe,
) -> None:
    """Prune ``model`` (a masked student) in place down to the recipe's budget, resumable in ``run``."""
    weights, beta, prune_every, eval_every = recipe.loss, recipe.beta, recipe.prune_every, recipe.eval_every
    masks = mask_layers(model)
    units = list(masks)
    probe = keras.Model(model.input, [model.output] + [masks[u].output for u in units])
    optimizer = tf.keras.optimizers.Adam(recipe.prune_lr)
    optimizer.build(model.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    removed_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var, removed=removed_var)
    manager = tf.train.CheckpointManager(checkpoint, run / "prune_checkpoints", max_to_keep=2)
    curve_file = run / "curve.csv"
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        log.info("resuming pruning at step %d (%d maps removed)", int(step_var.numpy()), int(removed_var.numpy()))
    else:
        curve_file.unlink(missing_ok=True)
        _record(curve_file, model, arch, val_samples, weights, 0, header=True)
        batches = Batches(train_samples, arch, recipe.batch_size).epoch(recipe.seed, augment=True)
        dead = remove_dead_maps(masks, probe, batches)
        if dead:
            removed_var.assign(dead)
            log.info("removed %d dead feature maps (zero Fisher on every training photo)", dead)
            _record(curve_file, model, arch, val_samples, weights, dead)
        manager.save()
    state = {"step": int(step_var.numpy()), "removed": int(removed_var.numpy())}
    max_removals, batch_size, seed = recipe.max_removals, recipe.batch_size, recipe.seed

    @tf.function(reduce_retracing=True)
    def step(b):
        with tf.GradientTape() as tape:
            logits, *acts = probe(b["pixels"], training=True)
            kl, nll, has_fix = per_example_losses(logits, b["teacher"], b["fix"], b["valid"])
            n_fix = tf.maximum(tf.reduce_sum(has_fix), 1.0)
            per_example = weights.teacher * kl + weights.fixations * nll * has_fix * (
                tf.cast(tf.shape(kl)[0], tf.float32) / n_fix
            )
            loss = tf.reduce_sum(per_example)  # a sum, so gradients w.r.t. activations are per example
        grads = tape.gradient(loss, model.trainable_variables + acts)
        n = tf.cast(tf.shape(kl)[0], tf.float32)
        optimizer.apply_gradients(
            zip([g / n for g in grads[: len(model.trainable_variables)]], model.trainable_variables)
        )
        fisher = [
            tf.reduce_sum(tf.square(tf.reduce_sum(a * g, axis=[1, 2])), axis=0)
            for a, g in zip(acts, grads[len(model.trainable_variables) :])
        ]
        return loss / n, fisher

    batches = Batches(train_samples, arch, batch_size)
    fisher = {u: np.zeros(masks[u].mask.shape[0]) for u in units}
    seen = 0
    epoch = state["step"] // max(1, -(-len(train_samples) // batch_size))
    t0 = time.time()
    first = state["removed"]

    def done() -> bool:
        hit_cap = max_removals is not None and state["removed"] - first >= max_removals
        return hit_cap or flops(arch, active_widths(model)) / 1e6 <= recipe.target_mflops

    while not done():
        for b in batches.epoch(seed * 7919 + epoch):
            loss, f = step(b)
            for u, fu in zip(units, f):
                fisher[u] += fu.numpy()
            seen += len(b["pixels"])
            state["step"] += 1
            if state["step"] % prune_every:
                continue
            savings = removal_savings(arch, active_widths(model))
            picked = _pick(masks, fisher, seen, savings, beta, recipe.prune_removals)
            for unit, channel in picked:
                mask = masks[unit].mask
                mask.assign(tf.tensor_scatter_nd_update(mask, [[channel]], [0.0]))
            state["removed"] += len(picked)
            fisher = {u: np.zeros_like(v) for u, v in fisher.items()}
            seen = 0
            mflops = flops(arch, active_widths(model)) / 1e6
            log.info(
                "step %d: removed %s -> %.2f MFLOPs, loss %.4f (%.0fs)",
                state["step"],
                ", ".join(f"{u}[{c}]" for u, c in picked),
                mflops,
                float(loss),
                time.time() - t0,
            )
            if (state["removed"] // recipe.prune_removals) % eval_every == 0 or done():
                _record(curve_file, model, arch, val_samples, weights, state["removed"])
                step_var.assign(state["step"])
                removed_var.assign(state["removed"])
                manager.save()
            if done():
                break
        epoch += 1
    step_var.assign(state["step"])
    removed_var.assign(state["removed"])
    manager.save()


def remove_dead_maps(masks: dict, probe, batches) -> int:
    """Mask the maps that are zero on every training photo (ReLU never fires): removing them costs
    nothing, so they go first, without fine-tuning. A unit keeps at least one map."""
    active = {u: 0.0 for u in masks}
    for b in batches:
        _, *acts = probe(b["pixels"], training=False)
        for u, a in zip(masks, acts):
            active[u] = active[u] + tf.reduce_sum(tf.abs(a), axis=[0, 1, 2]).numpy()
    removed = 0
    for u, layer in masks.items():
        mask = layer.mask.numpy()
        dead = np.flatnonzero((active[u] == 0) & (mask > 0))
        if len(dead) >= np.sum(mask > 0):
            dead = dead[1:]
        mask[dead] = 0.0
        layer.mask.assign(mask)
        removed += len(dead)
    return removed


def _pick(masks, fisher, seen, savings, beta, count: int = 1) -> list[tuple[str, int]]:
    """The ``count`` alive feature maps with the smallest D_k - beta * saving (the paper removes one at a
    time; a large trunk removes a few per decision); a unit keeps at least one map."""
    candidates = []
    for unit, layer in masks.items():
        alive = np.flatnonzero(layer.mask.numpy() > 0)
        score = fisher[unit][alive] / (2 * max(seen, 1)) - beta * savings[unit]
        order = np.argsort(score, kind="stable")[: len(alive) - 1]  # never the unit's last map
        candidates += [(float(score[k]), unit, int(alive[k])) for k in order[:count]]
    return [(unit, channel) for _, unit, channel in sorted(candidates)[:count]]


def _record(curve_file: Path, model, arch, val_samples, weights, removed: int, header=False, stage="prune") -> None:
    widths = active_widths(model)
    row = {
        "stage": stage,
        "removed": removed,
        "mflops": flops(arch, widths) / 1e6,
        **evaluate_loss(model, val_samples, arch, weights),
        "widths": json.dumps(widths),
    }
    with open(curve_file, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if header:
            writer.writeheader()
        writer.writerow(row)
    log.info("curve: %s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


def read_curve(run: Path) -> list[dict]:
    with open(run / "curve.csv") as f:
        return [
            {
                **r,
                **{k: float(r[k]) for k in ("mflops", "kl", "nll", "NSS", "CC_teacher")},
                "removed": int(r["removed"]),
            }
            for r in csv.DictReader(f)
        ]


def plot_curve(run: Path, chosen: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = read_curve(run)
    fig, ax1 = plt.subplots(figsize=(7, 4))
    x = [r["mflops"] for r in curve]
    ax1.plot(x, [r["NSS"] for r in curve], "o-", color="tab:blue", label="val NSS (map resolution)")
    ax1.set_xlabel("MFLOPs per image")
    ax1.set_ylabel("NSS", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(x, [r["CC_teacher"] for r in curve], "s-", color="tab:orange", label="val CC to teacher")
    ax2.set_ylabel("CC to teacher", color="tab:orange")
    ax1.axvline(chosen["mflops"], color="grey", ls="--")
    ax1.set_title(f"Fisher pruning trade-off (chosen: {chosen['mflops']:.1f} MFLOPs)")
    ax1.invert_xaxis()
    fig.tight_layout()
    out = run / "curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run_pruning(recipe: Recipe, run: Path, data: dict[str, list[Sample]]):
    """Fisher-prune the trained student of ``run`` to the budget, fine-tune it, and save
    ``pruned_model.npz`` (masked weights) with the curve; returns the masked model and its architecture."""
    tf.keras.utils.set_random_seed(recipe.seed)
    model, arch = load_run(run, "train_model.npz")
    train_set, val_set = train_and_val(data, recipe)
    prune(model, arch, train_set, val_set, run, recipe)
    if not (run / "finetune_model.npz").exists():
        epochs, lr, seed = recipe.finetune_epochs, recipe.finetune_lr, recipe.seed + 1
        train_stage(recipe, model, arch, data, run, epochs, lr, recipe.loss, seed, "finetune")
        _record(run / "curve.csv", model, arch, val_set, recipe.loss, -1, stage="finetuned")
    else:
        _load_npz(model.weights, run / "finetune_model.npz")
    _save_npz(model.weights, run / "pruned_model.npz")
    final = read_curve(run)[-1]
    log.info("pruned to %.1f MFLOPs: %s; plot %s", final["mflops"], final, plot_curve(run, final))
    return model, arch


def main(argv: list[str] | None = None) -> None:
    stage_main(argv, __doc__, run_pruning)


if __name__ == "__main__":
    main()
