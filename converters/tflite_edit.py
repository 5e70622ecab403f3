"""Edit .tflite flatbuffers: re-point a model's outputs at internal tensors, embed a model card."""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgecrop.modelfile.card import CARD_METADATA_NAME, ModelCard


def _load(data: bytes) -> schema.ModelT:
    """The model as objects; buffers stored after the flatbuffer (by offset, as AI Edge Quantizer writes
    them) are read in, since packing writes only the flatbuffer."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for buffer in model.buffers or []:
        if buffer.offset > 1:
            buffer.data = np.frombuffer(data, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0
    return model


def _save(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tensor_index(data: bytes, name: str, subgraph: int = 0) -> int:
    """Index of the tensor called ``name`` in a subgraph."""
    for i, tensor in enumerate(_load(data).subgraphs[subgraph].tensors):
        if tensor.name.decode() == name:
            return i
    raise KeyError(f"no tensor named {name!r}")


def set_outputs(data: bytes, tensors: list[int], subgraph: int = 0) -> bytes:
    """Make internal tensors the model's outputs (the way to read a map a model computes but hides)."""
    model = _load(data)
    graph = model.subgraphs[subgraph]
    for t in tensors:
        if not 0 <= t < len(graph.tensors):
            raise IndexError(f"tensor {t} is not in subgraph {subgraph}")
    graph.outputs = list(tensors)
    model.signatureDefs = []  # signatures name the old outputs
    return _save(model)


def embed_card(data: bytes, card: ModelCard) -> bytes:
    """Store ``card`` as JSON in the model's metadata (replacing an earlier card)."""
    model = _load(data)
    buffer = schema.BufferT()
    buffer.data = list(card.to_json().encode())
    model.buffers.append(buffer)
    meta = schema.MetadataT()
    meta.name = CARD_METADATA_NAME
    meta.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != CARD_METADATA_NAME]
    model.metadata.append(meta)
    _drop_unused_buffers(model)  # the earlier card's, so that replacing a card does not grow the file
    return _save(model)


def _drop_unused_buffers(model: schema.ModelT) -> None:
    """Remove the buffers no tensor or metadata refers to (buffer 0, the empty one, stays), renumbering."""
    graphs_use = [t.buffer for g in model.subgraphs for t in g.tensors]
    used = {0, *graphs_use, *(m.buffer for m in model.metadata or []), *(model.metadataBuffer or [])}
    new_index = {old: new for new, old in enumerate(sorted(used))}
    model.buffers = [model.buffers[old] for old in sorted(used)]
    for g in model.subgraphs:
        for t in g.tensors:
            t.buffer = new_index[t.buffer]
    for m in model.metadata or []:
        m.buffer = new_index[m.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[b] for b in model.metadataBuffer]


_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def _op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    """The op's builtin name ("CUSTOM:name" for a custom op)."""
    code = model.operatorCodes[op.opcodeIndex]
    name = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
    return f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}" if name == "CUSTOM" else name


def operators(data: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op name, input tensor types, output tensor types) for every op of the main graph."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    out = []
    for op in graph.operators:
        ins, outs = ([_TYPE_NAMES[graph.tensors[i].type] for i in idx if i >= 0] for idx in (op.inputs, op.outputs))
        out.append((_op_name(model, op), ins, outs))
    return out


def check_int8(data: bytes) -> list[str]:
    """Problems that would make an int8 model fall back to float or to custom code ([] when clean).
    Integer shape arithmetic (int32, int64; SHAPE reads only a tensor's shape) is not a problem."""
    problems = []
    for name, ins, outs in operators(data):
        if name.startswith("CUSTOM"):
            problems.append(f"{name}: custom op")
        elif name != "SHAPE" and any(t not in ("INT8", "INT32", "INT64") for t in ins + outs):
            problems.append(f"{name}: tensors {ins} -> {outs} are not all int8")
    return problems


def float_graph(data: bytes, output: int) -> bytes:
    """The float model reduced to one image input and one output tensor, ready for a quantizer: the ops
    the output does not need are dropped (and the inputs only they read), float16 weights become float32
    (their DEQUANTIZE ops go), and one signature, ``serving_default``, names the input and the map."""
    model = _load(data)
    graph = model.subgraphs[0]
    f16, f32 = schema.TensorType.FLOAT16, schema.TensorType.FLOAT32
    renamed: dict[int, int] = {}  # a DEQUANTIZE's output -> its float16 constant, now float32
    for op in graph.operators:
        source = graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
        if (
            _op_name(model, op) == "DEQUANTIZE"
            and source is not None
            and source.type == f16
            and model.buffers[source.buffer].data is not None
        ):
            buffer = model.buffers[source.buffer]
            values = np.frombuffer(bytes(bytearray(buffer.data)), np.float16).astype(np.float32)
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            source.type = f32
            renamed[int(op.outputs[0])] = int(op.inputs[0])
    for op in graph.operators:
        op.inputs = [renamed.get(int(i), int(i)) for i in op.inputs]
    graph.outputs = [renamed.get(output, output)]
    needed: set[int] = set(graph.outputs)
    kept = []
    for op in reversed(graph.operators):
        if any(int(o) in needed for o in op.outputs) and int(op.outputs[0]) not in renamed:
            kept.append(op)
            needed.update(int(i) for i in op.inputs if i >= 0)
            needed.update(int(i) for i in (op.intermediates if op.intermediates is not None else []))
    graph.operators = kept[::-1]
    graph.inputs = [int(i) for i in graph.inputs if int(i) in needed]
    return _signed(model)


