"""edgecrop: crop photos on the device that took them, with a small saliency network.

from edgecrop import Cropper
with Cropper() as cropper:
    result = cropper.crop("photo.jpg", ["16:9", "1:1"])
"""

__version__ = "0.1.0"

from .cropper import (  # noqa: E402
    DEFAULT_ASPECTS,
    Crop,
    Cropper,
    CropperOptions,
    CropResult,
    SearchOptions,
    crop,
    find_crops,
)
from .geometry import AspectRatio, Box  # noqa: E402
from .images import ImageError, load_image  # noqa: E402
from .model import ModelError, SaliencyModel  # noqa: E402
from .search import Boost  # noqa: E402

__all__ = [
    "DEFAULT_ASPECTS",
    "AspectRatio",
    "Boost",
    "Box",
    "Crop",
    "CropResult",
    "Cropper",
    "CropperOptions",
    "ImageError",
    "ModelError",
    "SaliencyModel",
    "SearchOptions",
    "crop",
    "find_crops",
    "load_image",
]
