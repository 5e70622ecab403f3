"""The PyTorch and ONNX routes of ``edgecrop-convert model``.

PyTorch sources (an exported program ``.pt2``, a TorchScript file ``.pt``/``.pth``, or ``module:callable``
returning an ``nn.Module``) go through Google's ``litert-torch`` (PyTorch to LiteRT by torch.export: the
maintained successor of ai-edge-torch). ONNX files are read into PyTorch by ``onnx2torch`` first, then take
the same road: ``onnx2tf``, the other ONNX converter, pins TensorFlow 2.19 and NumPy 1.26 and cannot live
beside the project's TensorFlow. int8 is PyTorch's own post-training quantisation (PT2E) with
litert-torch's quantizer, lowered by litert-torch: its maps agree with TensorFlow's int8 of the same
network (CC 0.998 on the student) where AI Edge Quantizer's on the float TFLite reach 0.98. float16, and
int8 with --keep-float, quantise litert-torch's float32 TFLite like a float TFLite source.

The network is wrapped to take the runtime's [1, H, W, 3] image (it sees [1, 3, H, W], as PyTorch
networks do) and to give its map as [1, h, w, 1].
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import warnings
from pathlib import Path

import numpy as np

from .tflite_edit import integer_io
from .user_source import ConversionError, Source, SourceSpec
from .user_tflite import float_source, reading_rgb

TORCH_SUFFIXES = (".pt", ".pt2", ".pth")
ONNX_OPSET = 17  # the newest opset onnx2torch 1.5 has every common converter for


def is_callable_spec(text: str) -> bool:
    """``package.module:callable`` (a Python function that returns the network), not a path."""
    module, sep, name = text.partition(":")
    return bool(sep) and module.replace(".", "").replace("_", "").isalnum() and name.isidentifier()


def _module(source: str, path: Path, size: tuple[int, int]):
    """The nn.Module a source names, in inference mode."""
    import torch

    try:
        if is_callable_spec(source):
            module_name, _, name = source.partition(":")
            sys.path.insert(0, str(Path.cwd()))
            try:
                net = getattr(importlib.import_module(module_name), name)()
            finally:
                sys.path.remove(str(Path.cwd()))
        elif path.suffix.lower() == ".onnx":
            import onnx2torch

            net = _static_sizes(onnx2torch.convert(_onnx_model(path)))
        elif path.suffix.lower() == ".pt2":
            return torch.export.load(str(path)).module()  # already in inference form (no eval())
        else:
            try:
                script = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - not TorchScript: weights alone, or not PyTorch at all
                raise ConversionError(
                    f"{source}: not a TorchScript network ({type(exc).__name__}); for a file of weights, give "
                    "package.module:function that builds the network and loads them"
                ) from None
            net = _through_onnx(script, size)
    except ConversionError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "onnx", "onnx2torch", "litert_torch"):
            raise
        raise ConversionError(f"{source}: cannot import it ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever a broken file or module makes the loader raise
        raise ConversionError(f"{source}: cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(net, torch.nn.Module):
        raise ConversionError(f"{source}: gives a {type(net).__name__}, not a torch.nn.Module")
    return net.eval() if hasattr(net, "eval") else net


def _onnx_model(path: Path):
    """The ONNX model at an opset onnx2torch reads (it has converters up to opset ONNX_OPSET)."""
    from onnx import version_converter

    model = _folded(path)
    _fold_constant_identities(model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=ONNX_OPSET)
    if opset <= ONNX_OPSET:
        return model
    try:
        return version_converter.convert_version(model, ONNX_OPSET)
    except Exception:  # noqa: BLE001 - ONNX's version converter has no adapter for some op
        raise ConversionError(
            f"{path}: opset {opset}, and onnx2torch reads up to opset {ONNX_OPSET}: export it with "
            f"opset_version={ONNX_OPSET} (torch.onnx.export(..., opset_version={ONNX_OPSET}, dynamo=False))"
        ) from None


def _through_onnx(script, size: tuple[int, int]):
    """A TorchScript network as onnx2torch reads it back: torch.export cannot trace TorchScript, and
    PyTorch's TorchScript-based ONNX exporter is made for it."""
    import tempfile

    import onnx2torch
    import torch

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "script.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the TorchScript-based exporter is deprecated": it is the one for this
            torch.onnx.export(
                script, (torch.zeros(1, 3, *size),), str(onnx_path), opset_version=ONNX_OPSET, dynamo=False
            )
        return _static_sizes(onnx2torch.convert(_onnx_model(onnx_path)))


