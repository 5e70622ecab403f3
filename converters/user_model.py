"""``edgecrop-convert model``: a user's own saliency network to an edgecrop int8 model with a card.

    edgecrop-convert model SOURCE -o my_net_int8.tflite --calibration photos/ [--check photos/]
        [--resize letterbox|stretch] [--mean R G B --std R G B] [--map-output NAME] [--map-kind ...]
        [--size HxW] [--fixations fixations.json] [--allow-float]

One pipeline, whatever the source: load it by its route (``user_tensorflow``: Keras, SavedModel;
``user_torch``: PyTorch, ONNX; ``user_tflite``: float TFLite), each through the ecosystem's own converter,
to a ``Source``; convert it (int8 calibrated on the user's photos laid out and normalised as the runtime
will feed them); check that every op is a builtin int8 op (else one line naming them, offering float16 or
``--allow-float``); compare the int8 map with the float32 one through the runtime on --check photos (CC per
photo, mean and worst); run the Edge TPU pre-check; with --fixations, score the crops and maps as
``converters.evaluate`` does; write the report, with the source's sha256, into the card.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from enum import Enum
from pathlib import Path

import numpy as np

from edgecrop.errors import ModelError
from edgecrop.images import load_image
from edgecrop.modelfile.card import InputCard, ModelCard, OutputCard
from edgecrop.preprocess import InputSpec, to_input

from .user_source import ConversionError, Source, SourceSpec

MIN_INT8_CC = 0.95  # below this the int8 model is refused (the report says what it was)


class SourceKind(str, Enum):
    KERAS = "keras"
    SAVED_MODEL = "saved_model"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    TFLITE = "tflite"


def source_kind(source: str) -> SourceKind:
    """What ``source`` is, by its name and contents (before any heavy import)."""
    from .user_torch import TORCH_SUFFIXES, is_callable_spec

    path = Path(source)
    if is_callable_spec(source) and not path.exists():
        return SourceKind.PYTORCH
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SourceKind.SAVED_MODEL
        raise ConversionError(f"{path}: a folder without saved_model.pb (not a TensorFlow SavedModel)")
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    kinds = {
        ".keras": SourceKind.KERAS,
        ".h5": SourceKind.KERAS,
        ".onnx": SourceKind.ONNX,
        ".tflite": SourceKind.TFLITE,
    }
    kinds |= dict.fromkeys(TORCH_SUFFIXES, SourceKind.PYTORCH)
    if path.suffix.lower() in kinds:
        return kinds[path.suffix.lower()]
    raise ConversionError(
        f"{path}: not a model this converter reads (.keras/.h5, a SavedModel folder, .onnx, .pt/.pt2/.pth, "
        ".tflite, or package.module:function)"
    )


def load_source(source: str, spec: SourceSpec) -> Source:
    """The source loaded by its route."""
    kind = source_kind(source)
    if kind in (SourceKind.KERAS, SourceKind.SAVED_MODEL):
        from .user_tensorflow import load_tensorflow

        return load_tensorflow(Path(source), spec)
    if kind is SourceKind.TFLITE:
        from .user_tflite import load_tflite

        return load_tflite(Path(source), spec)
    from .user_torch import load_torch

    return load_torch(source, spec)


def inputs(photos: list[Path], source: Source, spec: SourceSpec) -> list[np.ndarray]:
    """The photos as the model's inputs, laid out and normalised as the runtime will feed them."""
    layout = InputSpec(source.height, source.width, source.map_height, source.map_width, spec.resize)
    mean, std = (np.asarray(v, np.float32) for v in spec.runtime_normalisation())
    out = []
    for p in photos:
        pixels, _ = to_input(load_image(p, min_size=(source.width, source.height)).rgb, layout)
        out.append(((pixels.astype(np.float32) - mean) / std)[None])
    return out


def card(name: str, source: Source, spec: SourceSpec, kind: str, checks: dict) -> ModelCard:
    return ModelCard(
        name=Path(name).stem,
        summary=f"{Path(name).name}, converted by edgecrop-convert model, {kind}",
        architecture=f"the user's network ({Path(name).name}); map output {source.output!r}",
        input=InputCard(spec.resize, *spec.runtime_normalisation(), height=source.height, width=source.width),
        output=OutputCard(
            kind=spec.kind,
            temperature=spec.temperature,
            stride=max(1, round(source.height / source.map_height)),
            map=(source.map_height, source.map_width),
        ),
        quantization=kind,
        checks=checks,
    )


