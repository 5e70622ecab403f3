"""``edgecrop-convert model``: a user's own saliency network to an edgecrop int8 model with a card.

    edgecrop-convert model my_net.keras -o my_net_int8.tflite --calibration photos/ [--check photos/]
        [--resize letterbox|stretch] [--mean R G B --std R G B] [--output NAME] [--kind logits|...]

Routes, each through the ecosystem's own converter: a Keras model file (.keras, .h5) and a TensorFlow
SavedModel folder go through TensorFlow's TFLiteConverter (full-integer int8, the user's photos laid out
as the runtime lays them out as its representative dataset). ONNX, PyTorch and float TFLite sources are
not converted yet (issue 29): they are refused with one line.

What the user states (flags): the layout (letterbox or stretch), the normalisation (input = (pixel - mean)
/ std per channel, pixels 0..255 RGB), which output is the map when there are several, and its kind. The
input size is the model's own (or --size when it has none). Every op of the result must be a builtin
int8 op (else one line naming them, and --kind float16 is offered); the int8 map is compared with the
float one through the runtime on --check photos (CC per photo, mean and worst); the report goes into the
card, with the source's sha256, and is printed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from edgecrop.errors import ModelError
from edgecrop.images import load_image
from edgecrop.modelfile.card import InputCard, ModelCard, OutputCard
from edgecrop.preprocess import InputSpec, OutputKind, Resize, to_input

log = logging.getLogger("converters.user_model")

KINDS = ("int8", "float16", "float32")
MIN_INT8_CC = 0.95  # below this the int8 model is refused (the report says what it was)


class ConversionError(ValueError):
    """The source cannot be converted as stated: one line for the user."""


class SourceKind(str, Enum):
    KERAS = "keras"
    SAVED_MODEL = "saved_model"


def source_kind(path: Path) -> SourceKind:
    """What ``path`` is, by its name and contents; routes not built yet are refused here."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SourceKind.SAVED_MODEL
        raise ConversionError(f"{path}: a folder without saved_model.pb (not a TensorFlow SavedModel)")
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5"):
        return SourceKind.KERAS
    if suffix in (".onnx", ".pt", ".pt2", ".pth", ".tflite"):
        raise ConversionError(f"{path}: {suffix} sources are not converted yet (Keras and SavedModel are)")
    raise ConversionError(f"{path}: not a model this converter reads (a .keras/.h5 file or a SavedModel folder)")


@dataclass(frozen=True)
class SourceSpec:
    """What the user states about their network."""

    resize: Resize = Resize.LETTERBOX
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    output: str | None = None  # the map's output name, when the model has several
    kind: OutputKind = OutputKind.SALIENCY
    size: tuple[int, int] | None = None  # (height, width) for a model whose input size is not fixed

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", Resize(self.resize))
        object.__setattr__(self, "kind", OutputKind(self.kind))
        InputCard(resize=self.resize, mean=self.mean, std=self.std)  # the card's own checks, one line each
        if self.size is not None and not (1 <= min(self.size) and max(self.size) <= 4096):
            raise ConversionError(f"--size must be HEIGHTxWIDTH from 1 to 4096, not {self.size}")


@dataclass(frozen=True)
class Network:
    """The source as one function of a [1, H, W, 3] float32 image to its [1, h, w, 1] map."""

    function: object  # a Keras model (Keras sources) or a concrete tf.function (SavedModels)
    owner: object  # what holds the function's variables (they die with it)
    height: int
    width: int
    map_height: int
    map_width: int
    output: str


def load_network(path: Path, kind: SourceKind, spec: SourceSpec) -> Network:
    """The source's map as a function of a fixed-size image; every wrong input is a ConversionError."""
    import tensorflow as tf

    try:
        if kind is SourceKind.KERAS:
            owner = tf.keras.models.load_model(path, compile=False)
            shapes = [tuple(t.shape) for t in owner.inputs]
            names = list(owner.output_names)

            def call(x):
                out = owner(x)
                return dict(zip(names, out if isinstance(out, (list, tuple)) else [out]))
        else:
            owner = tf.saved_model.load(str(path))
            if "serving_default" not in owner.signatures:
                raise ConversionError(f"{path}: the SavedModel has no serving_default signature")
            signature = owner.signatures["serving_default"]
            specs = signature.structured_input_signature[1]
            shapes = [tuple(s.shape) for s in specs.values()]

            def call(x):
                return signature(**{next(iter(specs)): x})
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a broken file makes the loader raise
        raise ConversionError(f"{path}: cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] != 3:
        raise ConversionError(f"{path}: the input is not one image of shape [1, H, W, 3] (inputs {shapes})")
    height, width = shapes[0][1], shapes[0][2]
    if height is None or width is None:
        if spec.size is None:
            raise ConversionError(f"{path}: the input size is not fixed: give it with --size HEIGHTxWIDTH")
        height, width = spec.size
    elif spec.size is not None and tuple(spec.size) != (height, width):
        raise ConversionError(f"{path}: the model takes {height}x{width}, not the --size {spec.size}")

    outputs = call(tf.zeros((1, height, width, 3), tf.float32))
    if spec.output is not None and spec.output not in outputs:
        raise ConversionError(f"{path}: no output named {spec.output!r} (outputs: {', '.join(outputs)})")
    if spec.output is None and len(outputs) > 1:
        raise ConversionError(f"{path}: {len(outputs)} outputs ({', '.join(outputs)}): say which is the map")
    name = spec.output or next(iter(outputs))
    shape = tuple(outputs[name].shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] != 1):
        raise ConversionError(f"{path}: output {name!r} of shape {list(shape)} is not a single-channel map")
    map_h, map_w = int(shape[1]), int(shape[2])

    if kind is SourceKind.KERAS:  # a Keras model of the one input and the one map (its own converter path)
        image = tf.keras.Input((height, width, 3), batch_size=1)
        out = owner(image)
        out = out[names.index(name)] if isinstance(out, (list, tuple)) else out
        function: object = tf.keras.Model(image, tf.keras.layers.Reshape((map_h, map_w, 1))(out))
    else:

        @tf.function(input_signature=[tf.TensorSpec((1, height, width, 3), tf.float32)])
        def saliency(x):
            return tf.reshape(call(x)[name], (1, map_h, map_w, 1))

        function = saliency.get_concrete_function()
    return Network(function, owner, height, width, map_h, map_w, name)


