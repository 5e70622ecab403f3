"""Would a Coral Edge TPU take this model? Ops and tensors checked against Coral's published limits.

The Edge TPU compiler (``edgetpu_compiler``, x86-64 Debian/Ubuntu only) maps a prefix of the graph to the
TPU and leaves the rest on the CPU from the first op it cannot take. This check reads the .tflite and
reports, before anyone installs the compiler, which ops it would refuse and why: the op is not in Coral's
supported-operations table, a tensor is not 8-bit quantized, or a shape is dynamic / has more than three
dimensions larger than one. It is a pre-flight check, not the compiler: ``edgetpu_compiler -s`` is the
final word (see the README's "Raspberry Pi and accelerators" section).
"""

from __future__ import annotations

from ai_edge_litert import schema_py_generated as schema

from .tflite_edit import operators

# Coral, "TensorFlow models on the Edge TPU", supported operations (TFLite builtin names).
EDGETPU_OPS = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEQUANTIZE EXP EXPAND_DIMS FULLY_CONNECTED
    GATHER HARD_SWISH L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU
    QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TRANSPOSE
    TRANSPOSE_CONV""".split()
)
QUANTIZED = {"INT8", "UINT8", "INT32"}  # int32: biases


def edgetpu_problems(data: bytes) -> list[str]:
    """One line per op or tensor an Edge TPU would not take ([] when the whole graph maps)."""
    problems = []
    for i, (name, ins, outs) in enumerate(operators(data)):
        if name not in EDGETPU_OPS:
            problems.append(f"op {i} {name}: not supported by the Edge TPU (runs on the CPU, and so does the rest)")
        if any(t not in QUANTIZED for t in ins + outs):
            problems.append(f"op {i} {name}: tensors {ins} -> {outs} are not all 8-bit quantized")
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for t in model.subgraphs[0].tensors:
        if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data):
            continue  # weights: any shape is fine
        signature = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
        shape = [int(d) for d in (signature if signature is not None else [])]
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        if any(d < 0 for d in shape[1:]):  # a dynamic batch (-1) is compiled as 1; other sizes must be fixed
            problems.append(f"tensor {name}: dynamic shape {shape}")
        elif sum(d > 1 for d in shape) > 3:
            problems.append(f"tensor {name}: shape {shape} has more than 3 dimensions larger than 1")
    return problems


def edgetpu_report(data: bytes) -> tuple[bool, str]:
    """(whole graph maps?, a human-readable report with the op counts)."""
    counts: dict[str, int] = {}
    for name, _, _ in operators(data):
        counts[name] = counts.get(name, 0) + 1
    problems = edgetpu_problems(data)
    lines = ["ops: " + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))]
    lines += problems or ["all ops and tensors are within the Edge TPU's published limits"]
    lines.append("compile with: edgetpu_compiler -s MODEL.tflite  (x86-64 Debian/Ubuntu; writes MODEL_edgetpu.tflite)")
    return not problems, "\n".join(lines)
