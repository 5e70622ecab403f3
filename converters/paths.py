"""Where the shared data and the local caches are: flags first, then environment, then defaults."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_dir(explicit: str | os.PathLike | None = None) -> Path:
    """../shared beside the checkout unless EDGECROP_SHARED or a flag says otherwise."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("EDGECROP_SHARED", REPO.parent / "shared"))


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Caches and training runs (ignored by git): EDGECROP_CACHE or .cache/ in the checkout."""
    return Path(explicit) if explicit else Path(os.environ.get("EDGECROP_CACHE", REPO / ".cache"))


def teacher_model_path(shared: Path) -> Path:
    return shared / "teachers" / "attention-center" / "center.tflite"


def teacher_map_path(cache: Path, image_path: Path) -> Path:
    """Where the teacher's cached map of a photo lives (converters.teacher writes it), by dataset:
    <cache>/teacher/osie/1001.npy for <shared>/data/osie/images/1001.jpg."""
    folder = image_path.parent
    dataset = folder.parent.name if folder.name == "images" else folder.name
    return cache / "teacher" / dataset / f"{image_path.stem}.npy"
