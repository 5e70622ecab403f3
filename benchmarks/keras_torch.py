"""A PyTorch re-implementation of a Keras convolutional network with the same weights, for testing the
converter's PyTorch and ONNX routes on the project's own student (``benchmarks.convert_routes``).

``dump(model, folder)`` (in a process with TensorFlow) writes the layers in order and their weights;
``python -m benchmarks.keras_torch FOLDER`` (in a process without it: PyTorch's compiler stack and
TensorFlow crash one process together) builds ``KerasGraph`` from them, checks it against the Keras
model's map on the dumped input, and saves it as an exported program (``student.pt2``), TorchScript
(``student.pt``) and ONNX (``student.onnx``, opset 17). Layers: the ones the student uses (convolutions,
depthwise convolutions, zero padding, bilinear resizing, add, concatenate, the centre prior).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

KEYS = ("padding", "strides", "dilation_rate", "activation", "height", "width", "interpolation", "kernel_size")


def dump(model, folder: Path) -> None:
    """The Keras model's layers (name, class, the config that matters, input layer names) and weights."""
    layers, weights = [], {}
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        config = {k: v for k, v in layer.get_config().items() if k in KEYS}
        names = [t._keras_history.operation.name for t in inputs] if layer.__class__.__name__ != "InputLayer" else []
        layers.append({"name": layer.name, "class": layer.__class__.__name__, "config": config, "inputs": names})
        for i, w in enumerate(layer.get_weights()):
            weights[f"{layer.name}/{i}"] = w
    x = np.random.default_rng(0).random((1, *model.inputs[0].shape[1:]), np.float32)
    output = model.outputs[0]._keras_history.operation.name
    (folder / "graph.json").write_text(json.dumps({"layers": layers, "output": output}, default=list))
    np.savez(folder / "weights.npz", **weights, x=x, map=np.asarray(model(x)))


def build(folder: Path):
    import torch
    import torch.nn.functional as F

    graph = json.loads((folder / "graph.json").read_text())
    saved = np.load(folder / "weights.npz")

    def same_padding(size: int, k: int, s: int, d: int) -> tuple[int, int]:
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        return total // 2, total - total // 2

    class KerasGraph(torch.nn.Module):
        """The Keras network's layers in order, on [N, C, H, W] tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.params = torch.nn.ParameterDict()
            for layer in graph["layers"]:
                name, cls = layer["name"], layer["class"]
                if cls == "Conv2D":
                    self.params[f"{name}_w"] = torch.nn.Parameter(
                        torch.from_numpy(saved[f"{name}/0"].transpose(3, 2, 0, 1))
                    )
                elif cls == "DepthwiseConv2D":
                    kernel = saved[f"{name}/0"]  # (kh, kw, in, multiplier)
                    w = kernel.transpose(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2])
                    self.params[f"{name}_w"] = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(w)))
                elif cls == "CentrePrior":
                    self.params[f"{name}_w"] = torch.nn.Parameter(
                        torch.from_numpy(saved[f"{name}/0"].transpose(0, 3, 1, 2))
                    )
                if cls in ("Conv2D", "DepthwiseConv2D") and f"{name}/1" in saved:
                    self.params[f"{name}_b"] = torch.nn.Parameter(torch.from_numpy(saved[f"{name}/1"]))

        def forward(self, x):
            values = {}
            for layer in graph["layers"]:
                name, cls, c = layer["name"], layer["class"], layer["config"]
                ins = [values[n] for n in layer["inputs"]]
                if cls == "InputLayer":
                    out = x
                elif cls == "ZeroPadding2D":
                    (top, bottom), (left, right) = c["padding"]
                    out = F.pad(ins[0], (left, right, top, bottom))
                elif cls in ("Conv2D", "DepthwiseConv2D"):
                    h = ins[0]
                    (kh, kw), (sh, sw), (dh, dw) = c["kernel_size"], c["strides"], c["dilation_rate"]
                    if c["padding"] == "same":
                        top, bottom = same_padding(h.shape[2], kh, sh, dh)
                        left, right = same_padding(h.shape[3], kw, sw, dw)
                        h = F.pad(h, (left, right, top, bottom))
                    groups = h.shape[1] if cls == "DepthwiseConv2D" else 1
                    bias = self.params[f"{name}_b"] if f"{name}_b" in self.params else None
                    out = F.conv2d(h, self.params[f"{name}_w"], bias, (sh, sw), 0, (dh, dw), groups)
                    out = {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid}.get(
                        c["activation"], lambda t: t
                    )(out)
                elif cls == "Add":
                    out = ins[0]
                    for other in ins[1:]:
                        out = out + other
                elif cls == "Concatenate":
                    out = torch.cat(ins, 1)
                elif cls == "Resizing":
                    out = F.interpolate(ins[0], size=(c["height"], c["width"]), mode="bilinear", align_corners=False)
                elif cls == "CentrePrior":
                    out = ins[0] + self.params[f"{name}_w"]
                else:
                    raise ValueError(f"layer {name}: {cls} is not re-implemented")
                values[name] = out
            return values[graph["output"]]

    return KerasGraph().eval(), saved


def main(folder: Path) -> None:
    import torch

    net, saved = build(folder)
    x = torch.from_numpy(saved["x"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        gap = float(np.abs(net(x).numpy().transpose(0, 2, 3, 1) - saved["map"]).max())
    print(f"largest difference from the Keras map: {gap:.2e}")
    if gap > 1e-3:
        sys.exit("not the same network")
    torch.export.save(torch.export.export(net, (x,)), str(folder / "student.pt2"))
    torch.jit.trace(net, x).save(str(folder / "student.pt"))
    torch.onnx.export(net, (x,), str(folder / "student.onnx"), opset_version=17, dynamo=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
