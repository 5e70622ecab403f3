"""The float-TFLite route of ``edgecrop-convert model`` (and the PyTorch and ONNX routes' float16 and
--keep-float conversions, from litert-torch's float32 TFLite).

A float TFLite file (float32, or float16 weights) is reduced to its image input and the chosen map
(``tflite_edit.float_graph``), then quantised by Google's AI Edge Quantizer (``ai-edge-quantizer``: static
int8 weights and activations calibrated on the user's photos, or float16 weights by float casting): the
TensorFlow converter cannot read a .tflite, and AI Edge Quantizer is LiteRT's own tool for one. The
QUANTIZE/DEQUANTIZE pair at the edges is then dropped, so a model that is int8 throughout takes and
gives int8 as TensorFlow's full-integer models do.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tflite_edit import bgr_input, float_graph, integer_io, operators, tensor_index
from .user_source import ConversionError, Source, SourceSpec


def quantised(float32: bytes, kind: str, calibration: list[np.ndarray], keep_float: str | None = None) -> bytes:
    """``float32`` (one signature, one image input) as ``kind``: int8 calibrated on ``calibration`` (the ops
    whose tensor names match ``keep_float`` left in float), float16 weights, or itself."""
    if kind == "float32":
        return float32
    from ai_edge_quantizer import qtyping, quantizer, recipe

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # its size summary is not ours
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": calibration needs them
        if kind == "float16":  # weights cast to float16, computation in float32
            q = quantizer.Quantizer(bytearray(float32))
            weights = qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
            config = qtyping.OpQuantizationConfig(
                weight_tensor_config=weights, compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True
            )
            q.update_quantization_recipe(
                regex=".*",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
                op_config=config,
            )
            return bytes(q.quantize().quantized_model)
        if not calibration:
            raise ConversionError("int8 needs calibration photos")
        q = quantizer.Quantizer(bytearray(float32), recipe.static_wi8_ai8())
        if keep_float is not None:
            q.update_quantization_recipe(
                regex=keep_float,
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE,
                op_config=qtyping.OpQuantizationConfig(),
            )
        (name,) = _input_names(float32)
        result = q.calibrate({"serving_default": [{name: x} for x in calibration]}, num_threads=2)
        return integer_io(bytes(q.quantize(result).quantized_model))


def _input_names(data: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return list(Interpreter(model_content=data).get_signature_list()["serving_default"]["inputs"])


@dataclass(frozen=True)
class _Float:
    float32: bytes
    keep_float: str | None

    def tflite(self, kind: str, calibration: list[np.ndarray]) -> bytes:
        return quantised(self.float32, kind, calibration, self.keep_float)


def reading_rgb(data: bytes, origin: str) -> bytes:
    """A model that reads BGR made to read RGB (``tflite_edit.bgr_input``); its refusal is one line."""
    try:
        return bgr_input(data)
    except ValueError as exc:
        raise ConversionError(f"{origin}: --channels BGR: {exc} (reverse the channels in the network)") from None


def float_source(float32: bytes, route: str, origin: str, spec: SourceSpec) -> Source:
    """A Source from a float32 TFLite of one [1, H, W, 3] input and one map output (``origin`` names the
    model in errors); a BGR network made to read RGB."""
    from ai_edge_litert.interpreter import Interpreter

    if spec.channels == "BGR":
        float32 = reading_rgb(float32, origin)

    try:
        interpreter = Interpreter(model_content=float32)
    except Exception as exc:  # noqa: BLE001 - LiteRT's reasons are long: the gist
        raise ConversionError(f"{origin}: LiteRT cannot load it ({str(exc).splitlines()[0][:200]})") from None
    (image,) = interpreter.get_input_details()
    shape = [int(v) for v in image["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or image["dtype"] != np.float32:
        raise ConversionError(f"{origin}: the input is not one float image of shape [1, H, W, 3] (it is {shape})")
    (out,) = interpreter.get_output_details()
    map_shape = [int(v) for v in out["shape"]]
    if len(map_shape) not in (3, 4) or map_shape[0] != 1 or (len(map_shape) == 4 and map_shape[3] != 1):
        raise ConversionError(f"{origin}: the map {out['name']!r} of shape {map_shape} is not a single-channel map")
    tflite = _Float(float32, spec.keep_float).tflite
    return Source(shape[1], shape[2], map_shape[1], map_shape[2], out["name"], route, tflite)


def load_tflite(path: Path, spec: SourceSpec) -> Source:
    """A float TFLite file's map as a Source (int8 by AI Edge Quantizer)."""
    from ai_edge_litert.interpreter import Interpreter

    data = path.read_bytes()
    try:
        interpreter = Interpreter(model_content=data)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: LiteRT's reason, short
        raise ConversionError(
            f"{path}: not a TFLite model LiteRT can load ({str(exc).splitlines()[0][:200]})"
        ) from None
    images = [d for d in interpreter.get_input_details() if len(d["shape"]) == 4 and d["shape"][-1] == 3]
    if len(images) != 1:
        shapes = [list(d["shape"]) for d in interpreter.get_input_details()]
        raise ConversionError(f"{path}: the input is not one image of shape [1, H, W, 3] (inputs {shapes})")
    if any("INT8" in ins + outs for _, ins, outs in operators(data)):
        raise ConversionError(f"{path}: already quantised: edgecrop crops with it as it is (edgecrop crop --model)")
    outputs = [d["name"] for d in interpreter.get_output_details()]
    name = spec.output if spec.output is not None else spec.map_output(str(path), outputs)  # or any tensor
    try:
        output = tensor_index(data, name)
    except KeyError:
        raise ConversionError(f"{path}: no tensor named {name!r} (outputs: {', '.join(outputs)})") from None
    if spec.size is not None and tuple(spec.size) != (int(images[0]["shape"][1]), int(images[0]["shape"][2])):
        raise ConversionError(f"{path}: the model takes {list(images[0]['shape'][1:3])}, not the --size {spec.size}")
    return float_source(float_graph(data, output), "float TFLite -> AI Edge Quantizer", str(path), spec)
