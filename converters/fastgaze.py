"""Twitter's FastGaze network (``fastgaze.vxm``) as a Keras model and as edgecrop TFLite models.

The .vxm file gives the layers and weights (``converters.vxm``) but not how to run them: the input
normalisation, the activation behind code 4, the pooling behind code 2, whether kernels are applied
flipped (true convolution, as Theano/Torch-era code did) or not, and whether the output is a log-density
or a saliency map. ``python -m converters.fastgaze --search`` tries the plausible candidates and ranks them by
NSS on the OSIE validation split; the winner is ``DEFAULT_VARIANT``. Candidates and their scores:
``converters/FASTGAZE.md``.

    edgecrop-convert fastgaze ../shared/teachers/fastgaze/fastgaze.vxm -o fastgaze_int8.tflite
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgecrop.images import load_image
from edgecrop.modelfile.card import InputCard, ModelCard, OutputCard
from edgecrop.postprocess import to_probability
from edgecrop.preprocess import InputSpec, OutputKind, Resize, content_cells, to_input
from edgecrop.search import Policy

from . import paths
from .vxm import VxmModel, read_vxm

log = logging.getLogger("converters.fastgaze")

STRIDE = 16
# name -> (per-channel mean, per-channel std) on 0..255 RGB pixels, and whether the network wants BGR
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...], bool]] = {
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0), False),
    "raw255": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),
    "symmetric": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), False),
    "caffe_bgr": ((123.68, 116.779, 103.939), (1.0, 1.0, 1.0), True),
}
ACTIVATIONS_4 = ("prelu", "elu", "relu")  # what code 4 with its alpha may be
POOLS = ("max", "avg")
OUTPUTS = ("logits", "saliency")
REFINE_SIZES = (640, 800, 1024, 1280)
INT8_MIN_CC = 0.98  # int8 map vs float32 map, mean CC on the check photos


@dataclass(frozen=True)
class Variant:
    """One reading of what the .vxm file leaves unsaid."""

    normalisation: str = "caffe_bgr"
    act4: str = "prelu"
    pool: str = "max"
    flip: bool = False
    transpose: bool = False  # kernels stored as out x in x kw x kh
    output: str = "logits"
    size: int = 1024  # square letterbox input, pixels (a multiple of 16)

    def spec(self, stride: int = STRIDE) -> InputSpec:
        return InputSpec(self.size, self.size, self.size // stride, self.size // stride, Resize.LETTERBOX)

    def label(self) -> str:
        flips = ("flip" if self.flip else "noflip") + ("+T" if self.transpose else "")
        return f"{self.normalisation}/{self.act4}/{self.pool}/{flips}/{self.output}/{self.size}"


DEFAULT_VARIANT = Variant()


def stride_of(vxm: VxmModel) -> int:
    """Output stride: each 2x2 pooling halves the map."""
    return 2 ** sum(layer.kind == "pool" for layer in vxm.layers)


def gaussian_kernel(size: int, std: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * std * std))
    return (k / k.sum()).astype(np.float32)


def build_keras(vxm: VxmModel, variant: Variant, size: int | None = None):
    """The Keras network for one variant; input is the normalised image (``(pixel - mean) / std``)."""
    import tensorflow as tf

    layers = tf.keras.layers
    bgr = NORMALISATIONS[variant.normalisation][2]
    inputs = tf.keras.Input((size, size, 3), name="image")
    x = inputs
    first = True
    for layer in vxm.layers:
        if layer.kind == "conv":
            weights = layer.need("weights")
            w = weights[:, ::-1] if (first and bgr) else weights  # BGR network: reorder input channels
            if variant.flip:
                w = w[:, :, ::-1, ::-1]
            if variant.transpose:
                w = w.transpose(0, 1, 3, 2)
            first = False
            k = w.shape[2]
            conv = layers.Conv2D(w.shape[0], k, padding="same", name=f"conv{layer.index}")
            x = conv(x)
            conv.set_weights([np.ascontiguousarray(w.transpose(2, 3, 1, 0)), layer.need("bias")])
            x = _activation(layer, variant)(x)
        elif layer.kind == "pool":
            pool = layers.MaxPooling2D if variant.pool == "max" else layers.AveragePooling2D
            x = pool(2, name=f"pool{layer.index}")(x)
        else:
            size = layer.need("kernel_size")
            g = gaussian_kernel(size, layer.need("std"))
            for axis, shape in (("v", (size, 1)), ("h", (1, size))):
                blur = layers.Conv2D(1, shape, padding="same", use_bias=False, trainable=False, name=f"blur{axis}")
                x = blur(x)
                blur.set_weights([g.reshape(*shape, 1, 1)])
    return tf.keras.Model(inputs, x, name="fastgaze")


def _activation(layer, variant: Variant):
    import tensorflow as tf

    name = f"act{layer.index}"
    if layer.act == 1:
        return tf.keras.layers.ReLU(name=name)
    if layer.act != 4:
        raise ValueError(f"layer {layer.index}: unknown activation code {layer.act}")
    alpha = 0.0 if layer.alpha is None else layer.alpha
    if variant.act4 == "prelu":
        return tf.keras.layers.LeakyReLU(negative_slope=alpha, name=name)
    if variant.act4 == "elu":
        return tf.keras.layers.ELU(alpha=alpha, name=name)
    return tf.keras.layers.ReLU(name=name)


def normalised_input(pixels: np.ndarray, variant: Variant) -> np.ndarray:
    """(pixel - mean) / std as float32, batch of one: what the Keras model and calibration take."""
    mean, std, _ = NORMALISATIONS[variant.normalisation]
    return ((pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))[None]


def model_card(vxm: VxmModel, variant: Variant, kind: str, checks: dict | None = None) -> ModelCard:
    mean, std, bgr = NORMALISATIONS[variant.normalisation]
    spec = variant.spec(stride_of(vxm))
    return ModelCard(
        name=f"fastgaze_{kind}",
        summary=f"Twitter's FastGaze (image-crop-analysis release), converted by edgecrop, {kind}",
        licence="Apache-2.0 (Twitter); weights read from the user's fastgaze.vxm, not distributed by edgecrop",
        architecture="Fisher-pruned VGG-like: ten 3x3 convs in five blocks, 1x1 readout, Gaussian blur\n"
        + vxm.describe(),
        input=InputCard(
            height=spec.height,
            width=spec.width,
            resize=spec.resize,
            mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in std),  # type: ignore[arg-type]
            channels="RGB (the network's BGR order is folded into its first layer)" if bgr else "RGB",
        ),
        output=OutputCard(
            kind=OutputKind(variant.output),
            temperature=1.0,
            stride=stride_of(vxm),
            map=(spec.map_height, spec.map_width),
        ),
        recommended_policy=Policy.TWITTER,
        quantization=kind,
        checks=checks or {},
        extra={"variant": asdict(variant)},
        limits="Twitter's own audit found this model's crops favoured some faces over others: show the map "
        "and let people choose.",
    )


# ---- choosing the variant by evidence -------------------------------------------------------------


def score_variants(vxm: VxmModel, variants: list[Variant], photos: list[Path], fixations: dict) -> list[dict]:
    """NSS, CC and AUC-Judd on OSIE photos for every variant (Keras float, the runtime's letterbox)."""
    from tqdm import tqdm

    from .metrics import all_metrics, ground_truths

    truths = ground_truths([p.name for p in photos], photos[0].parent, fixations)
    images = {p.name: load_image(p) for p in photos}
    rows = []
    nets = sorted({replace(v, output="logits") for v in variants}, key=lambda v: v.label())
    for net_variant in tqdm(nets, desc="fastgaze variants"):
        model = build_keras(vxm, net_variant, net_variant.size)
        raw = {}
        for name, image in images.items():
            pixels, place = to_input(image.rgb, net_variant.spec(stride_of(vxm)))
            out = model(normalised_input(pixels, net_variant), training=False).numpy()[0, :, :, 0]
            raw[name] = content_cells(out, place)
        for v in [v for v in variants if replace(v, output="logits") == net_variant]:
            per = [all_metrics(to_probability(raw[n], v.output), truths[n]) for n in images]
            row = {k: float(np.mean([r[k] for r in per])) for k in ("NSS", "CC", "AUC-Judd")}
            rows.append({"variant": v, **row})
            log.info("%-48s NSS %.3f CC %.3f AUC %.3f", v.label(), row["NSS"], row["CC"], row["AUC-Judd"])
    return sorted(rows, key=lambda r: -r["NSS"])


def search(vxm: VxmModel, shared: Path, coarse: int, out: Path) -> list[dict]:
    """Every combination on ``coarse`` photos, then the best five at three sizes on all 100, then the
    winner with transposed kernels and at larger sizes."""
    from .data import load_fixations, photo_sets

    val = photo_sets(shared)["osie_val"]
    fixations = load_fixations(shared / "data" / "osie")
    grid = [
        Variant(n, a, p, f, output=o, size=256)
        for n, a, p, f, o in itertools.product(NORMALISATIONS, ACTIVATIONS_4, POOLS, (False, True), OUTPUTS)
    ]
    coarse_rows = score_variants(vxm, grid, val[:coarse], fixations)
    finalists = [replace(r["variant"], size=s) for r in coarse_rows[:5] for s in (256, 384, 512)]
    final_rows = score_variants(vxm, finalists, val, fixations)
    best = final_rows[0]["variant"]
    refine = [replace(best, transpose=True)] + [replace(best, size=s) for s in REFINE_SIZES if s > best.size]
    final_rows = sorted(final_rows + score_variants(vxm, refine, val, fixations), key=lambda r: -r["NSS"])
    best = final_rows[0]["variant"]  # at its best size, the other activations and kernel orientation again
    others = [replace(best, act4=a) for a in ACTIVATIONS_4 if a != best.act4] + [replace(best, flip=not best.flip)]
    final_rows = sorted(final_rows + score_variants(vxm, others, val, fixations), key=lambda r: -r["NSS"])
    report = {
        "coarse": {"photos": coarse, "rows": [_row(r) for r in coarse_rows]},
        "final": {"photos": len(val), "rows": [_row(r) for r in final_rows]},
    }
    out.write_text(json.dumps(report, indent=1))
    return final_rows


def _row(r: dict) -> dict:
    return {"variant": r["variant"].label(), **{k: round(v, 4) for k, v in r.items() if k != "variant"}}


# ---- conversion ----------------------------------------------------------------------------------


def convert_fastgaze(
    vxm_path: Path, kinds: tuple[str, ...], calibration_photos: list[Path], check_photos: list[Path], variant: Variant
) -> dict[str, bytes]:
    """TFLite bytes per kind with the card embedded; int8 is checked against float32 (mean CC >= 0.98)."""
    from .export import convert, map_agreement
    from .tflite_edit import check_int8, embed_card, operators

    vxm = read_vxm(vxm_path)
    model = build_keras(vxm, variant, variant.size)
    spec = variant.spec(stride_of(vxm))
    calibration = [normalised_input(to_input(load_image(p).rgb, spec)[0], variant) for p in calibration_photos]
    wanted = set(kinds) | ({"float32"} if "int8" in kinds else set())
    blobs = {k: convert(model, k, calibration) for k in sorted(wanted)}
    checks: dict = {}
    if "int8" in blobs:
        problems = check_int8(blobs["int8"])
        if problems:
            raise RuntimeError("int8 FastGaze is not fully integer:\n" + "\n".join(problems))
        plain = {k: embed_card(b, model_card(vxm, variant, k)) for k, b in blobs.items()}
        checks["int8_vs_float32_cc"] = map_agreement(plain["int8"], plain["float32"], check_photos)
        checks["check_photos"] = len(check_photos)
        checks["int8_ops"] = sorted({o[0] for o in operators(blobs["int8"])})
        log.info("int8 vs float32 mean CC on %d photos: %.4f", len(check_photos), checks["int8_vs_float32_cc"])
        if checks["int8_vs_float32_cc"] < INT8_MIN_CC:
            raise RuntimeError(f"int8 map agreement {checks['int8_vs_float32_cc']:.4f} < {INT8_MIN_CC}")
    return {k: embed_card(blobs[k], model_card(vxm, variant, k, checks)) for k in kinds}


def default_photos(shared: Path, calibration: int, check: int) -> tuple[list[Path], list[Path]]:
    """Calibration photos from the distillation corpus; check photos from OSIE validation."""
    from .data import photo_sets

    sets = photo_sets(shared)
    corpus = sets["corpus"]
    return corpus[:: max(1, len(corpus) // calibration)][:calibration], sets["osie_val"][:check]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vxm", type=Path, nargs="?", help="fastgaze.vxm (default: <shared>/teachers/fastgaze/)")
    ap.add_argument("--shared")
    ap.add_argument("--search", action="store_true", help="rank the candidate readings on OSIE validation")
    ap.add_argument("--coarse", type=int, default=30, help="photos for the first round of the search")
    ap.add_argument("--out", type=Path, default=paths.cache_dir() / "fastgaze_search.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shared = paths.shared_dir(args.shared)
    vxm = read_vxm(args.vxm or shared / "teachers" / "fastgaze" / "fastgaze.vxm")
    print(vxm.describe())
    if args.search:
        t0 = time.time()
        rows = search(vxm, shared, args.coarse, args.out)
        for r in rows:
            print(f"{r['variant'].label():<48} NSS {r['NSS']:.3f} CC {r['CC']:.3f} AUC-Judd {r['AUC-Judd']:.3f}")
        print(f"search took {time.time() - t0:.0f} s; report in {args.out}")
    return 0


if __name__ == "__main__":
    main()
