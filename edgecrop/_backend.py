"""Find a TFLite interpreter and load accelerator delegates, whichever runtime is installed.

ai-edge-litert is the maintained runtime; 32-bit ARM has no wheel of it, so fall back to
tflite-runtime and then to TensorFlow's own interpreter, and say which one is in use.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from dataclasses import dataclass
from typing import Any, Callable

from .errors import BackendError, DelegateError


@dataclass(frozen=True)
class Backend:
    name: str  # the importable module that provides the interpreter
    version: str
    interpreter_class: Callable[..., Any]
    load_delegate: Callable[..., Any]


# Aliases for well-known delegates: (shared library, default options).
# Arm NN's own default backend is the slow reference one, so ask for the NEON backend first.
_DELEGATES: dict[str, tuple[str, dict[str, str]]] = {
    "edgetpu": (
        {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(
            platform.system(), "libedgetpu.so.1"
        ),
        {},
    ),
    "armnn": ("libarmnnDelegate.so", {"backends": "CpuAcc,CpuRef", "logging-severity": "warning"}),
}


@functools.cache
def get_backend() -> Backend:
    """The first importable runtime of ai-edge-litert, tflite-runtime, tensorflow.lite."""
    try:
        from ai_edge_litert import interpreter as lite

        return Backend("ai_edge_litert", _version("ai-edge-litert"), lite.Interpreter, lite.load_delegate)
    except ImportError as exc:
        _reraise_signal(exc)
    try:
        from tflite_runtime import interpreter as lite

        return Backend("tflite_runtime", _version("tflite-runtime"), lite.Interpreter, lite.load_delegate)
    except ImportError as exc:
        _reraise_signal(exc)
    try:
        import tensorflow as tf  # last resort only

        return Backend("tensorflow.lite", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    except ImportError as exc:
        _reraise_signal(exc)
        raise BackendError(
            "no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime on 32-bit ARM)"
        ) from exc


def _reraise_signal(exc: ImportError) -> None:
    """A Ctrl-C or SIGTERM that lands in a compiled module's initialisation comes back as that module's
    ImportError ("initialization failed", caused by the signal's exception): raise the signal's exception,
    not a missing (or another) runtime."""
    cause = exc.__cause__ or exc.__context__
    for _ in range(16):  # a chain, not a cycle: a few links at most
        if cause is None:
            return
        if not isinstance(cause, Exception):  # KeyboardInterrupt, SystemExit, the command's Terminated
            raise cause
        cause = cause.__cause__ or cause.__context__


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def delegate_library(spec: str) -> tuple[str, dict[str, str]]:
    """Resolve a delegate alias ('edgetpu', 'armnn') or a library path to (library, default options)."""
    library, defaults = _DELEGATES.get(spec, (spec, {}))
    return library, dict(defaults)


def load_delegate(spec: str, options: dict[str, str] | None = None) -> Any:
    """Load an external delegate; a missing or broken library raises DelegateError naming it.

    The library is opened with ctypes first: the runtime's own loader leaves a half-built Delegate
    behind on failure, whose ``__del__`` prints a traceback; and a library that is not a delegate at all
    (``libm.so.6``) is refused here rather than by the runtime."""
    library, merged = delegate_library(spec)
    merged.update({k: str(v) for k, v in (options or {}).items()})
    try:
        handle = ctypes.CDLL(library)
    except OSError as exc:
        raise DelegateError(f"cannot load delegate library '{library}': {exc}") from None
    if not hasattr(handle, "tflite_plugin_create_delegate"):
        raise DelegateError(f"'{library}' is not a TFLite delegate library (no tflite_plugin_create_delegate)")
    try:
        return get_backend().load_delegate(library, merged)
    except (ValueError, OSError, RuntimeError) as exc:
        raise DelegateError(f"cannot load delegate library '{library}': {exc}") from None
