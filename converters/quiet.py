"""TensorFlow's C++ start-up and converter chatter kept off the user's stderr.

TensorFlow writes straight to file descriptor 2 while it loads (absl's "All log messages before
absl::InitializeLog()", a CUDA probe's "Could not find cuda drivers" on a machine without a GPU) and while
it converts ("fully_quantize: 0, ..."), whatever TF_CPP_MIN_LOG_LEVEL says. ``native_chatter_dropped``
captures the descriptor as the runtime's loader does (``edgecrop.model.runtime_messages``) and passes on
every line that is not such chatter, so errors and warnings still reach the user.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator

from edgecrop.model import runtime_messages

_CHATTER = re.compile(r"WARNING: All log messages before absl::InitializeLog|[IW]\d{4} |fully_quantize: ")


@contextlib.contextmanager
def native_chatter_dropped() -> Iterator[None]:
    said: list[str] = []
    try:
        with runtime_messages(said):
            yield
    finally:
        for line in said:
            if not _CHATTER.match(line):
                print(line, file=sys.stderr)
