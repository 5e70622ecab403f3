"""Stage 3: the student network, built only from ops that run as int8 on XNNPACK and an Edge TPU.

A MobileNet-like stack of depthwise-separable blocks (3x3 depthwise without bias, 1x1 conv + ReLU),
features from strides 8, 16 and 32 brought to stride 8 by bilinear resizing and concatenated, a 1x1
readout, a learned centre-bias prior added to the logits, and a final bilinear x2 resize: the output is
a logit map at stride 4 (64x64 for a 256x256 input) on which the crop search works directly.

Every prunable unit (a conv's output feature maps) ends in a ChannelMask; Fisher pruning zeroes mask
entries, and ``slim`` rebuilds the network without the removed maps for export.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Union

import keras
import numpy as np
from keras import layers

from edgecrop.preprocess import InputSpec, Resize

if TYPE_CHECKING:
    from .trunk import TrunkArchitecture


class Stride4Map:
    """What every student's input and output are: a square letterboxed (or stretched) input of
    ``input_size`` pixels and a logit map at stride 4 (the readout_head's)."""

    input_size: int
    resize: str

    @property
    def map_size(self) -> int:
        return self.input_size // 4

    def spec(self) -> InputSpec:
        return InputSpec(self.input_size, self.input_size, self.map_size, self.map_size, Resize(self.resize))


@dataclass(frozen=True)
class Architecture(Stride4Map):
    input_size: int = 256
    resize: str = "letterbox"
    stem: int = 16
    blocks: tuple[tuple[int, int], ...] = (  # (stride, width)
        (2, 24),
        (1, 24),
        (2, 48),
        (1, 48),
        (2, 96),
        (1, 96),
        (2, 128),
        (1, 128),
    )
    taps: tuple[int, ...] = (3, 5, 7)  # blocks whose outputs feed the readout (strides 8, 16, 32)
    readout: int = 32
    widths: dict[str, int] = field(default_factory=dict)  # pruned widths by unit name

    def with_widths(self, widths: dict[str, int]) -> Architecture:
        """The same layout with every unit at the given width (the base widths become these)."""
        blocks = tuple((stride, widths[f"b{i}"]) for i, (stride, _) in enumerate(self.blocks))
        return replace(self, stem=widths["stem"], blocks=blocks, readout=widths["readout"], widths={})

    def unit_widths(self) -> dict[str, int]:
        full = {"stem": self.stem, **{f"b{i}": w for i, (_, w) in enumerate(self.blocks)}, "readout": self.readout}
        return {k: self.widths.get(k, v) for k, v in full.items()}

    def describe(self) -> str:
        return (
            "depthwise-separable CNN (3x3 depthwise + 1x1 conv, ReLU), features at strides 8/16/32 "
            "resized to stride 8 and concatenated, 1x1 readout, learned centre-bias prior, bilinear x2: "
            f"logit map at stride 4; unit widths {self.unit_widths()}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        d = {**d, "blocks": tuple(tuple(b) for b in d["blocks"]), "taps": tuple(d["taps"])}
        return cls(**d)


AnyArchitecture = Union[Architecture, "TrunkArchitecture"]


def architecture_from_json(text: str) -> AnyArchitecture:
    """A run's architecture.json: the from-scratch student, or a pretrained trunk (it has a ``family``)."""
    from .trunk import TrunkArchitecture

    d = json.loads(text)
    return TrunkArchitecture.from_dict(d) if "family" in d else Architecture.from_dict(d)


class ChannelMask(layers.Layer):
    """Multiplies feature maps by a fixed 0/1 mask; the gradient w.r.t. the mask gives Fisher scores."""

    def build(self, input_shape):
        self.mask = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="mask")

    def call(self, x):
        return x * self.mask


class CentrePrior(layers.Layer):
    """A learned log-prior added to the logits, initialised to a centred Gaussian (centre bias)."""

    def build(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        yy, xx = np.meshgrid((np.arange(h) + 0.5) / h - 0.5, (np.arange(w) + 0.5) / w - 0.5, indexing="ij")
        init = -(xx**2 + yy**2) / (2 * 0.3**2)
        self.prior = self.add_weight(
            shape=(1, h, w, 1), initializer=keras.initializers.Constant(init[None, :, :, None]), name="prior"
        )

    def call(self, x):
        return x + self.prior


def build_student(arch: AnyArchitecture, masks: bool = True) -> keras.Model:
    """The Keras student; with ``masks`` every prunable unit ends in a ChannelMask."""
    if not isinstance(arch, Architecture):
        from .trunk import build_trunk

        return build_trunk(arch, masks)
    widths = arch.unit_widths()

    def unit(x, name):
        return ChannelMask(name=f"{name}_mask")(x) if masks else x

    inp = keras.Input((arch.input_size, arch.input_size, 3), name="image")
    x = layers.Conv2D(widths["stem"], 3, strides=2, padding="same", activation="relu", name="stem")(inp)
    x = unit(x, "stem")
    taps = []
    for i, (stride, _) in enumerate(arch.blocks):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw")(x)
        x = layers.Conv2D(widths[f"b{i}"], 1, activation="relu", name=f"b{i}")(x)
        x = unit(x, f"b{i}")
        if i in arch.taps:
            taps.append(x)
    out = readout_head(taps, arch.input_size, widths["readout"], unit)
    return keras.Model(inp, out, name="edgecrop_student")


def readout_head(taps: list, input_size: int, width: int, unit):
    """The readout every student ends in: the taps resized to stride 8 and concatenated, a 1x1 readout
    (``unit`` masks it for pruning), logits, the learned centre prior, bilinear x2 to a stride-4 map."""
    grid = input_size // 8
    resized = [
        t if t.shape[1] == grid else layers.Resizing(grid, grid, "bilinear", name=f"up{j}")(t)
        for j, t in enumerate(taps)
    ]
    x = layers.Concatenate(name="concat")(resized)
    x = layers.Conv2D(width, 1, activation="relu", name="readout")(x)
    x = unit(x, "readout")
    x = layers.Conv2D(1, 1, name="logits")(x)
    x = CentrePrior(name="prior")(x)
    return layers.Resizing(input_size // 4, input_size // 4, "bilinear", name="upsample")(x)


def mask_layers(model: keras.Model) -> dict[str, ChannelMask]:
    return {la.name[: -len("_mask")]: la for la in model.layers if isinstance(la, ChannelMask)}


def active_widths(model: keras.Model) -> dict[str, int]:
    return {name: int(np.sum(la.mask.numpy() > 0)) for name, la in mask_layers(model).items()}


def flops(arch: AnyArchitecture, widths: dict[str, int] | None = None) -> int:
    """Multiply-adds x 2 of the convolutions for the given unit widths (resizes and adds ignored)."""
    if not isinstance(arch, Architecture):
        from .trunk import trunk_flops

        return trunk_flops(arch, widths)
    w = widths or arch.unit_widths()
    size = arch.input_size // 2
    total = 2 * size * size * 9 * 3 * w["stem"]
    prev = w["stem"]
    for i, (stride, _) in enumerate(arch.blocks):
        size //= stride
        total += 2 * size * size * 9 * prev + 2 * size * size * prev * w[f"b{i}"]
        prev = w[f"b{i}"]
    grid = arch.input_size // 8
    concat = sum(w[f"b{i}"] for i in arch.taps)
    total += 2 * grid * grid * (concat * w["readout"] + w["readout"])
    return int(total)


def slim(model: keras.Model, arch: AnyArchitecture) -> tuple[keras.Model, AnyArchitecture]:
    """A mask-free copy of ``model`` without its masked-out feature maps (same function)."""
    if not isinstance(arch, Architecture):
        from .trunk import slim_trunk

        return slim_trunk(model, arch)
    keep = {name: np.flatnonzero(la.mask.numpy() > 0) for name, la in mask_layers(model).items()}
    new_arch = replace(arch, widths={k: len(v) for k, v in keep.items()})
    new = build_student(new_arch, masks=False)

    def take(name, kernel_in=None, kernel_out=None, bias_out=None):
        weights = model.get_layer(name).get_weights()
        k = weights[0]
        if kernel_in is not None:
            k = k[:, :, kernel_in, :]
        if kernel_out is not None:
            k = k[..., kernel_out]
        rest = weights[1:]
        if rest and bias_out is not None:
            rest = [rest[0][bias_out]]
        new.get_layer(name).set_weights([k, *rest])

    take("stem", kernel_out=keep["stem"], bias_out=keep["stem"])
    prev = keep["stem"]
    for i in range(len(arch.blocks)):
        take(f"b{i}_dw", kernel_in=prev)  # depthwise kernel: (3, 3, C, 1)
        take(f"b{i}", kernel_in=prev, kernel_out=keep[f"b{i}"], bias_out=keep[f"b{i}"])
        prev = keep[f"b{i}"]
    offsets = np.cumsum([0] + [arch.unit_widths()[f"b{i}"] for i in arch.taps])
    concat_keep = np.concatenate([keep[f"b{i}"] + off for i, off in zip(arch.taps, offsets)])
    take("readout", kernel_in=concat_keep, kernel_out=keep["readout"], bias_out=keep["readout"])
    take("logits", kernel_in=keep["readout"])
    new.get_layer("prior").set_weights(model.get_layer("prior").get_weights())
    return new, new_arch
