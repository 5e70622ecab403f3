"""Edit .tflite flatbuffers: re-point a model's outputs at internal tensors, embed a model card."""

from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from edgecrop.modelfile.card import CARD_METADATA_NAME, ModelCard


def _load(data: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


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
