"""The bundled models, by name, with the model card each one carries in its metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .._resources import bundled_dir
from ..errors import ModelError
from .card import ModelCard
from .verify import read_card

DEFAULT_MODEL = "edgecrop_int8"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    path: Path
    size_bytes: int

    def card(self) -> ModelCard:
        """The model card embedded in the .tflite file (the default card when it has none)."""
        return read_card(self.path.read_bytes(), self.name)


def models_dir() -> Path:
    return bundled_dir("models")


def list_models() -> list[RegisteredModel]:
    """Every bundled model, sorted by name."""
    return [RegisteredModel(p.stem, p, p.stat().st_size) for p in sorted(models_dir().glob("*.tflite"))]


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A bundled model's name ('default' included) or a path to any .tflite file."""
    text = os.fspath(name_or_path)
    name = DEFAULT_MODEL if text == "default" else text
    for model in list_models():
        if model.name == name:
            return model.path
    path = Path(text)
    if path.suffix == ".tflite" or path.exists():
        return path
    known = ", ".join(m.name for m in list_models()) or "none"
    raise ModelError(f"unknown model {text!r}: not a bundled model ({known}) nor a file")