def inputs(photos: list[Path], network: Network, spec: SourceSpec) -> list[np.ndarray]:
    """The photos as the model's inputs, laid out and normalised as the runtime will feed them."""
    layout = InputSpec(network.height, network.width, network.map_height, network.map_width, spec.resize)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    out = []
    for p in photos:
        pixels, _ = to_input(load_image(p, min_size=(network.width, network.height)).rgb, layout)
        out.append(((pixels.astype(np.float32) - mean) / std)[None])
    return out


def convert(network: Network, kind: str, calibration: list[np.ndarray]) -> bytes:
    """TFLite bytes through TensorFlow's converter: full-integer int8, float16 or float32."""
    import tensorflow as tf

    from .export import configured

    if isinstance(network.function, tf.keras.Model):
        conv = tf.lite.TFLiteConverter.from_keras_model(network.function)
    else:
        conv = tf.lite.TFLiteConverter.from_concrete_functions([network.function], network.owner)
    try:
        return configured(conv, kind, calibration).convert()
    except Exception as exc:  # noqa: BLE001 - the converter's errors are long: the gist, in one line
        first = next((ln for ln in str(exc).splitlines() if "error" in ln.lower()), str(exc)[:200])
        hint = " (try --kind float16)" if kind == "int8" else ""
        raise ConversionError(f"TensorFlow cannot convert it to {kind}{hint}: {first.strip()[:300]}") from None


def card(source: Path, network: Network, spec: SourceSpec, kind: str, checks: dict) -> ModelCard:
    return ModelCard(
        name=source.stem,
        summary=f"{source.name}, converted by edgecrop-convert model, {kind}",
        architecture=f"the user's network ({source.name}); map output {network.output!r}",
        input=InputCard(resize=spec.resize, mean=spec.mean, std=spec.std, height=network.height, width=network.width),
        output=OutputCard(
            kind=spec.kind,
            stride=max(1, round(network.height / network.map_height)),
            map=(network.map_height, network.map_width),
        ),
        quantization=kind,
        checks=checks,
    )


def sha256(path: Path) -> str:
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


def convert_user_model(
    source: Path, spec: SourceSpec, kind: str, calibration: list[Path], check: list[Path]
) -> tuple[bytes, dict]:
    """The converted model (card embedded) and its report; ConversionError for anything wrong."""
    from .edgetpu import edgetpu_report
    from .export import check_int8
    from .tflite_edit import embed_card

    route = source_kind(source)
    network = load_network(source, route, spec)
    examples = inputs(calibration, network, spec) if kind == "int8" else []
    blob = convert(network, kind, examples)
    checks: dict = {
        "source": source.name,
        "source_sha256": sha256(source),
        "route": f"{route.value} -> TensorFlow TFLiteConverter",
        "input": [network.height, network.width],
        "map": [network.map_height, network.map_width],
    }
    if kind == "int8":
        problems = check_int8(blob)
        if problems:
            raise ConversionError(f"not every op is a builtin int8 op ({'; '.join(problems[:4])}): try --kind float16")
        checks["calibration_photos"] = len(calibration)
        reference = embed_card(convert(network, "float32", []), card(source, network, spec, "float32", {}))
        plain = embed_card(blob, card(source, network, spec, kind, {}))
        ccs = map_ccs(plain, reference, check)
        checks |= {"check_photos": len(check), "int8_vs_float32_cc_mean": float(np.mean(ccs))}
        checks["int8_vs_float32_cc_worst"] = float(np.min(ccs))
        checks["edgetpu"] = edgetpu_report(blob)[1]
        if checks["int8_vs_float32_cc_mean"] < MIN_INT8_CC:
            raise ConversionError(
                f"the int8 map agrees with the float one at CC {checks['int8_vs_float32_cc_mean']:.3f} only "
                f"(at least {MIN_INT8_CC}): try --kind float16, or calibration photos like the ones it will see"
            )
    try:
        return embed_card(blob, card(source, network, spec, kind, checks)), checks
    except ModelError as exc:
        raise ConversionError(str(exc)) from None
