"""Reader (and a small writer, for tests) of the ``.vxm`` container Twitter's FastGaze weights come in.

The format, as read from the released file (no documentation exists):

    b"\\x01tPM"  uint32 record count
    then per record: uint32 key length, key (ASCII, NUL-terminated), uint32 value length, value

All integers little-endian. Keys are ``<layer index><field>`` (``0Type``, ``3w``, ``14alpha``) plus the
file-level ``layerCount`` and ``modelType``. A field with a ``<field>.dtype`` sibling is a tensor
(``float32``, with ``.ndims``, ``.shape`` and ``.shape[i]``); every other 4-byte value is an int32.
Layer types: 0 convolution (``w`` as out x in x kh x kw, ``b``, ``Act``, optional ``alpha``),
2 pooling (``Pool``), 3 Gaussian blur (``KernelSize``, ``Std``).

Every length is checked against the file before it is used, so a truncated or foreign file raises
``VxmError`` with the offset and the reason, never anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"\x01tPM"
MAX_KEY = 256
LAYER_CONV, LAYER_POOL, LAYER_BLUR = 0, 2, 3
_LAYER_FIELDS = {LAYER_CONV: {"Act", "w", "b"}, LAYER_POOL: {"Pool"}, LAYER_BLUR: {"KernelSize", "Std"}}
_DTYPES = {"float32": np.dtype("<f4")}


class VxmError(ValueError):
    """The file is not a readable .vxm FastGaze model."""


@dataclass(frozen=True)
class Layer:
    index: int
    type: int
    act: int | None = None  # activation code of a convolution
    weights: np.ndarray | None = None  # out x in x kh x kw
    bias: np.ndarray | None = None
    alpha: float | None = None
    pool: int | None = None  # pooling code
    kernel_size: int | None = None  # Gaussian blur
    std: float | None = None

    @property
    def kind(self) -> str:
        return {LAYER_CONV: "conv", LAYER_POOL: "pool", LAYER_BLUR: "blur"}[self.type]

    def need(self, name: str) -> Any:
        """A field this layer's kind must have (a VxmError when it is missing)."""
        value = getattr(self, name)
        if value is None:
            raise VxmError(f"layer {self.index} ({self.kind}): no {name}")
        return value


@dataclass(frozen=True)
class VxmModel:
    layers: list[Layer]
    model_type: int
    records: dict[str, object] = field(repr=False)

    def describe(self) -> str:
        """One line per layer: what it is and its shape."""
        lines = []
        for layer in self.layers:
            if layer.kind == "conv":
                o, i, kh, kw = layer.need("weights").shape
                extra = f" alpha={layer.alpha:.4f}" if layer.alpha is not None else ""
                lines.append(f"{layer.index:>2} conv {kh}x{kw} {i}->{o} act={layer.act}{extra}")
            elif layer.kind == "pool":
                lines.append(f"{layer.index:>2} pool code={layer.pool}")
            else:
                lines.append(f"{layer.index:>2} blur kernel={layer.kernel_size} std={layer.std}")
        return "\n".join(lines)