def sha256(source: str) -> str:
    """The source's checksum (a folder's files in name order; for module:callable, nothing to sum)."""
    path = Path(source)
    if not path.exists():
        return "none: a Python callable"
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def map_ccs(a: bytes, b: bytes, photos: list[Path]) -> list[float]:
    """CC of the two models' probability maps on each photo, through the runtime."""
    from edgecrop import Cropper

    from .metrics import cc

    with Cropper.from_model(a, num_threads=2) as ca, Cropper.from_model(b, num_threads=2) as cb:
        return [float(cc(ca.saliency(p), cb.saliency(p))) for p in photos]


def left_in_float(blob: bytes) -> dict[str, int]:
    """Ops of an int8 model that compute in float (the QUANTIZE/DEQUANTIZE around them not counted)."""
    from .tflite_edit import check_int8

    names = [p.split(":")[0] for p in check_int8(blob)]
    return dict(Counter(n for n in names if n not in ("QUANTIZE", "DEQUANTIZE")))


def fixation_scores(blob: bytes, fixations: Path) -> dict:
    """The converted model's crops and maps scored on the user's fixations as converters.evaluate scores
    them: the crop score against the centre crop (0 = centre crop, 1 = the best window) with its 95%
    interval, and the maps' NSS and CC."""
    from .evaluate import dataset_photos, evaluate_model

    try:
        photos = dataset_photos(fixations)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a file not in the layout
        raise ConversionError(f"--fixations {fixations}: not a fixations.json beside images/ ({exc})") from None
    if not photos:
        raise ConversionError(f"--fixations {fixations}: no photo with fixations")
    result = evaluate_model(blob, {"fixations": photos})["sets"]["fixations"]
    return {
        "fixation_photos": len(photos),
        "crop_score_vs_centre": result["mean_normalised"],
        "crop_score_ci95": [round(v, 3) for v in result["mean_ci95"]],
        "map_nss": result["maps"]["NSS"],
        "map_cc": result["maps"]["CC"],
    }


def convert_user_model(
    source: str,
    spec: SourceSpec,
    kind: str,
    calibration: list[Path],
    check: list[Path],
    fixations: Path | None = None,
) -> tuple[bytes, dict]:
    """The converted model (card embedded) and its report; ConversionError for anything wrong."""
    from .edgetpu import edgetpu_problems
    from .tflite_edit import embed_card

    started = time.perf_counter()
    loaded = load_source(source, spec)
    blob = loaded.tflite(kind, inputs(calibration, loaded, spec) if kind == "int8" else [])
    checks: dict = {
        "source": Path(source).name,
        "source_sha256": sha256(source),
        "route": loaded.route,
        "input": [loaded.height, loaded.width],
        "map": [loaded.map_height, loaded.map_width],
        "source_channels": spec.channels,
    }
    if spec.keep_float is not None:
        checks["kept_float"] = spec.keep_float
    try:  # with its card (the runtime's post-processing) for the checks; the report's card comes last
        carded = embed_card(blob, card(source, loaded, spec, kind, {}))
    except ModelError as exc:
        raise ConversionError(str(exc)) from None
    if kind == "int8":
        floats = left_in_float(blob)
        if floats and not spec.allow_float:
            listed = ", ".join(f"{name} x{n}" for name, n in floats.items())
            raise ConversionError(
                f"not every op is a builtin int8 op ({listed} stay float): try --kind float16, or --allow-float"
            )
        checks["left_in_float"] = floats or "none"
        checks["calibration_photos"] = len(calibration)
        reference = embed_card(loaded.tflite("float32", []), card(source, loaded, spec, "float32", {}))
        try:
            ccs = map_ccs(carded, reference, check)
        except ModelError as exc:
            raise ConversionError(f"the converted model does not run: {exc}") from None
        checks |= {"check_photos": len(check), "int8_vs_float32_cc_mean": float(np.mean(ccs))}
        checks["int8_vs_float32_cc_worst"] = float(np.min(ccs))
        problems = edgetpu_problems(blob)
        checks["edgetpu"] = f"{len(problems)} problems, first: {problems[0]}" if problems else "maps whole"
        if checks["int8_vs_float32_cc_mean"] < MIN_INT8_CC:
            raise ConversionError(
                f"the int8 map agrees with the float one at CC {checks['int8_vs_float32_cc_mean']:.3f} only "
                f"(at least {MIN_INT8_CC}): try --kind float16, or calibration photos like the ones it will see"
            )
    try:
        if fixations is not None:
            checks |= fixation_scores(carded, fixations)
        checks["conversion_seconds"] = round(time.perf_counter() - started, 1)
        return embed_card(blob, card(source, loaded, spec, kind, checks)), checks
    except ModelError as exc:
        raise ConversionError(str(exc)) from None
