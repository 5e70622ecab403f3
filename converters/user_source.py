"""What every route of ``edgecrop-convert model`` shares: what the user states about their network
(``SourceSpec``), what a route hands back (``Source``), and the one error the user sees."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecrop.modelfile.card import InputCard
from edgecrop.preprocess import OutputKind, Resize


class ConversionError(ValueError):
    """The source cannot be converted as stated: one line for the user."""


@dataclass(frozen=True)
class SourceSpec:
    """What the user states about their network."""

    resize: Resize = Resize.LETTERBOX
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    output: str | None = None  # the map's output name, when the model has several
    kind: OutputKind = OutputKind.SALIENCY
    size: tuple[int, int] | None = None  # (height, width) for a model whose input size is not fixed
    temperature: float = 1.0  # logits only: softmax(logits / temperature)
    allow_float: bool = False  # int8: keep the ops int8 cannot take in float instead of refusing
    custom_objects: tuple[str, ...] = ()  # Python modules holding a Keras file's custom layers
    channels: str = "RGB"  # the order the network reads; mean and std are given in it
    keep_float: str | None = None  # int8 through AI Edge Quantizer: ops whose tensor names match stay float

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", Resize(self.resize))
        object.__setattr__(self, "kind", OutputKind(self.kind))
        InputCard(resize=self.resize, mean=self.mean, std=self.std)  # the card's own checks, one line each
        if self.size is not None and not (1 <= min(self.size) and max(self.size) <= 4096):
            raise ConversionError(f"--size must be HEIGHTxWIDTH from 1 to 4096, not {self.size}")
        if self.channels not in ("RGB", "BGR"):
            raise ConversionError(f"--channels must be RGB or BGR, not {self.channels!r}")
        if self.keep_float is not None:
            try:
                re.compile(self.keep_float)
            except re.error as exc:
                raise ConversionError(f"--keep-float {self.keep_float!r}: not a regular expression ({exc})") from None
        if not (np.isfinite(self.temperature) and 0.01 <= self.temperature <= 100):
            raise ConversionError(f"--temperature must be from 0.01 to 100, not {self.temperature}")

    def map_output(self, origin: str, outputs: list[str]) -> str:
        """The map's name among the network's outputs: --map-output, or the only one."""
        if self.output is not None and self.output not in outputs:
            raise ConversionError(f"{origin}: no output named {self.output!r} (outputs: {', '.join(outputs)})")
        if self.output is None and len(outputs) > 1:
            raise ConversionError(f"{origin}: {len(outputs)} outputs ({', '.join(outputs)}): say which is the map")
        return self.output or outputs[0]

    def runtime_normalisation(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) in the runtime's RGB order (the converted model reads RGB whatever the source read)."""
        if self.channels == "RGB":
            return self.mean, self.std
        return (self.mean[2], self.mean[1], self.mean[0]), (self.std[2], self.std[1], self.std[0])


@dataclass(frozen=True)
class Source:
    """A user's network, loaded by its route: the input and map sizes, the map's name, the converters the
    route uses, and ``tflite(kind, calibration inputs)``, the network as TFLite bytes of that kind
    (int8, float16, float32) taking one [1, H, W, 3] float image."""

    height: int
    width: int
    map_height: int
    map_width: int
    output: str
    route: str
    tflite: Callable[[str, list[np.ndarray]], bytes]
