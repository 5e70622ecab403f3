"""Fit a picture into the model's input, and find the picture's cells in the model's output.

Two layouts: ``stretch`` resizes the picture to the input size; ``letterbox`` keeps its aspect ratio
and pads with black, with the content rounded to whole output cells so that the padded border can be
cut from the output map exactly. Converters calibrate and train through these same functions; what
becomes of the output then is ``postprocess``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from PIL import Image


class Resize(str, Enum):
    """How a picture is fitted into the model's input."""

    LETTERBOX = "letterbox"  # aspect kept, black padding, content rounded to whole output cells
    STRETCH = "stretch"  # resized to the input size


class OutputKind(str, Enum):
    """What a model's output map holds."""

    LOGITS = "logits"  # softmax(values / temperature)
    PROBABILITY = "probability"  # non-negative, normalised
    SALIENCY = "saliency"  # any scale: shifted to a minimum of 0, normalised


@dataclass(frozen=True)
class InputSpec:
    """Shape contract between a model and the pipeline."""

    height: int  # model input, pixels
    width: int
    map_height: int  # model output map, cells
    map_width: int
    resize: Resize

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", Resize(self.resize))


@dataclass(frozen=True)
class Layout:
    """Where the picture sits in the input (pixels) and in the output map (cells)."""

    content: tuple[int, int, int, int]  # left, top, width, height in input pixels
    cells: tuple[int, int, int, int]  # left, top, width, height in output cells


def layout(image_width: int, image_height: int, spec: InputSpec) -> Layout:
    """Place an image of the given size in the model input according to ``spec.resize``."""
    if spec.resize is Resize.STRETCH:
        return Layout((0, 0, spec.width, spec.height), (0, 0, spec.map_width, spec.map_height))
    sx = spec.width / spec.map_width
    sy = spec.height / spec.map_height
    scale = min(spec.width / image_width, spec.height / image_height)
    cells_w = int(min(spec.map_width, max(1, round(image_width * scale / sx))))
    cells_h = int(min(spec.map_height, max(1, round(image_height * scale / sy))))
    left_c = (spec.map_width - cells_w) // 2
    top_c = (spec.map_height - cells_h) // 2
    left, top = round(left_c * sx), round(top_c * sy)
    width = round((left_c + cells_w) * sx) - left
    height = round((top_c + cells_h) * sy) - top
    return Layout((left, top, width, height), (left_c, top_c, cells_w, cells_h))


def decode_size(image_width: int, image_height: int, spec: InputSpec) -> tuple[int, int]:
    """The size of the picture's place in the input: a reduced decode that covers it loses nothing."""
    _, _, width, height = layout(image_width, image_height, spec).content
    return width, height


def to_input(rgb: Image.Image, spec: InputSpec) -> tuple[np.ndarray, Layout]:
    """The uint8 HxWx3 input array for ``rgb`` and its layout (black padding for letterbox)."""
    place = layout(rgb.width, rgb.height, spec)
    left, top, width, height = place.content
    resized = rgb.resize((width, height), Image.Resampling.BILINEAR)
    if (width, height) == (spec.width, spec.height):
        return np.asarray(resized, dtype=np.uint8), place
    canvas = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    canvas[top : top + height, left : left + width] = np.asarray(resized, dtype=np.uint8)
    return canvas, place


def content_cells(raw_map: np.ndarray, place: Layout) -> np.ndarray:
    """The part of an output map that covers the picture (padding removed)."""
    left, top, width, height = place.cells
    return raw_map[top : top + height, left : left + width]


def mirrored(a: np.ndarray) -> np.ndarray:
    """An H x W x C array mirrored left to right, as the Java core's Preprocess.mirrored (each pixel moved
    whole: twice as fast as a strided copy)."""
    pixel = np.dtype((np.void, a.shape[2] * a.itemsize))
    rows = np.ascontiguousarray(a).view(pixel)[:, ::-1]
    return np.ascontiguousarray(rows).view(a.dtype).reshape(a.shape)


def flip_average(raw: np.ndarray, raw_of_mirror: np.ndarray) -> np.ndarray:
    """The mean of a raw map and the raw map of the mirrored input, flipped back (float32 arithmetic, as the
    Java core's Saliency.flipAverage): what a card with ``output.flip_average`` asks of the runtime."""
    return (raw.astype(np.float32) + raw_of_mirror.astype(np.float32)[:, ::-1]) / np.float32(2)
