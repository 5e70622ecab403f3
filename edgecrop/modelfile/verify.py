"""Check a .tflite file's structure before the TFLite runtime sees it: a model file is untrusted input.

LiteRT trusts what the flatbuffer says: an operator input of -1 where one is required, a model without
subgraphs, an operator swapped for one with other inputs (SPLIT), or a tensor declared with 17 billion
elements crash the process or exhaust memory inside ``Interpreter()`` or ``allocate_tensors()``. So
every offset is bounds-checked while reading, and then:
  * exactly one subgraph, with at least one input and one output;
  * every operator code is a builtin edgecrop runs (``OPERATORS``), with the number of inputs and
    outputs that operator takes; no custom operators;
  * every tensor, buffer and operator-code index in range; -1 (absent) only for optional operands;
  * operators write only tensors that are neither constant nor graph inputs, each tensor once, and read
    only tensors that exist by then (graph inputs, constants, variables, earlier outputs);
  * every tensor named in UTF-8, of a known type, rank <= 6, dimensions >= 0, at most MAX_ELEMENTS elements, all of them
    together at most MAX_TOTAL_BYTES; constant data exactly the tensor's size, inside the file;
  * quantisation vectors of matching lengths, their dimension inside the tensor;
  * shape operands (reshape, broadcast, resize, pad) constant and within the same bounds, or for reshape and
    broadcast taken from other tensors' shapes without arithmetic;
  * every metadata entry named in UTF-8 and pointing at a buffer that exists.
Anything else is a ``ModelError`` naming what is wrong. It reads the schema's fields by number
(schema.fbs), so it needs no generated code and works with every TFLite runtime. This is the one reader
of the flatbuffer in the runtime: the same pass returns the metadata (where the model card travels), as
spans of the file, so that a file whose many entries point at one large buffer costs nothing to read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .card import CARD_METADATA_NAME, ModelCard

MAX_ELEMENTS = 1 << 26  # one tensor: 64 M elements (a 4096 x 4096 x 4 map)
MAX_TOTAL_BYTES = 1 << 31  # every tensor together
MAX_MODEL_BYTES = 1 << 28  # the file: 256 MB (saliency models are 0.1 to 20 MB)
MAX_RANK = 6

# TensorType -> bytes per element (None: allowed but of no fixed size: only for non-constant tensors)
_TYPE_SIZES: dict[int, int | None] = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    5: None,  # STRING (attention-center has a file-name input)
    6: 1,  # BOOL
    7: 2,  # INT16
    9: 1,  # INT8
    10: 8,  # FLOAT64
    15: 4,  # UINT32
    16: 2,  # UINT16
}

# The builtin operators a saliency model may use here: code -> (name, min inputs, max inputs, outputs).
# They cover edgecrop's students, Twitter's FastGaze and Google's attention-center (the teacher).
OPERATORS: dict[int, tuple[str, int, int, int]] = {
    0: ("ADD", 2, 2, 1),
    1: ("AVERAGE_POOL_2D", 1, 1, 1),
    2: ("CONCATENATION", 1, 64, 1),
    3: ("CONV_2D", 2, 3, 1),
    4: ("DEPTHWISE_CONV_2D", 2, 3, 1),
    6: ("DEQUANTIZE", 1, 1, 1),
    9: ("FULLY_CONNECTED", 2, 3, 1),
    14: ("LOGISTIC", 1, 1, 1),
    17: ("MAX_POOL_2D", 1, 1, 1),
    18: ("MUL", 2, 2, 1),
    19: ("RELU", 1, 1, 1),
    21: ("RELU6", 1, 1, 1),
    22: ("RESHAPE", 1, 2, 1),
    23: ("RESIZE_BILINEAR", 2, 2, 1),
    25: ("SOFTMAX", 1, 1, 1),
    28: ("TANH", 1, 1, 1),
    34: ("PAD", 2, 2, 1),
    39: ("TRANSPOSE", 2, 2, 1),
    40: ("MEAN", 2, 2, 1),
    41: ("SUB", 2, 2, 1),
    42: ("DIV", 2, 2, 1),
    43: ("SQUEEZE", 1, 1, 1),
    45: ("STRIDED_SLICE", 4, 4, 1),
    47: ("EXP", 1, 1, 1),
    54: ("PRELU", 2, 2, 1),
    55: ("MAXIMUM", 2, 2, 1),
    57: ("MINIMUM", 2, 2, 1),
    59: ("NEG", 1, 1, 1),
    65: ("SLICE", 3, 3, 1),
    74: ("SUM", 2, 2, 1),
    76: ("RSQRT", 1, 1, 1),
    77: ("SHAPE", 1, 1, 1),
    82: ("REDUCE_MAX", 2, 2, 1),
    83: ("PACK", 1, 64, 1),
    92: ("SQUARE", 1, 1, 1),
    97: ("RESIZE_NEAREST_NEIGHBOR", 2, 2, 1),
    98: ("LEAKY_RELU", 1, 1, 1),
    106: ("ADD_N", 1, 64, 1),
    114: ("QUANTIZE", 1, 1, 1),
    117: ("HARD_SWISH", 1, 1, 1),
    126: ("BATCH_MATMUL", 2, 2, 1),
    130: ("BROADCAST_TO", 2, 2, 1),
    145: ("BROADCAST_ARGS", 2, 2, 1),
}
# quantised tensor types and the zero points each can hold: INT8, UINT8, INT16
_QUANTIZED_TYPES = {9: (-128, 127), 3: (0, 255), 7: (-32768, 32767)}
MIN_SCALE, MAX_SCALE = 1e-30, 1e4  # bundled models: 1e-6 to 0.12; LiteRT aborts on 0, negative, inf, 1e5
MAX_MULTIPLIER = 1e3  # input scale x weight scale / output scale of a weighted op (real models: below 1)
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
# operands that may be absent (-1): the bias of convolutions and fully connected layers
_OPTIONAL = {"CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}}
# operators whose second operand is a shape (or paddings) that sizes the output
_SHAPE_OPERANDS = {"RESHAPE", "BROADCAST_TO", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "PAD"}
# ... of which these may take one computed at run time, from other tensors' shapes without arithmetic (the
# teacher's layer norms do): such a size is bounded by tensors that exist. A resize or pad computed at run
# time could ask for any size, past every cap here, so theirs must be constant.
_COMPUTED_SHAPE_OK = {"RESHAPE", "BROADCAST_TO"}
# operators that move shape values around without arithmetic: their outputs are shapes if their inputs are
_SHAPE_PLUMBING = {"SHAPE", "BROADCAST_ARGS", "STRIDED_SLICE", "SLICE", "PACK", "CONCATENATION", "RESHAPE", "SQUEEZE"}


class _Bad(Exception):
    """Internal: the reason a file is refused."""


class _Buffer:
    """Bounds-checked little-endian reads of flatbuffer tables, vectors and scalars."""

    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)

    def _unpack(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise _Bad(f"offset {pos} is outside the file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def uoffset(self, pos: int) -> int:
        """The absolute position an offset at ``pos`` points to."""
        return self._check(pos + self._unpack("<I", pos))

    def _check(self, pos: int) -> int:
        if not 0 <= pos < self.n:
            raise _Bad(f"offset {pos} is outside the file")
        return pos

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table position, its vtable position, the vtable's size in bytes)."""
        vtable = pos - self._unpack("<i", pos)
        self._check(vtable)
        size = self._unpack("<H", vtable)
        if size < 4 or size % 2 or vtable + size > self.n:
            raise _Bad("a table's vtable is malformed")
        return pos, vtable, size

    def field(self, table: tuple[int, int, int], index: int) -> int | None:
        pos, vtable, size = table
        slot = 4 + 2 * index
        if slot + 2 > size:
            return None
        rel = self._unpack("<H", vtable + slot)
        return self._check(pos + rel) if rel else None

    def scalar(self, table: tuple[int, int, int], index: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def vector(self, table: tuple[int, int, int], index: int, item: int) -> tuple[int, int]:
        """(position of the first element, count) of a vector field ((0, 0) when absent)."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = self.uoffset(pos)
        count = self._unpack("<I", start)
        if start + 4 + count * item > self.n:
            raise _Bad("a vector runs past the end of the file")
        return start + 4, count

    def ints(self, table: tuple[int, int, int], index: int, fmt: str = "<i") -> list[int]:
        size = struct.calcsize(fmt)
        start, count = self.vector(table, index, size)
        return [self._unpack(fmt, start + size * k) for k in range(count)]

    def tables(self, table: tuple[int, int, int], index: int) -> list[tuple[int, int, int]]:
        start, count = self.vector(table, index, 4)
        return [self.table(self.uoffset(start + 4 * k)) for k in range(count)]


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    type: int
    buffer: int
    is_variable: bool


@dataclass(frozen=True)
class VerifiedModel:
    """What verification learnt of a model file besides that it is safe: its metadata entries."""

    data: bytes
    metadata_spans: dict[str, tuple[int, int]]  # name -> (start, end) of the entry's bytes in ``data``

    def metadata(self, name: str) -> bytes | None:
        """The bytes of one metadata entry (None when the model has none of that name)."""
        span = self.metadata_spans.get(name)
        return None if span is None else self.data[span[0] : span[1]]

    def card(self, name: str) -> ModelCard:
        """The model card in the metadata, or the default card (named ``name``) when there is none."""
        text = self.metadata(CARD_METADATA_NAME)
        if text is None:
            return ModelCard.default(name)
        try:
            return ModelCard.from_json(text)
        except ModelError as exc:
            raise ModelError(f"{name}: {exc}") from None


def read_card(data: bytes, name: str) -> ModelCard:
    """The card embedded in a model file, the file verified first (a bad file or card is a ModelError)."""
    return verify_model(data, name).card(name)


# schema.fbs field numbers
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 1, 2, 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_OPCODE_DEPRECATED, _OPCODE_CUSTOM, _OPCODE_BUILTIN = 0, 1, 3
_GRAPH_TENSORS, _GRAPH_INPUTS, _GRAPH_OUTPUTS, _GRAPH_OPERATORS = 0, 1, 2, 3
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANT, _TENSOR_VARIABLE = 0, 1, 2, 3, 4, 5
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS = 0, 1, 2
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_QUANT_SCALE, _QUANT_ZERO, _QUANT_DIM = 2, 3, 6


def verify_model(data: bytes, name: str) -> VerifiedModel:
    """Raise ModelError naming the first thing that makes ``data`` unsafe to give to the TFLite runtime;
    otherwise return its metadata."""
    try:
        return VerifiedModel(data, _verify(_Buffer(data)))
    except _Bad as exc:
        raise ModelError(f"{name}: unsafe or corrupt TFLite model ({exc})") from None
    except (struct.error, ValueError, OverflowError, IndexError) as exc:  # belt and braces
        raise ModelError(f"{name}: unsafe or corrupt TFLite model ({exc})") from None


def _verify(buf: _Buffer) -> dict[str, tuple[int, int]]:
    if buf.n < 8 or buf.data[4:8] != b"TFL3":
        raise _Bad("missing the 'TFL3' identifier")
    model = buf.table(buf.uoffset(0))
    spans = [_buffer_span(buf, b) for b in buf.tables(model, _MODEL_BUFFERS)]
    view = memoryview(buf.data)  # buffers as views of the file: never copied
    buffers = [view[a:b] if b > a else None for a, b in spans]
    opcodes = [_opcode(buf, c) for c in buf.tables(model, _MODEL_OPCODES)]
    graphs = buf.tables(model, _MODEL_SUBGRAPHS)
    if len(graphs) != 1:
        raise _Bad(f"{len(graphs)} subgraphs (edgecrop runs models with exactly one)")
    graph = graphs[0]
    tensors = [_tensor(buf, t, len(buffers)) for t in buf.tables(graph, _GRAPH_TENSORS)]
    total = 0
    scales: list[np.ndarray] = []
    for k, (t, tt) in enumerate(zip(tensors, buf.tables(graph, _GRAPH_TENSORS))):
        elements = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
        itemsize = _TYPE_SIZES[t.type]
        data = buffers[t.buffer]
        if data is not None and len(data):
            if itemsize is None or len(data) != elements * itemsize:
                raise _Bad(f"tensor {k}: {len(data)} bytes of data for shape {list(t.shape)}")
        total += elements * (itemsize or 1)
        scales.append(_check_quantization(buf, tt, t, k))
    if total > MAX_TOTAL_BYTES:
        raise _Bad(f"the tensors need {total} bytes (more than {MAX_TOTAL_BYTES})")

    def index(i: int, what: str) -> int:
        if not 0 <= i < len(tensors):
            raise _Bad(f"{what} refers to tensor {i} of {len(tensors)}")
        return i

    inputs = [index(i, "the graph's input") for i in buf.ints(graph, _GRAPH_INPUTS)]
    outputs = [index(i, "the graph's output") for i in buf.ints(graph, _GRAPH_OUTPUTS)]
    if not inputs or not outputs:
        raise _Bad("the graph has no input or no output")
    constant = {k for k, t in enumerate(tensors) if buffers[t.buffer]}
    empty = {k for k, t in enumerate(tensors) if 0 in t.shape}  # zero elements: nothing to write or read
    available = set(inputs) | constant | empty | {k for k, t in enumerate(tensors) if t.is_variable}
    written: set[int] = set()
    shapes: set[int] = set()  # tensors holding shapes of other tensors (see _SHAPE_PLUMBING)
    for n, op in enumerate(buf.tables(graph, _GRAPH_OPERATORS)):
        code = buf.scalar(op, _OP_OPCODE, "<I")
        if code >= len(opcodes):
            raise _Bad(f"operator {n} uses operator code {code} of {len(opcodes)}")
        op_name, least, most, n_out = opcodes[code]
        raw_ins = buf.ints(op, _OP_INPUTS)
        optional = _OPTIONAL.get(op_name, set())
        ins = [-1 if i == -1 and k in optional else index(i, f"{op_name} input") for k, i in enumerate(raw_ins)]
        outs = [index(i, f"{op_name} output") for i in buf.ints(op, _OP_OUTPUTS)]
        if not least <= len(ins) <= most or len(outs) != n_out:
            raise _Bad(f"operator {n} ({op_name}) has {len(ins)} inputs and {len(outs)} outputs")
        for i in ins:
            if i != -1 and i not in available:
                raise _Bad(f"operator {n} ({op_name}) reads tensor {i} before anything writes it")
        for i in outs:
            if i in constant or i in inputs or i in written:
                raise _Bad(f"operator {n} ({op_name}) writes tensor {i}, which is constant, an input or written twice")
        written.update(outs)
        available.update(outs)
        if op_name in _WEIGHTED and len(ins) > 1 and all(len(scales[i]) for i in (ins[0], ins[1], outs[0])):
            multiplier = float(scales[ins[0]][0]) * scales[ins[1]].astype(np.float64) / float(scales[outs[0]][0])
            if multiplier.max() > MAX_MULTIPLIER:
                raise _Bad(f"operator {n} ({op_name}) rescales by {multiplier.max():.3g} (at most {MAX_MULTIPLIER:g})")
        if op_name == "SHAPE" or (
            op_name in _SHAPE_PLUMBING and all(i in shapes or i in constant or i not in written for i in ins)
        ):
            shapes.update(outs)
        if op_name in _SHAPE_OPERANDS and len(ins) > 1:  # index 1 is never optional
            if ins[1] in constant:
                _check_shape_operand(buffers[tensors[ins[1]].buffer] or b"", tensors[ins[1]], op_name, n)
            elif op_name not in _COMPUTED_SHAPE_OK or ins[1] not in shapes:
                raise _Bad(f"operator {n} ({op_name}) takes a size computed at run time (edgecrop needs it fixed)")
    for i in outputs:
        if i not in available:
            raise _Bad(f"the graph's output {i} is never written")
    metadata = {}
    for entry in buf.tables(model, _MODEL_METADATA):
        start, count = buf.vector(entry, _METADATA_NAME, 1)
        try:
            name = buf.data[start : start + count].decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad("a metadata entry's name is not UTF-8") from None
        points_at = buf.scalar(entry, _METADATA_BUFFER, "<I")
        if points_at >= len(spans):
            raise _Bad(f"metadata {name!r} points at buffer {points_at} of {len(spans)}")
        metadata[name] = spans[points_at]
    return metadata


def _buffer_span(buf: _Buffer, b: tuple[int, int, int]) -> tuple[int, int]:
    """(start, end) of a buffer's data in the file ((0, 0) when it has none)."""
    offset = buf.scalar(b, _BUFFER_OFFSET, "<Q")
    if offset > 1:  # data kept after the flatbuffer
        size = buf.scalar(b, _BUFFER_SIZE, "<Q")
        if offset + size > buf.n:
            raise _Bad("a buffer lies outside the file")
        return offset, offset + size
    start, count = buf.vector(b, _BUFFER_DATA, 1)
    return (start, start + count) if count else (0, 0)


def _opcode(buf: _Buffer, c: tuple[int, int, int]) -> tuple[str, int, int, int]:
    if buf.field(c, _OPCODE_CUSTOM) is not None:
        raise _Bad("custom operators are not run by edgecrop")
    code = max(buf.scalar(c, _OPCODE_DEPRECATED, "<b"), buf.scalar(c, _OPCODE_BUILTIN, "<i"))
    if code not in OPERATORS:
        raise _Bad(f"operator code {code} is not one edgecrop runs")
    return OPERATORS[code]


def _tensor(buf: _Buffer, t: tuple[int, int, int], n_buffers: int) -> _Tensor:
    shape = tuple(buf.ints(t, _TENSOR_SHAPE))
    kind = buf.scalar(t, _TENSOR_TYPE, "<b")
    buffer = buf.scalar(t, _TENSOR_BUFFER, "<I")
    if kind not in _TYPE_SIZES:
        raise _Bad(f"a tensor has type {kind}, which edgecrop does not run")
    if len(shape) > MAX_RANK or any(d < 0 or d > MAX_ELEMENTS for d in shape):
        raise _Bad(f"a tensor has shape {list(shape)}")
    if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise _Bad(f"a tensor of shape {list(shape)} has more than {MAX_ELEMENTS} elements")
    if buffer >= n_buffers:
        raise _Bad(f"a tensor refers to buffer {buffer} of {n_buffers}")
    start, count = buf.vector(t, _TENSOR_NAME, 1)
    try:
        buf.data[start : start + count].decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad("a tensor's name is not UTF-8") from None
    return _Tensor(shape, kind, buffer, bool(buf.scalar(t, _TENSOR_VARIABLE, "<B")))


def _check_quantization(buf: _Buffer, tt: tuple[int, int, int], t: _Tensor, k: int) -> np.ndarray:
    """The tensor's scales (empty when it has none), each checked: an 8- or 16-bit tensor must have them,
    finite and in a sane range, with zero points its type can hold (LiteRT aborts the process otherwise)."""
    pos = buf.field(tt, _TENSOR_QUANT)
    limits = _QUANTIZED_TYPES.get(t.type)
    if pos is None:
        if limits is not None:
            raise _Bad(f"tensor {k}: an 8/16-bit tensor without quantisation")
        return np.zeros(0)
    q = buf.table(buf.uoffset(pos))
    start, scales = buf.vector(q, _QUANT_SCALE, 4)
    zstart, zeros = buf.vector(q, _QUANT_ZERO, 8)
    dim = buf.scalar(q, _QUANT_DIM, "<i")
    if scales and zeros and scales != zeros:
        raise _Bad(f"tensor {k}: {scales} scales but {zeros} zero points")
    if scales > 1 and not (0 <= dim < len(t.shape) and t.shape[dim] == scales):
        raise _Bad(f"tensor {k}: {scales} scales along dimension {dim} of shape {list(t.shape)}")
    values = np.frombuffer(buf.data, "<f4", scales, start) if scales else np.zeros(0, np.float32)
    if limits is None:
        return values
    if not scales:
        raise _Bad(f"tensor {k}: an 8/16-bit tensor without scales")
    if not (np.isfinite(values).all() and values.min() >= MIN_SCALE and values.max() <= MAX_SCALE):
        raise _Bad(f"tensor {k}: quantisation scale out of range [{MIN_SCALE:g}, {MAX_SCALE:g}]")
    points = np.frombuffer(buf.data, "<i8", zeros, zstart) if zeros else np.zeros(0, np.int64)
    if points.size and (points.min() < limits[0] or points.max() > limits[1]):
        raise _Bad(f"tensor {k}: a zero point outside {limits[0]}..{limits[1]}")
    return values


def _check_shape_operand(data: bytes | memoryview, t: _Tensor, op_name: str, n: int) -> None:
    if t.type not in (2, 4):  # INT32, INT64
        raise _Bad(f"operator {n} ({op_name}) takes a shape of type {t.type}")
    values = np.frombuffer(data, dtype="<i4" if t.type == 2 else "<i8").astype(np.int64)
    if values.size and (values.min() < -1 or values.max() > MAX_ELEMENTS):
        raise _Bad(f"operator {n} ({op_name}) asks for a size of {int(values.max())}")
    if op_name != "PAD" and float(np.prod(np.clip(values, 1, None).astype(np.float64))) > MAX_ELEMENTS:
        raise _Bad(f"operator {n} ({op_name}) asks for more than {MAX_ELEMENTS} elements")
