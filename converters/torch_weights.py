"""Read a PyTorch ``.pth`` state dict into NumPy arrays without PyTorch, and without running its pickle.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names: ``torch.load`` of an
untrusted file is code execution. Pretrained weights come from packages we do not control, so this reader
allows exactly what a state dict of tensors needs (an ``OrderedDict``, ``torch._utils._rebuild_tensor_v2``
and the typed storages) and refuses every other global. It also spares the ``convert`` extra a 700 MB+
PyTorch install for the sake of reading 14 MB of numbers. Both layouts are read: the legacy one (a run of
pickles followed by raw storages; what torchvision's 2018-2020 weights use) and the zip one (PyTorch 1.6+).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_FILE_BYTES = 1 << 30
_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsError(ValueError):
    """The file is not a state dict of tensors (or is damaged)."""


class _StorageType:
    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype)


class _Storage:
    """A flat array filled in after the pickle (legacy) or read from the zip member (zip layout)."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise WeightsError("a tensor's storage is missing from the file")
        item = data.itemsize
        need = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1 if all(self.size) else 0
        if self.offset < 0 or any(s < 0 for s in self.stride) or need > data.size:
            raise WeightsError("a tensor reaches outside its storage")
        if not self.size:  # a scalar
            return np.array(data[self.offset])
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.array(view)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _Tensor:
    if not isinstance(storage, _Storage) or not isinstance(offset, int):
        raise WeightsError("a malformed tensor record")
    if not all(isinstance(v, int) for v in (*size, *stride)) or len(size) != len(stride):
        raise WeightsError("a malformed tensor shape")
    return _Tensor(storage, offset, size, stride)


# what a pickled state dict is made of; anything else (BUILD, INST, OBJ, EXT*, LONG4 ...) is refused unread
_OPCODES = frozenset(
    """PROTO FRAME STOP MARK GLOBAL STACK_GLOBAL REDUCE BINPERSID NONE NEWTRUE NEWFALSE BININT BININT1 BININT2
    LONG1 BINFLOAT BINUNICODE SHORT_BINUNICODE BINUNICODE8 SHORT_BINSTRING BINSTRING BINBYTES SHORT_BINBYTES
    EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS
    BINPUT LONG_BINPUT PUT BINGET LONG_BINGET GET MEMOIZE BUILD""".split()
)
_MAX_MEMO = 1 << 20  # a memo index asks the unpickler for a table that large: 2^31 would be 16 GB


def _load(f: IO[bytes], storages: dict[str, _Storage]) -> Any:
    """One pickle from ``f``, its opcodes checked (without running anything) before it is unpickled."""
    start = f.tell()
    for op, arg, _ in pickletools.genops(f):
        if op.name not in _OPCODES:
            raise WeightsError(f"pickle opcode {op.name} is not part of a state dict")
        if op.name.endswith("PUT") and isinstance(arg, int) and not 0 <= arg < _MAX_MEMO:
            raise WeightsError("a pickle memo index out of range")
    f.seek(start)
    return _Unpickler(f, storages).load()


class _StateDict(OrderedDict):
    """What ``collections.OrderedDict`` resolves to here: a pickle's BUILD may set attributes on it
    (torch saves ``_metadata`` so), never on the real class."""


class _Unpickler(pickle._Unpickler):  # the Python unpickler: its BUILD can be restricted (below)
    stack: list[Any]

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def _build(self) -> None:
        """BUILD only as a state dict uses it: plain attributes on a state dict or a tensor record."""
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, (_StateDict, _Tensor)) or not isinstance(state, dict):
            raise WeightsError("a pickle sets state on something that is not a state dict")
        target.__dict__.update({str(k): v for k, v in state.items()})

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _build  # type: ignore[assignment]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return _StateDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _StorageType(_STORAGES[name])
        raise WeightsError(f"refusing {module}.{name}: only tensors are read from a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError("a malformed storage record")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise WeightsError("a malformed storage record")
        if key not in self.storages:
            self.storages[key] = _Storage(kind.dtype, numel)
        return self.storages[key]


def _state_dict(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, _Tensor) for v in obj.values()):
        raise WeightsError("the file holds no state dict of tensors")
    return {str(k): v.array() for k, v in obj.items()}


def _read_legacy(f: IO[bytes]) -> dict[str, np.ndarray]:
    if _load(f, {}) != LEGACY_MAGIC:  # the header pickles are plain values, checked like the rest
        raise WeightsError("not a PyTorch weights file")
    _load(f, {}), _load(f, {})  # protocol version, system info
    storages: dict[str, _Storage] = {}
    obj = _load(f, storages)
    keys = _load(f, {})
    if not isinstance(keys, list):
        raise WeightsError("a malformed storage list")
    for key in keys:
        storage = storages.get(str(key))
        head = f.read(8)
        if storage is None or len(head) != 8:
            raise WeightsError("a storage is missing or truncated")
        (numel,) = struct.unpack("<q", head)
        if numel != storage.numel:
            raise WeightsError("a storage's size differs from its record")
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsError("a storage is truncated")
        storage.data = np.frombuffer(raw, storage.dtype)
    return _state_dict(obj)


def _read_zip(z: zipfile.ZipFile) -> dict[str, np.ndarray]:
    names = z.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
        raise WeightsError("no data.pkl in the archive")
    if z.getinfo(pkl).file_size > MAX_FILE_BYTES:  # the zip's own claim, checked before inflating
        raise WeightsError("data.pkl is too large")
    root = pkl[: -len("data.pkl")]
    storages: dict[str, _Storage] = {}
    obj = _load(io.BytesIO(z.read(pkl)), storages)
    for key, storage in storages.items():
        member = f"{root}data/{key}"
        if member not in names or z.getinfo(member).file_size != storage.numel * storage.dtype.itemsize:
            raise WeightsError(f"storage {key} is missing or of the wrong size")
        storage.data = np.frombuffer(z.read(member), storage.dtype)
    return _state_dict(obj)


def read_state_dict(path: str | Path, content: bytes | None = None) -> dict[str, np.ndarray]:
    """{parameter name: array} of a ``.pth`` file (or of its ``content``, already read); ``WeightsError`` for
    anything that is not one."""
    path = Path(path)
    size = len(content) if content is not None else path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise WeightsError(f"{path.name}: larger than {MAX_FILE_BYTES >> 20} MB")
    # read whole and parsed from memory: a length field in the file can then ask for no more than is there
    data = io.BytesIO(content if content is not None else path.read_bytes())
    try:
        if zipfile.is_zipfile(data):
            with zipfile.ZipFile(data) as z:
                return _read_zip(z)
        data.seek(0)  # is_zipfile read the end of it
        return _read_legacy(data)
    except WeightsError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        MemoryError,
        RecursionError,
        NotImplementedError,  # zip features Python does not read
        RuntimeError,  # an encrypted zip member
        zlib.error,
        struct.error,
        zipfile.BadZipFile,
    ) as exc:
        raise WeightsError(f"{path.name}: not a readable weights file ({type(exc).__name__})") from None