def _folded(path: Path):
    """The ONNX model with its constant subgraphs computed (ONNX Runtime's basic, standard-op level):
    exporters compute a padding's sizes from shapes in a dozen ops, which torch.export cannot trace."""
    import tempfile

    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "folded.onnx")
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _static_sizes(net):
    """onnx2torch's Pad and Resize read their sizes from tensors when they run (``.tolist()``), which
    torch.export cannot trace: where those sizes are constants, the op gets them as numbers."""
    import torch
    import torch.nn.functional as F
    from onnx2torch.node_converters.pad import OnnxPadDynamic, OnnxPadStatic
    from onnx2torch.node_converters.resize import OnnxResize, _onnx_mode_to_torch_mode

    class Interpolate(torch.nn.Module):
        def __init__(self, size, scale, mode: str, align_corners) -> None:
            super().__init__()
            self.size, self.scale, self.mode, self.align_corners = size, scale, mode, align_corners

        def forward(self, x):
            return F.interpolate(x, self.size, self.scale, self.mode, self.align_corners)

    def constant(arg):
        if getattr(arg, "op", None) != "get_attr":
            return None
        return functools.reduce(getattr, arg.target.split("."), net).tolist()

    for node in list(net.graph.nodes):
        module = net.get_submodule(node.target) if node.op == "call_module" else None
        if isinstance(module, OnnxPadDynamic) and module.mode == "constant" and len(node.args) == 2:
            pads = constant(node.args[1])
            if pads is not None:
                net.add_submodule(node.target, OnnxPadStatic.create_from_onnx_params(onnx_pads=[int(v) for v in pads]))
                node.args = (node.args[0],)
        elif isinstance(module, OnnxResize):
            args = [*node.args, *[None] * (4 - len(node.args))]  # input, roi, scales, sizes
            given = [node.kwargs.get(k, a) for k, a in zip(("scales", "sizes"), args[2:4])]
            scales, sizes = (constant(a) if a is not None else [] for a in given)
            if scales is None or sizes is None or not (sizes or scales):
                continue
            size = [int(v) for v in sizes[2:]] if sizes else None
            scale = [float(v) for v in scales[2:]] if not sizes else None
            mode = _onnx_mode_to_torch_mode(module.onnx_mode, len(sizes or scales) - 2)
            net.add_submodule(node.target, Interpolate(size, scale, mode, module.align_corners))
            node.args, node.kwargs = (node.args[0],), {}
    net.graph.eliminate_dead_code()
    net.recompile()
    return net