def read_records(data: bytes) -> dict[str, bytes]:
    """The raw key -> value bytes of a .vxm file, every length bounds-checked."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise VxmError("not a .vxm file (bad magic; expected b'\\x01tPM')")
    (count,) = struct.unpack_from("<I", data, 4)
    if count > (len(data) - 8) // 10:  # each record takes at least 10 bytes
        raise VxmError(f"header claims {count} records, more than {len(data)} bytes can hold")
    off, records = 8, {}
    for n in range(count):
        key = _chunk(data, off, n, "key")
        off += 4 + len(key)
        if len(key) < 2 or len(key) > MAX_KEY or key[-1] != 0 or not key[:-1].isascii() or 0 in key[:-1]:
            raise VxmError(f"record {n} at byte {off - len(key)}: malformed key {key[:40]!r}")
        value = _chunk(data, off, n, "value")
        off += 4 + len(value)
        name = key[:-1].decode("ascii")
        if name in records:
            raise VxmError(f"record {n}: duplicate key {name!r}")
        records[name] = value
    if off != len(data):
        raise VxmError(f"{len(data) - off} unexpected bytes after the last of {count} records")
    return records


def _chunk(data: bytes, off: int, n: int, what: str) -> bytes:
    if off + 4 > len(data):
        raise VxmError(f"truncated: record {n} {what} length at byte {off} is past the end ({len(data)} bytes)")
    (size,) = struct.unpack_from("<I", data, off)
    if off + 4 + size > len(data):
        raise VxmError(f"truncated: record {n} {what} of {size} bytes at byte {off + 4} runs past the end")
    return data[off + 4 : off + 4 + size]


def decode(records: dict[str, bytes]) -> dict[str, object]:
    """Typed values: tensors as numpy arrays of their declared shape, other 4-byte values as int32."""
    out: dict[str, object] = {}
    for name, value in records.items():
        if name.endswith(".dtype"):
            out[name] = _text(name, value)
        elif f"{name}.dtype" in records:
            out[name] = _tensor(name, value, records)
        elif ".shape" in name and name.endswith(".shape"):
            if len(value) % 4:
                raise VxmError(f"{name}: {len(value)} bytes is not a list of int32")
            out[name] = tuple(int(v) for v in np.frombuffer(value, "<i4"))
        elif len(value) == 4:
            out[name] = int(struct.unpack("<i", value)[0])
        else:
            raise VxmError(f"{name}: unexpected {len(value)}-byte value")
    return out


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise VxmError(f"{name}: not ASCII text") from None


def _tensor(name: str, value: bytes, records: dict[str, bytes]) -> np.ndarray:
    dtype_name = _text(f"{name}.dtype", records[f"{name}.dtype"])
    if dtype_name not in _DTYPES:
        raise VxmError(f"{name}: unsupported dtype {dtype_name!r}")
    shape_raw = records.get(f"{name}.shape")
    ndims_raw = records.get(f"{name}.ndims")
    if shape_raw is None or ndims_raw is None or len(ndims_raw) != 4 or len(shape_raw) % 4:
        raise VxmError(f"{name}: missing or malformed .shape/.ndims")
    shape = tuple(int(v) for v in np.frombuffer(shape_raw, "<i4"))
    if struct.unpack("<i", ndims_raw)[0] != len(shape) or any(d <= 0 for d in shape):
        raise VxmError(f"{name}: shape {shape} does not match ndims or has a non-positive size")
    dtype = _DTYPES[dtype_name]
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(value):
        raise VxmError(f"{name}: {len(value)} bytes do not hold a {dtype_name} tensor of shape {shape}")
    array = np.frombuffer(value, dtype).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise VxmError(f"{name}: non-finite weights")
    return array


def read_vxm(source: str | Path | bytes) -> VxmModel:
    """Parse and validate a FastGaze .vxm model (path or bytes)."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise VxmError(f"cannot read {source}: {exc.strerror or exc}") from None
    values = decode(read_records(data))
    count = values.get("layerCount")
    if not isinstance(count, int) or not 0 < count <= 1000:
        raise VxmError(f"layerCount missing or implausible: {count!r}")
    layers = [_layer(i, values) for i in range(count)]
    _check_chain(layers)
    return VxmModel(layers, _int(values.get("modelType", -1), "modelType"), values)


