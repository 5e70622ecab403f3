"""A saliency model: one TFLite interpreter, its model card, and the tensor plumbing around it.

Quantization (scale, zero point, dtype) is read from the model, so float, int8 and uint8 models run
through the same code. One interpreter must never be used by two threads at once: every call holds a
lock, and results are copies, never views into interpreter memory.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from ._backend import get_backend, load_delegate
from .errors import ModelError
from .modelfile.card import ModelCard
from .modelfile.verify import MAX_MODEL_BYTES, verify_model
from .preprocess import InputSpec, Layout, content_cells, flip_average, mirrored, to_input

ModelSource = Union[str, os.PathLike, bytes, bytearray]


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
    """A model as the pipeline runs it: its card, and what its tensors say (shapes, quantisation)."""

    card: ModelCard
    spec: InputSpec
    input_quant: Quantization
    output_quant: Quantization

    @property
    def name(self) -> str:
        return self.card.name


@dataclass(frozen=True)
class RawMap:
    """A model's raw output over the picture's cells (the letterbox's padding cut), where the picture sat
    in the input, and what laying it out and running the model cost (seconds)."""

    values: np.ndarray  # float32, cells high x cells wide; ``postprocess`` makes it a probability map
    layout: Layout
    preprocess_s: float
    inference_s: float


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
        self.data = data  # the model's bytes: workers of a batch each load their own interpreter from them
        card = verify_model(data, name).card(name)  # verified before the runtime sees a byte of it
        delegates = [load_delegate(delegate, delegate_options)] if delegate else None
        self.delegate = delegate
        said: list[str] = []  # what was written on stderr while loading, INFO lines dropped
        # (file descriptor 2 is the process's: other threads' lines, edgecrop's own, land here too)
        try:
            with runtime_messages(said):
                self._interpreter = get_backend().interpreter_class(
                    model_content=data, num_threads=num_threads, experimental_delegates=delegates
                )
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            ours = [line for line in said if line.startswith("edgecrop:")]
            runtime = [line for line in said if not line.startswith("edgecrop:")]
            _pass_on(ours)
            raise ModelError(f"{name}: the TFLite runtime cannot load it ({one_line(str(exc), *runtime)})") from None
        _pass_on(said)  # loaded: whatever was said (a delegate's warning, another thread's line) goes on
        self._input = _pick_input(self._interpreter.get_input_details(), name)
        self._output = _pick_output(self._interpreter.get_output_details(), card, name)
        self.info = _model_info(name, card, self._input, self._output)
        self._table = input_table(card.input.mean, card.input.std, self.info.input_quant)
        # the usual int8 input (0..255 scaled by 1/255, zero point -128) is the pixel minus 128: the sign bit
        self._sign_flip = self._table.dtype == np.int8 and np.array_equal(
            self._table, np.broadcast_to(SIGN_FLIP_TABLE, self._table.shape)
        )
        self._lock = threading.Lock()

    def raw_map(self, rgb: Image.Image) -> RawMap:
        """The raw map of an RGB picture: laid out as the card says, run (on the picture and its mirror
        image when the card asks for flip averaging), the picture's cells cut out."""
        t0 = time.perf_counter()
        pixels, place = to_input(rgb, self.info.spec)
        t1 = time.perf_counter()
        raw = content_cells(self.run(pixels), place)
        return RawMap(raw, place, t1 - t0, time.perf_counter() - t1)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Raw output map (float32, map_height x map_width) for a uint8 HxWx3 input array. With the card's
        ``output.flip_average``, the mean of the maps of the input and of its mirror image (flipped back):
        the whole canvas is mirrored, so the letterbox's cells stay where they were."""
        spec = self.info.spec
        if pixels.shape != (spec.height, spec.width, 3) or pixels.dtype != np.uint8:
            raise ValueError(f"expected uint8 array of shape {(spec.height, spec.width, 3)}")
        if self._sign_flip:
            tensor = np.bitwise_xor(pixels, 0x80).view(np.int8)
        else:
            tensor = np.empty(pixels.shape, dtype=self._table.dtype)
            for c in range(3):
                tensor[..., c] = self._table[c][pixels[..., c]]
        raw = self._invoke(tensor)
        if self.info.card.output.flip_average:  # mirroring the tensor is mirroring the picture: one lookup
            raw = flip_average(raw, self._invoke(mirrored(tensor)))
        return raw

    def _invoke(self, tensor: np.ndarray) -> np.ndarray:
        spec = self.info.spec
        with self._lock:
            if self._interpreter is None:
                raise ModelError(f"{self.info.name}: the model is closed")
            try:
                self._interpreter.set_tensor(self._input["index"], tensor[None])
                self._interpreter.invoke()
                out = self._interpreter.get_tensor(self._output["index"])  # a copy
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{self.info.name}: inference failed ({one_line(str(exc))})") from None
        if out.size != spec.map_height * spec.map_width:
            raise ModelError(f"{self.info.name}: the output map changed size at run time ({list(out.shape)})")
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


_STDERR_LOCK = threading.Lock()  # file descriptor 2 is one per process: one redirection at a time


def _pass_on(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def one_line(*parts: str, limit: int = 300) -> str:
    """The runtime's messages (often many lines, repeated) as one short line for an error message."""
    lines = dict.fromkeys(ln.strip() for part in parts for ln in part.splitlines() if ln.strip())
    text = "; ".join(lines) or "no reason given"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def runtime_messages(said: list[str]) -> Iterator[None]:
    """The TFLite runtime writes straight to file descriptor 2 while it builds an interpreter ('INFO:
    Created TensorFlow Lite XNNPACK delegate for CPU.', and on failure many 'ERROR:' lines): capture it,
    drop the INFO lines and put the rest into ``said``, for the caller to fold into one line."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (a notebook, a service)
        yield
        return
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(fd)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", "replace")
                said.extend(ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith("INFO: "))


def _read_model(model: ModelSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), name or f"<model, {len(model)} bytes>"
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    size = path.stat().st_size  # a sparse file can claim gigabytes: refused before a byte is read
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: {size} bytes, more than a model may have ({MAX_MODEL_BYTES})")
    with path.open("rb") as f:
        data = f.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:  # grew while we looked
        raise ModelError(f"{path}: more than {MAX_MODEL_BYTES} bytes, more than a model may have")
    return data, name or str(path)


def _pick_input(details: list[dict], name: str) -> dict:
    for d in details:
        if len(d["shape"]) == 4 and d["shape"][-1] == 3:
            return d
    raise ModelError(f"{name}: no image input of shape [1, H, W, 3]")


def _pick_output(details: list[dict], card: ModelCard, name: str) -> dict:
    wanted = card.output.name
    for d in details:
        if (wanted is None or d["name"] == wanted) and len(d["shape"]) >= 3:
            return d
    raise ModelError(f"{name}: no spatial output map of shape [1, h, w(, 1)]")


def _model_info(name: str, card: ModelCard, input_d: dict, output_d: dict) -> ModelInfo:
    _, height, width, _ = (int(v) for v in input_d["shape"])
    out_shape = [int(v) for v in output_d["shape"]]
    map_h, map_w = out_shape[1], out_shape[2]
    if np.prod(out_shape) != map_h * map_w:
        raise ModelError(f"{name}: output {out_shape} is not a single-channel map")
    spec = InputSpec(height, width, map_h, map_w, card.input.resize)
    return ModelInfo(card=card, spec=spec, input_quant=_quant(input_d), output_quant=_quant(output_d))


SIGN_FLIP_TABLE = (np.arange(256) - 128).astype(np.int8)


def input_table(mean: tuple[float, ...], std: tuple[float, ...], q: Quantization) -> np.ndarray:
    """Per-channel table from pixel value (0..255) to the model's input value and dtype
    (the Java core's Preprocess.inputTable)."""
    pixel = np.arange(256, dtype=np.float64)
    real = np.stack([(pixel - m) / s for m, s in zip(mean, std)])
    if q.quantized:
        limits = np.iinfo(q.dtype)
        return np.clip(np.round(real / q.scale) + q.zero_point, limits.min, limits.max).astype(q.dtype)
    return real.astype(q.dtype)
