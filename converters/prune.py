"""Stage 5: Fisher pruning (Theis et al. 2018, arXiv:1801.05787).

First the feature maps that never fire on the training photos are removed (free). Then, while
fine-tuning, each alive feature map k gets a per-example gradient of the loss with respect to
a mask on it, g_nk = sum_ij a_nkij dL_n/da_nkij; its Fisher estimate of the loss increase when it is
removed is D_k = 1/(2N) sum_n g_nk^2, over the N examples seen since the last removal. Every
``prune_every`` steps the map minimising D_k + beta * dC_k is removed (dC_k < 0: the FLOPs removing it
saves, in MFLOPs), i.e. the one whose loss increase is smallest once its saving is credited.
Every ``eval_every`` removals the validation loss, NSS and CC are logged to curve.csv and the
weights snapshotted; the operating point is the smallest model whose validation NSS and CC are
within the tolerances (0.03, 0.01) of the unpruned model's. curve.png plots the trade-off.

    python -m converters.prune --run .cache/runs/base --target-mflops 35 --beta 1e-4
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import paths
from .data import Sample
from .student import Architecture, active_widths, build_student, flops, mask_layers
from .train import (
    Batches,
    LossWeights,
    _load_npz,
    _save_npz,
    evaluate_loss,
    load_training_data,
    per_example_losses,
    setup_logging,
)

log = logging.getLogger("converters.prune")


def removal_savings(arch: Architecture, widths: dict[str, int]) -> dict[str, float]:
    """MFLOPs saved by removing one feature map of each unit, at the current widths."""
    base = flops(arch, widths)
    return {u: (base - flops(arch, {**widths, u: widths[u] - 1})) / 1e6 for u in widths}


def prune(
    model,
    arch: Architecture,
    train_samples: list[Sample],
    val_samples: list[Sample],
    run: Path,
    *,
    target_mflops: float,
    max_removals: int | None = None,
    beta: float = 1e-4,
    prune_every: int = 8,
    eval_every: int = 20,
    lr: float = 5e-5,
    batch_size: int = 32,
    seed: int = 0,
    weights: LossWeights = LossWeights(),
) -> None:
    """Prune ``model`` (a masked student) in place down to ``target_mflops``, resumable in ``run``."""
    masks = mask_layers(model)
    units = list(masks)
    probe = keras.Model(model.input, [model.output] + [masks[u].output for u in units])
    optimizer = tf.keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)
    state_file = run / "prune_state.json"
    state = {"step": 0, "removed": 0}
    snaps = run / "prune_snapshots"
    snaps.mkdir(parents=True, exist_ok=True)
    curve_file = run / "curve.csv"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        _load_npz(model.weights, run / "prune_model.npz")
        _load_npz(optimizer.variables, run / "prune_optimizer.npz")
        log.info("resuming pruning at step %d (%d maps removed)", state["step"], state["removed"])
    else:
        _record(curve_file, model, arch, val_samples, weights, snaps, 0, header=True)
        dead = remove_dead_maps(masks, probe, Batches(train_samples, arch, batch_size).epoch(seed, augment=True))
        if dead:
            state["removed"] += dead
            log.info("removed %d dead feature maps (zero Fisher on every training photo)", dead)
            _record(curve_file, model, arch, val_samples, weights, snaps, state["removed"])

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
        return hit_cap or flops(arch, active_widths(model)) / 1e6 <= target_mflops

    while not done():
        for b in batches.epoch(seed * 7919 + epoch):
            loss, f = step(b)
            for u, fu in zip(units, f):
                fisher[u] += fu.numpy()
            seen += len(b["pixels"])
            state["step"] += 1
            if state["step"] % prune_every:
                continue
            unit, channel = _pick(masks, fisher, seen, removal_savings(arch, active_widths(model)), beta)
            mask = masks[unit].mask
            mask.assign(tf.tensor_scatter_nd_update(mask, [[channel]], [0.0]))
            state["removed"] += 1
            fisher = {u: np.zeros_like(v) for u, v in fisher.items()}
            seen = 0
            mflops = flops(arch, active_widths(model)) / 1e6
            log.info(
                "step %d: removed %s[%d] -> %.2f MFLOPs, loss %.4f (%.0fs)",
                state["step"],
                unit,
                channel,
                mflops,
                float(loss),
                time.time() - t0,
            )
            if state["removed"] % eval_every == 0 or done():
                _record(curve_file, model, arch, val_samples, weights, snaps, state["removed"])
                _save_npz(model.weights, run / "prune_model.npz")
                _save_npz(optimizer.variables, run / "prune_optimizer.npz")
                state_file.write_text(json.dumps(state))
            if done():
                break
        epoch += 1
    _save_npz(model.weights, run / "prune_model.npz")
    state_file.write_text(json.dumps(state))


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


def _pick(masks, fisher, seen, savings, beta) -> tuple[str, int]:
    """The alive feature map with the smallest D_k - beta * saving; a unit keeps at least one map."""
    best = (np.inf, "", -1)
    for unit, layer in masks.items():
        alive = np.flatnonzero(layer.mask.numpy() > 0)
        if len(alive) <= 1:
            continue
        d = fisher[unit][alive] / (2 * max(seen, 1))
        score = d - beta * savings[unit]
        k = int(np.argmin(score))
        if score[k] < best[0]:
            best = (float(score[k]), unit, int(alive[k]))
    return best[1], best[2]


def _record(curve_file: Path, model, arch, val_samples, weights, snaps: Path, removed: int, header=False) -> None:
    widths = active_widths(model)
    row = {
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
    _save_npz(model.weights, snaps / f"removed_{removed:04d}.npz")
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


def choose_operating_point(curve: list[dict], nss_tol: float = 0.03, cc_tol: float = 0.01) -> dict:
    """The smallest model whose validation NSS and CC-to-teacher are within tolerance of the unpruned
    model's (the curve's first row)."""
    ref = curve[0]
    ok = [r for r in curve if r["NSS"] >= ref["NSS"] - nss_tol and r["CC_teacher"] >= ref["CC_teacher"] - cc_tol]
    return min(ok, key=lambda r: r["mflops"])


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a trained run folder (converters.train)")
    ap.add_argument("--shared")
    ap.add_argument("--cache")
    ap.add_argument("--target-mflops", type=float, default=15.0)
    ap.add_argument("--max-removals", type=int, help="stop after this many Fisher removals (smoke runs)")
    ap.add_argument("--beta", type=float, default=1e-4, help="loss (nats) per MFLOP saved")
    ap.add_argument("--prune-every", type=int, default=8, help="fine-tuning steps between removals")
    ap.add_argument("--eval-every", type=int, default=20, help="removals between curve points")
    ap.add_argument("--lr", type=float, default=5e-5, help="fine-tuning rate (about the end of training)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)
    setup_logging(args.run)
    tf.keras.utils.set_random_seed(args.seed)
    arch = Architecture.from_json((args.run / "architecture.json").read_text())
    model = build_student(arch)
    _load_npz(model.weights, args.run / "train_model.npz")
    data = load_training_data(paths.shared_dir(args.shared), paths.cache_dir(args.cache), args.limit)
    prune(
        model,
        arch,
        data["corpus"] + data["osie_train"],
        data["osie_val"],
        args.run,
        target_mflops=args.target_mflops,
        max_removals=args.max_removals,
        beta=args.beta,
        prune_every=args.prune_every,
        eval_every=args.eval_every,
        lr=args.lr,
        seed=args.seed,
    )
    chosen = choose_operating_point(read_curve(args.run))
    (args.run / "operating_point.json").write_text(json.dumps(chosen, indent=1))
    log.info("operating point: %s; plot %s", chosen, plot_curve(args.run, chosen))


if __name__ == "__main__":
    main()