def _layer(i: int, values: dict[str, object]) -> Layer:
    kind = values.get(f"{i}Type")
    if kind not in _LAYER_FIELDS:
        raise VxmError(f"layer {i}: unknown or missing type {kind!r}")
    missing = [f for f in _LAYER_FIELDS[kind] if f"{i}{f}" not in values]
    if missing:
        raise VxmError(f"layer {i}: missing {', '.join(sorted(missing))}")
    get = lambda f: values.get(f"{i}{f}")  # noqa: E731
    if kind == LAYER_POOL:
        return Layer(i, kind, pool=_int(get("Pool"), f"{i}Pool"))
    if kind == LAYER_BLUR:
        return Layer(i, kind, kernel_size=_int(get("KernelSize"), f"{i}KernelSize"), std=_float(get("Std"), f"{i}Std"))
    w, b, alpha = get("w"), get("b"), get("alpha")
    if not isinstance(w, np.ndarray) or w.ndim != 4 or not isinstance(b, np.ndarray) or b.shape != (w.shape[0],):
        raise VxmError(f"layer {i}: weights/bias are not an out x in x kh x kw tensor and a matching vector")
    if alpha is not None and not (isinstance(alpha, np.ndarray) and alpha.size == 1):
        raise VxmError(f"layer {i}: alpha is not a single float32")
    return Layer(
        i,
        kind,
        act=_int(get("Act"), f"{i}Act"),
        weights=w,
        bias=b,
        alpha=None if alpha is None else float(alpha.ravel()[0]),
    )


def _int(value: object, name: str) -> int:
    if not isinstance(value, int):
        raise VxmError(f"{name}: not an int32")
    return value


def _float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VxmError(f"{name}: not a number")
    return float(value)


def _check_chain(layers: list[Layer]) -> None:
    """Each convolution takes the previous one's channels; RGB in, one map out, blur last."""
    channels = 3
    for layer in layers:
        if layer.kind == "conv":
            out_c, in_c, kh, kw = layer.need("weights").shape
            if in_c != channels or kh != kw or kh % 2 == 0:
                raise VxmError(
                    f"layer {layer.index}: {kh}x{kw} kernel over {in_c} channels, expected odd square over {channels}"
                )
            channels = out_c
        elif layer.kind == "blur" and (layer.need("kernel_size") % 2 == 0 or layer.need("std") <= 0):
            raise VxmError(f"layer {layer.index}: blur needs an odd kernel and a positive std")
    if channels != 1:
        raise VxmError(f"the network ends with {channels} channels, not one saliency map")


def write_vxm(layers: list[Layer], model_type: int = 2) -> bytes:
    """Serialise layers in the same container (tests build small FastGaze-like files with it)."""
    records: list[tuple[str, bytes]] = []

    def put_int(key: str, v: int) -> None:
        records.append((key, struct.pack("<i", v)))

    def put_tensor(key: str, a: np.ndarray) -> None:
        a = np.asarray(a, "<f4")
        records.append((key, a.tobytes()))
        records.append((f"{key}.dtype", b"float32"))
        put_int(f"{key}.ndims", a.ndim)
        records.append((f"{key}.shape", struct.pack(f"<{a.ndim}i", *a.shape)))
        if a.ndim > 1:
            put_int(f"{key}.shape.listlength", a.ndim)
            for d, n in enumerate(a.shape):
                put_int(f"{key}.shape[{d}]", n)

    for layer in layers:
        i = layer.index
        if layer.kind == "conv":
            put_int(f"{i}Act", layer.need("act"))
            put_tensor(f"{i}b", layer.need("bias"))
            put_tensor(f"{i}w", layer.need("weights"))
            if layer.alpha is not None:
                put_tensor(f"{i}alpha", np.array([layer.alpha]))
        elif layer.kind == "pool":
            put_int(f"{i}Pool", layer.need("pool"))
        else:
            put_int(f"{i}KernelSize", layer.need("kernel_size"))
            put_int(f"{i}Std", int(layer.need("std")))
        put_int(f"{i}Type", layer.type)
    put_int("layerCount", len(layers))
    put_int("modelType", model_type)
    body = b"".join(
        struct.pack("<I", len(k) + 1) + k.encode() + b"\0" + struct.pack("<I", len(v)) + v for k, v in sorted(records)
    )
    return MAGIC + struct.pack("<I", len(records)) + body
