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


def operators(data: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op name, input tensor types, output tensor types) for every op of the main graph."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    out = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}"
        types = [[_TYPE_NAMES[graph.tensors[i].type] for i in idx if i >= 0] for idx in (op.inputs, op.outputs)]
        out.append((name, *types))
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
        code = model.operatorCodes[op.opcodeIndex]
        source = graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
        if (
            max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE
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
    ops = {name: i for i, name in _OP_NAMES.items() if name in ("QUANTIZE", "DEQUANTIZE")}

    def is_op(op: schema.OperatorT, name: str) -> bool:
        code = model.operatorCodes[op.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode) == ops[name]

    readers = [op for op in graph.operators if graph.inputs[0] in list(op.inputs)]
    if len(readers) == 1 and is_op(readers[0], "QUANTIZE"):
        graph.inputs = [int(readers[0].outputs[0])]
        graph.operators.remove(readers[0])
    writer = next((op for op in graph.operators if graph.outputs[0] in list(op.outputs)), None)
    if writer is not None and is_op(writer, "DEQUANTIZE"):
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
