"""Write PyTorch ``.pth`` files without PyTorch (its zip layout, the pickle written opcode by opcode), so
that the safe reader and the pretrained trunk are tested without the real weights or torch installed."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np


def _text(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)  # BININT


def _tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"  # MARK ... TUPLE


ORDERED_DICT = b"ccollections\nOrderedDict\n)R"  # GLOBAL, EMPTY_TUPLE, REDUCE


def state_dict_pickle(shapes: dict[str, tuple[int, ...]], storage_global: bytes = b"ctorch\nFloatStorage\n") -> bytes:
    """The data.pkl of a state dict of float32 tensors, storage k holding the k-th tensor."""
    out = b"\x80\x02" + ORDERED_DICT + b"("
    for k, (name, shape) in enumerate(shapes.items()):
        numel = int(np.prod(shape)) if shape else 1
        strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
        pid = b"(" + _text("storage") + storage_global + _text(str(k)) + _text("cpu") + _int(numel) + b"t"
        args = b"(" + pid + b"Q" + _int(0) + _tuple(shape) + _tuple(strides) + b"\x89" + ORDERED_DICT + b"t"
        out += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R"
    return out + b"u."  # SETITEMS, STOP


def write_pth(path: Path, arrays: dict[str, np.ndarray], data_pkl: bytes | None = None) -> Path:
    """A .pth file (zip layout) of ``arrays`` as float32 tensors (or with another data.pkl, for attacks)."""
    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl or state_dict_pickle({k: v.shape for k, v in arrays.items()}))
        for k, a in enumerate(arrays.values()):
            z.writestr(f"archive/data/{k}", a.astype("<f4").tobytes())
    return path


def write_legacy_pth(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The same in PyTorch's legacy layout (before 1.6; torchvision's MobileNetV2 file): header pickles, the
    state dict, the storage keys, then each storage's element count and bytes."""
    import pickle

    from converters.torch_weights import LEGACY_MAGIC

    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    out = b"".join(pickle.dumps(v, protocol=2) for v in (LEGACY_MAGIC, 1001, info))
    out += state_dict_pickle({k: v.shape for k, v in arrays.items()})
    out += pickle.dumps([str(k) for k in range(len(arrays))], protocol=2)
    for a in arrays.values():
        out += struct.pack("<q", a.size) + a.astype("<f4").tobytes()
    path.write_bytes(out)
    return path
