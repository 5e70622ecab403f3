"""Read the named metadata buffers of a .tflite file without TensorFlow or generated schema code.

The model card travels inside the model as a custom metadata buffer; the runtime must read it on any
backend (ai-edge-litert, tflite-runtime, tensorflow.lite), so this parses just the few flatbuffer
tables needed: Model.buffers, Model.metadata, Metadata.name/buffer and Buffer.data/offset/size.
"""

from __future__ import annotations

import struct

# Field numbers from the TFLite schema (schema.fbs).
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_METADATA_NAME = 0
_METADATA_BUFFER = 1
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2

IDENTIFIER = b"TFL3"


class ModelFormatError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer."""


def is_tflite(data: bytes) -> bool:
    return len(data) >= 8 and data[4:8] == IDENTIFIER


def read_metadata(data: bytes) -> dict[str, bytes]:
    """Return {metadata name: buffer bytes} for every metadata entry of a TFLite model."""
    if not is_tflite(data):
        raise ModelFormatError("not a TFLite model (missing 'TFL3' identifier)")
    try:
        return _read(memoryview(data))
    except (struct.error, IndexError) as exc:
        raise ModelFormatError(f"corrupt TFLite flatbuffer ({exc})") from exc


def _u32(buf, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _field(buf, table: int, index: int) -> int | None:
    """Absolute position of a table field, or None when absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot + 2 > vt_size:
        return None
    rel = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + rel if rel else None


def _deref(buf, pos: int) -> int:
    return pos + _u32(buf, pos)


def _tables(buf, table: int, index: int) -> list[int]:
    pos = _field(buf, table, index)
    if pos is None:
        return []
    vec = _deref(buf, pos)
    count = _u32(buf, vec)
    if vec + 4 + 4 * count > len(buf):
        raise ModelFormatError("vector runs past the end of the file")
    return [_deref(buf, vec + 4 + 4 * i) for i in range(count)]


def _bytes(buf, table: int, index: int) -> bytes | None:
    pos = _field(buf, table, index)
    if pos is None:
        return None
    vec = _deref(buf, pos)
    n = _u32(buf, vec)
    if vec + 4 + n > len(buf):
        raise ModelFormatError("vector runs past the end of the file")
    return bytes(buf[vec + 4 : vec + 4 + n])


def _scalar(buf, table: int, index: int, fmt: str, default: int = 0) -> int:
    pos = _field(buf, table, index)
    return default if pos is None else struct.unpack_from(fmt, buf, pos)[0]


def _read(buf) -> dict[str, bytes]:
    model = _deref(buf, 0)
    buffers = _tables(buf, model, _MODEL_BUFFERS)
    out: dict[str, bytes] = {}
    for meta in _tables(buf, model, _MODEL_METADATA):
        name = (_bytes(buf, meta, _METADATA_NAME) or b"").decode("utf-8", "replace")
        index = _scalar(buf, meta, _METADATA_BUFFER, "<I")
        if index >= len(buffers):
            raise ModelFormatError(f"metadata {name!r} points at missing buffer {index}")
        buffer = buffers[index]
        offset = _scalar(buf, buffer, _BUFFER_OFFSET, "<Q")
        if offset > 1:  # large models keep buffer data outside the flatbuffer
            size = _scalar(buf, buffer, _BUFFER_SIZE, "<Q")
            out[name] = bytes(buf[offset : offset + size])
        else:
            out[name] = _bytes(buf, buffer, _BUFFER_DATA) or b""
    return out