def integer_io(data: bytes) -> bytes:
    """A quantised model with int8 input and output: the QUANTIZE that is the float input's only reader
    and the DEQUANTIZE that makes the float output are dropped (so the runtime feeds and reads int8, as a
    full-integer model does); a model whose float input other ops read too is left as it is."""
    model = _load(data)
    graph = model.subgraphs[0]
    readers = [op for op in graph.operators if graph.inputs[0] in list(op.inputs)]
    if len(readers) == 1 and _op_name(model, readers[0]) == "QUANTIZE":
        graph.inputs = [int(readers[0].outputs[0])]
        graph.operators.remove(readers[0])
    writer = next((op for op in graph.operators if graph.outputs[0] in list(op.outputs)), None)
    if writer is not None and _op_name(model, writer) == "DEQUANTIZE":
        graph.outputs = [int(writer.inputs[0])]
        graph.operators.remove(writer)
    return _signed(model)


def _signed(model: schema.ModelT) -> bytes:
    """The edited model without its unused tensors and buffers, with one signature, ``serving_default``,
    naming the main graph's inputs and outputs (quantizers run a model by its signature)."""
    graph = model.subgraphs[0]
    _drop_unused_tensors(graph)
    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = [], []
    for names, tensors in ((signature.inputs, graph.inputs), (signature.outputs, graph.outputs)):
        for t in tensors:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = graph.tensors[t].name, t
            names.append(entry)
    model.signatureDefs = [signature]
    _drop_unused_buffers(model)
    return _save(model)


def _drop_unused_tensors(graph: schema.SubGraphT) -> None:
    """Remove the tensors no op, input or output refers to (an interpreter leaves them unallocated)."""
    lists = [graph.inputs, graph.outputs]
    for op in graph.operators:
        lists += [op.inputs, op.outputs] + ([op.intermediates] if op.intermediates is not None else [])
    used = sorted({int(i) for idx in lists for i in idx if i >= 0})
    new_index = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[old] for old in used]
    graph.inputs = [new_index[int(i)] for i in graph.inputs]
    graph.outputs = [new_index[int(i)] for i in graph.outputs]
    for op in graph.operators:
        op.inputs = [new_index[int(i)] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [new_index[int(i)] for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [new_index[int(i)] for i in op.intermediates]


def bgr_input(data: bytes) -> bytes:
    """A model that reads BGR made to read RGB: the convolutions that read the input (directly or through
    PAD) get their filters' input channels reversed, which costs nothing at run time (float32, float16
    behind a DEQUANTIZE, or int8 quantised per output channel). Raises ValueError when the input reaches
    any other op (the network must then reverse the channels itself)."""
    model = _load(data)
    graph = model.subgraphs[0]
    producer = {int(o): op for op in graph.operators for o in op.outputs}
    frontier, filters = [int(graph.inputs[0])], set()
    while frontier:
        tensor = frontier.pop()
        for op in graph.operators:
            if tensor not in [int(i) for i in op.inputs]:
                continue
            name = _op_name(model, op)
            if name == "PAD" and int(op.inputs[0]) == tensor:
                frontier.append(int(op.outputs[0]))
            elif name == "CONV_2D" and int(op.inputs[0]) == tensor:
                f = int(op.inputs[1])
                behind = producer.get(f)
                filters.add(
                    int(behind.inputs[0]) if behind is not None and _op_name(model, behind) == "DEQUANTIZE" else f
                )
            else:
                raise ValueError(f"the input is read by {name}, not a convolution")
    dtypes = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT8: np.int8,
    }
    for t in sorted(filters):
        tensor = graph.tensors[t]
        buffer = model.buffers[tensor.buffer]
        q = tensor.quantization
        per_input_channel = q is not None and q.scale is not None and len(q.scale) > 1 and q.quantizedDimension == 3
        if tensor.type not in dtypes or buffer.data is None or len(buffer.data) == 0 or per_input_channel:
            raise ValueError("a convolution reading the input has no constant filter this can reverse")
        shape = [int(d) for d in tensor.shape]
        weights = np.frombuffer(bytes(bytearray(buffer.data)), dtypes[tensor.type]).reshape(shape)[..., ::-1]
        copy = schema.BufferT()  # a new buffer: another tensor may share the old one
        copy.data = np.frombuffer(np.ascontiguousarray(weights).tobytes(), np.uint8)
        model.buffers.append(copy)
        tensor.buffer = len(model.buffers) - 1
    return _signed(model)