def _fold_constant_identities(model) -> None:
    """Identity nodes of a weight become weights: PyTorch's exporter shares equal weights that way, and
    onnx2torch wants a convolution's weights as initialisers."""
    initialisers = {t.name: t for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    for node in list(model.graph.node):
        if node.op_type == "Identity" and node.input[0] in initialisers and node.output[0] not in outputs:
            copy = model.graph.initializer.add()
            copy.CopyFrom(initialisers[node.input[0]])
            copy.name = node.output[0]
            model.graph.node.remove(node)


def _onnx_signature(path: Path) -> tuple[tuple[int, int] | None, list[str]]:
    """The fixed (height, width) of an ONNX model's one image input [1, 3, H, W] (None when not fixed),
    and its output names."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: the parser's reason, short
        raise ConversionError(f"{path}: cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    initialisers = {t.name for t in model.graph.initializer}
    images = [i for i in model.graph.input if i.name not in initialisers]
    if len(images) != 1:
        raise ConversionError(f"{path}: {len(images)} inputs: edgecrop feeds one image [1, 3, H, W]")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in images[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3:
        raise ConversionError(f"{path}: the input is not one image of shape [1, 3, H, W] (it is {dims})")
    size = (dims[2], dims[3]) if dims[2] and dims[3] else None
    return size, [o.name for o in model.graph.output]


def load_torch(source: str, spec: SourceSpec) -> Source:
    """A PyTorch or ONNX network's map as a Source (float32 TFLite by litert-torch)."""
    import torch

    path = Path(source)
    onnx_file = not is_callable_spec(source) and path.suffix.lower() == ".onnx"
    size, names = _onnx_signature(path) if onnx_file else (None, None)
    if size is not None and spec.size is not None and tuple(spec.size) != size:
        raise ConversionError(f"{source}: the model takes {size[0]}x{size[1]}, not the --size {spec.size}")
    size = size or spec.size
    if size is None:
        raise ConversionError(f"{source}: a PyTorch network does not say its input size: give --size HEIGHTxWIDTH")
    net = _module(source, path, size)
    x = torch.zeros(1, 3, *size)
    with torch.no_grad():
        try:
            out = net(x)
        except Exception as exc:  # noqa: BLE001 - the network refuses this input: its reason, short
            raise ConversionError(
                f"{source}: fails on a [1, 3, {size[0]}, {size[1]}] image ({str(exc)[:200]})"
            ) from None
    outputs = _named(out, names)
    name = spec.map_output(source, list(outputs))
    shape = list(outputs[name].shape)
    if len(shape) not in (3, 4) or shape[0] != 1 or (len(shape) == 4 and shape[1] != 1):
        raise ConversionError(f"{source}: output {name!r} of shape {shape} is not a single-channel map")
    pick = list(outputs).index(name)
    map_h, map_w = shape[-2], shape[-1]

    class Saliency(torch.nn.Module):
        """The network on the runtime's layout: [1, H, W, 3] in, [1, h, w, 1] out."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.training = False  # the network is already in inference mode (an exported one cannot switch)

        def forward(self, image):
            out = self.net(image.permute(0, 3, 1, 2))
            out = list(out.values())[pick] if isinstance(out, dict) else out
            out = out[pick] if isinstance(out, (list, tuple)) else out
            return out.reshape(1, map_h, map_w, 1)

    import litert_torch

    module, sample = Saliency(), (torch.zeros(1, *size, 3),)
    with _converting(source):
        float32 = litert_torch.convert(module, sample).model_content()
    route = "ONNX -> onnx2torch -> litert-torch" if onnx_file else "PyTorch -> litert-torch"
    floating = float_source(bytes(float32), f"{route} -> AI Edge Quantizer", source, spec)

    def tflite(kind: str, calibration: list[np.ndarray]) -> bytes:
        if kind != "int8" or spec.keep_float is not None:  # float kinds, and --keep-float: by the float TFLite
            return floating.tflite(kind, calibration)
        with _converting(source):
            return _pt2e_int8(module, sample, calibration, spec.channels == "BGR", source)

    route = f"{route} (int8 by its PT2E quantizer; float16 and --keep-float by AI Edge Quantizer)"
    return Source(floating.height, floating.width, floating.map_height, floating.map_width, name, route, tflite)


def _sourced(graph):
    """PT2E's quantizer finds additions, multiplications and concatenations by the Python function they
    came from (without it they stay float), which a non-strict export does not record and a program
    exported from aten ops (a loaded .pt2) records as the aten op itself: give them theirs."""
    import operator

    import torch

    aten = torch.ops.aten
    sources = {aten.add.Tensor: operator.add, aten.mul.Tensor: operator.mul, aten.cat.default: torch.cat}
    python = {operator.add, operator.iadd, torch.add, operator.mul, operator.imul, torch.mul, torch.cat}
    for node in graph.graph.nodes:
        stack = node.meta.get("source_fn_stack") or [(None, None)]
        if node.op == "call_function" and node.target in sources and stack[-1][1] not in python:
            node.meta["source_fn_stack"] = [(node.name, sources[node.target])]
    return graph


@contextlib.contextmanager
def _converting(source: str):
    """litert-torch at work: its progress lines go to stderr (stdout is the report), and its reasons and
    torch.export's, which are long, become one line."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"{source}: litert-torch cannot convert it ({first[:300]})") from None


def _pt2e_int8(module, sample: tuple, calibration: list[np.ndarray], bgr: bool, source: str) -> bytes:
    """Full-integer int8 by PyTorch's own post-training quantisation (PT2E) with litert-torch's quantizer
    (symmetric, per-channel weights), calibrated on the photos, then lowered by litert-torch. Exported
    strictly when TorchDynamo can, else not."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    try:
        exported = torch.export.export(module, sample, strict=True)
    except Exception:  # noqa: BLE001 - TorchDynamo cannot trace it: the non-strict export
        exported = torch.export.export(module, sample)
    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(config)
    prepared = quantize_pt2e.prepare_pt2e(_sourced(exported.module()), quantizer)
    with torch.no_grad():
        for x in calibration:  # a BGR network sees BGR while it is calibrated
            prepared(torch.from_numpy(np.ascontiguousarray(x[..., ::-1] if bgr else x)))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    blob = litert_torch.convert(converted, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    blob = integer_io(bytes(blob.model_content()))
    return reading_rgb(blob, source) if bgr else blob


def _named(out, names: list[str] | None) -> dict:
    """A network's outputs by name: a dict's keys, ONNX output names, else their positions."""
    if isinstance(out, dict):
        return dict(out)
    items = list(out) if isinstance(out, (list, tuple)) else [out]
    names = names if names is not None and len(names) == len(items) else [str(i) for i in range(len(items))]
    return dict(zip(names, items))
