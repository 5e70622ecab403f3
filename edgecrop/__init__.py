"""edgecrop: crop photos on the device that took them, with a small saliency network.

from edgecrop import Cropper
with Cropper() as cropper:
    result = cropper.crop("photo.jpg", ["16:9", "1:1"])
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    BackendError,
    DelegateError,
    EdgecropError,
    ImageError,
    ModelError,
    OptionError,
    OutputError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # the names below, imported when first used (see __getattr__)
    from .cropper import DEFAULT_ASPECTS, Cropper, CropperOptions, CropResult, Timings, crop
    from .geometry import AspectRatio, Box
    from .images import load_image
    from .model import RawMap, SaliencyModel
    from .modelfile.card import CentrePrior, InputCard, ModelCard, OutputCard
    from .modelfile.registry import list_models
    from .modelfile.verify import read_card
    from .postprocess import postprocess
    from .preprocess import OutputKind, Resize
    from .search import Boost, Crop, Engine, Policy, SearchOptions, find_crops

# where each public name lives: ``import edgecrop`` stays light (the command line can set its signal handlers
# before NumPy, Pillow and the runtime load), and ``edgecrop.Cropper`` imports what it needs when first used
_HOME = {
    "DEFAULT_ASPECTS": "cropper",
    "Cropper": "cropper",
    "CropperOptions": "cropper",
    "CropResult": "cropper",
    "Timings": "cropper",
    "crop": "cropper",
    "AspectRatio": "geometry",
    "Box": "geometry",
    "load_image": "images",
    "RawMap": "model",
    "SaliencyModel": "model",
    "CentrePrior": "modelfile.card",
    "InputCard": "modelfile.card",
    "ModelCard": "modelfile.card",
    "OutputCard": "modelfile.card",
    "list_models": "modelfile.registry",
    "read_card": "modelfile.verify",
    "postprocess": "postprocess",
    "OutputKind": "preprocess",
    "Resize": "preprocess",
    "Boost": "search",
    "Crop": "search",
    "Engine": "search",
    "Policy": "search",
    "SearchOptions": "search",
    "find_crops": "search",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'edgecrop' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "DEFAULT_ASPECTS",
    "AspectRatio",
    "BackendError",
    "Boost",
    "Box",
    "CentrePrior",
    "Crop",
    "CropResult",
    "Cropper",
    "CropperOptions",
    "DelegateError",
    "EdgecropError",
    "Engine",
    "ImageError",
    "InputCard",
    "ModelCard",
    "ModelError",
    "OptionError",
    "OutputCard",
    "OutputError",
    "OutputKind",
    "Policy",
    "Resize",
    "RawMap",
    "SaliencyModel",
    "SearchOptions",
    "Timings",
    "crop",
    "find_crops",
    "list_models",
    "load_image",
    "postprocess",
    "read_card",
]
