"""A saliency model: one TFLite interpreter, its model card, and the tensor plumbing around it.

Quantization (scale, zero point, dtype) is read from the model, so float, int8 and uint8 models run
through the same code. One interpreter must never be used by two threads at once: every call holds a
lock, and results are copies, never views into interpreter memory.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from .backend import get_backend, load_delegate
from .preprocess import InputSpec
from .tflite_metadata import ModelFormatError, read_metadata

CARD_METADATA_NAME = "edgecrop_model_card"
ModelSource = Union[str, os.PathLike, bytes, bytearray]


class ModelError(ValueError):
    """A model file that cannot be used (missing, not TFLite, unexpected tensors)."""


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int
    dtype: np.dtype

    @property
    def quantized(self) -> bool:
        return self.dtype in (np.dtype(np.int8), np.dtype(np.uint8)) and self.scale > 0


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a model, from its card and its tensors."""

    name: str
    spec: InputSpec
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_kind: str  # logits | probability | saliency
    temperature: float
    input_quant: Quantization
    output_quant: Quantization
    card: dict[str, Any] = field(default_factory=dict)


def _quant(detail: dict) -> Quantization:
    scale, zero = detail.get("quantization", (0.0, 0))
    return Quantization(float(scale), int(zero), np.dtype(detail["dtype"]))


class SaliencyModel:
    """Run a .tflite saliency model given as a path or bytes."""

    def __init__(
        self,
        model: ModelSource,
        *,
        num_threads: int | None = None,
        delegate: str | None = None,
        delegate_options: dict[str, str] | None = None,
        name: str | None = None,
    ):
        data, name = _read_model(model, name)
        try:
            metadata = read_metadata(data)
        except ModelFormatError as exc:
            raise ModelError(f"{name}: {exc}") from exc
        card = json.loads(metadata[CARD_METADATA_NAME]) if CARD_METADATA_NAME in metadata else {}
        delegates = [load_delegate(delegate, delegate_options)] if delegate else None
        self.delegate = delegate
        try:
            self._interpreter = get_backend().interpreter_class(
                model_content=data, num_threads=num_threads, experimental_delegates=delegates
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{name}: the TFLite runtime cannot load it ({exc})") from exc
        self._input = _pick_input(self._interpreter.get_input_details(), name)
        self._output = _pick_output(self._interpreter.get_output_details(), card, name)
        self.info = _model_info(name, card, self._input, self._output)
        self._lut = _input_lut(self.info)
        self._lock = threading.Lock()

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Raw output map (float32, map_height x map_width) for a uint8 HxWx3 input array."""
        spec = self.info.spec
        if pixels.shape != (spec.height, spec.width, 3) or pixels.dtype != np.uint8:
            raise ValueError(f"expected uint8 array of shape {(spec.height, spec.width, 3)}")
        tensor = np.empty(pixels.shape, dtype=self._lut.dtype)
        for c in range(3):
            tensor[..., c] = self._lut[c][pixels[..., c]]
        with self._lock:
            if self._interpreter is None:
                raise RuntimeError("model is closed")
            self._interpreter.set_tensor(self._input["index"], tensor[None])
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._output["index"])  # a copy
        out = out.reshape(spec.map_height, spec.map_width)
        q = self.info.output_quant
        if q.quantized:
            return ((out.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)
        return out.astype(np.float32)

    def close(self) -> None:
        with self._lock:
            self._interpreter = None

    def __enter__(self) -> SaliencyModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_model(model: ModelSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), name or f"<model, {len(model)} bytes>"
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return path.read_bytes(), name or str(path)


def _pick_input(details: list[dict], name: str) -> dict:
    for d in details:
        if len(d["shape"]) == 4 and d["shape"][-1] == 3:
            return d
    raise ModelError(f"{name}: no image input of shape [1, H, W, 3]")


def _pick_output(details: list[dict], card: dict, name: str) -> dict:
    wanted = card.get("output", {}).get("name")
    for d in details:
        if (wanted is None or d["name"] == wanted) and len(d["shape"]) >= 3:
            return d
    raise ModelError(f"{name}: no spatial output map of shape [1, h, w(, 1)]")


def _model_info(name: str, card: dict, input_d: dict, output_d: dict) -> ModelInfo:
    _, height, width, _ = (int(v) for v in input_d["shape"])
    out_shape = [int(v) for v in output_d["shape"]]
    map_h, map_w = out_shape[1], out_shape[2]
    if np.prod(out_shape) != map_h * map_w:
        raise ModelError(f"{name}: output {out_shape} is not a single-channel map")
    inp = card.get("input", {})
    out = card.get("output", {})
    spec = InputSpec(height, width, map_h, map_w, inp.get("resize", "stretch"))
    return ModelInfo(
        name=card.get("name", name),
        spec=spec,
        mean=tuple(float(v) for v in inp.get("mean", (0.0, 0.0, 0.0))),
        std=tuple(float(v) for v in inp.get("std", (255.0, 255.0, 255.0))),
        output_kind=out.get("kind", "saliency"),
        temperature=float(out.get("temperature", 1.0)),
        input_quant=_quant(input_d),
        output_quant=_quant(output_d),
        card=card,
    )


def _input_lut(info: ModelInfo) -> np.ndarray:
    """Per-channel table from pixel value (0..255) to the model's input value and dtype."""
    pixel = np.arange(256, dtype=np.float64)
    real = np.stack([(pixel - m) / s for m, s in zip(info.mean, info.std)])
    q = info.input_quant
    if q.quantized:
        limits = np.iinfo(q.dtype)
        return np.clip(np.round(real / q.scale) + q.zero_point, limits.min, limits.max).astype(q.dtype)
    return real.astype(q.dtype)
