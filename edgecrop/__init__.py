"""edgecrop: crop photos on the device that took them, with a small saliency network.

from edgecrop import Cropper
with Cropper() as cropper:
    result = cropper.crop("photo.jpg", ["16:9", "1:1"])
"""

__version__ = "0.1.0"

from .cropper import DEFAULT_ASPECTS, Cropper, CropperOptions, CropResult, Timings, crop  # noqa: E402
from .errors import (  # noqa: E402
    BackendError,
    DelegateError,
    EdgecropError,
    ImageError,
    ModelError,
    OptionError,
    OutputError,
)
from .geometry import AspectRatio, Box  # noqa: E402
from .images import load_image  # noqa: E402
from .model import RawMap, SaliencyModel  # noqa: E402
from .modelfile.card import CentrePrior, InputCard, ModelCard, OutputCard  # noqa: E402
from .modelfile.registry import list_models  # noqa: E402
from .modelfile.verify import read_card  # noqa: E402
from .postprocess import postprocess  # noqa: E402
from .preprocess import OutputKind, Resize  # noqa: E402
from .search import Boost, Crop, Engine, Policy, SearchOptions, find_crops  # noqa: E402

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
