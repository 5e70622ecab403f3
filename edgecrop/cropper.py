"""The public API: a Cropper that turns a photo into a saliency map and crop boxes.

The pipeline, one stage a step (each timed):
  decode      -> upright RGB, large JPEGs at reduced size          (images.load_image)
  preprocess  -> the model's input, letterboxed or stretched       (preprocess.to_input)
  inference   -> the raw output map                                (model.SaliencyModel.run)
  postprocess -> a probability map covering exactly the picture    (preprocess.to_probability)
  search      -> the best box for each aspect ratio                (search.search)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .geometry import AspectRatio, Box
from .images import DEFAULT_MAX_PIXELS, ImageSource, LoadedImage, load_image
from .model import ModelSource, SaliencyModel
from .preprocess import content_cells, to_input, to_probability
from .registry import resolve_model
from .search import Boost, apply_boosts, centred_window, most_salient_point, search, summed_area, window_mass

DEFAULT_ASPECTS = ("16:9", "1:1", "4:5", "9:16")
POLICIES = ("saliency", "twitter", "center")


@dataclass
class CropperOptions:
    """How to build a Cropper: which model, how many threads, which accelerator."""

    model: ModelSource = "default"  # a bundled model's name, a .tflite path, or the model's bytes
    num_threads: int | None = None  # None: min(4, CPU count)
    delegate: str | None = None  # 'edgetpu', 'armnn' or a delegate library path
    delegate_options: dict[str, str] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused (decompression bombs)
    background: tuple[int, int, int] = (255, 255, 255)  # behind transparent pixels


@dataclass
class SearchOptions:
    """How to choose crops; see edgecrop.search for the scoring rule."""

    policy: str = "saliency"  # saliency: best window; twitter: centred on the peak; center
    min_scale: float = 1.0  # < 1 lets windows shrink to this fraction of the largest
    scale_steps: int = 4
    area_cost: float = 0.0  # density threshold for smaller windows (0: always the largest)
    top_k: int = 1  # distinct crops per ratio (non-maximum suppression)
    nms_iou: float = 0.5
    boosts: Sequence[Boost] = ()  # caller's focal points / regions that steer the crop

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {self.policy!r}")
        if not 0 < self.min_scale <= 1:
            raise ValueError("min_scale must be in (0, 1]")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")


@dataclass(frozen=True)
class Crop:
    aspect: str  # as requested, e.g. '16:9'
    x: int  # pixels of the orientation-corrected, full-resolution image
    y: int
    width: int
    height: int
    score: float  # share of the (boosted) saliency inside the box, minus any area cost
    rank: int = 0  # 0 = best; 1.. for top-k alternatives

    @property
    def box(self) -> Box:
        return Box(self.x, self.y, self.width, self.height)

    def as_dict(self) -> dict:
        return {
            "aspect": self.aspect,
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
            "score": round(self.score, 6),
        }


@dataclass
class CropResult:
    image: str
    width: int
    height: int
    crops: list[Crop]
    saliency: np.ndarray  # probability map covering exactly the image (sums to 1)
    timings: dict[str, float]  # seconds per stage

    def as_dict(self) -> dict:
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "crops": [c.as_dict() for c in self.crops],
        }


class Cropper:
    """Crops photos with a saliency model. Use as a context manager to release the interpreter.

    A Cropper may be shared by threads: inference is serialised per Cropper, the rest runs in parallel.
    """

    def __init__(self, options: CropperOptions | None = None):
        self.options = options or CropperOptions()
        model = self.options.model
        if not isinstance(model, (bytes, bytearray)):
            model = resolve_model(model)
        threads = self.options.num_threads or min(4, os.cpu_count() or 1)
        self.model = SaliencyModel(
            model,
            num_threads=threads,
            delegate=self.options.delegate,
            delegate_options=self.options.delegate_options,
        )

    @classmethod
    def from_model(cls, model: ModelSource, **options) -> Cropper:
        """A Cropper for a model given by name, path or bytes, with CropperOptions as keywords."""
        return cls(CropperOptions(model=model, **options))

    def load(self, image: ImageSource) -> LoadedImage:
        spec = self.model.info.spec
        return load_image(
            image,
            min_size=(spec.width, spec.height),
            max_pixels=self.options.max_pixels,
            background=self.options.background,
        )

    def saliency(self, image: ImageSource | LoadedImage) -> np.ndarray:
        """The probability map (float32, sums to 1) covering exactly the image."""
        return self._saliency(self._loaded(image), {})

    def crop(
        self,
        image: ImageSource | LoadedImage,
        aspect_ratios: Iterable[str | float] = DEFAULT_ASPECTS,
        options: SearchOptions | None = None,
    ) -> CropResult:
        """Crop boxes for each aspect ratio, with the saliency map and the time each stage took."""
        options = options or SearchOptions()
        ratios = [(str(a), AspectRatio.parse(a).value) for a in aspect_ratios]
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        loaded = self._loaded(image)
        timings["decode"] = time.perf_counter() - t0
        saliency = self._saliency(loaded, timings)
        t = time.perf_counter()
        crops = find_crops(saliency, loaded.width, loaded.height, ratios, options)
        timings["search"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        return CropResult(loaded.name, loaded.width, loaded.height, crops, saliency, timings)

    def _loaded(self, image: ImageSource | LoadedImage) -> LoadedImage:
        return image if isinstance(image, LoadedImage) else self.load(image)

    def _saliency(self, loaded: LoadedImage, timings: dict[str, float]) -> np.ndarray:
        info = self.model.info
        t = time.perf_counter()
        pixels, place = to_input(loaded.rgb, info.spec)
        timings["preprocess"] = time.perf_counter() - t
        t = time.perf_counter()
        raw = self.model.run(pixels)
        timings["inference"] = time.perf_counter() - t
        t = time.perf_counter()
        prob = to_probability(content_cells(raw, place), info.output_kind, info.temperature)
        timings["postprocess"] = time.perf_counter() - t
        return prob

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> Cropper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def find_crops(
    saliency: np.ndarray, width: int, height: int, ratios: list[tuple[str, float]], options: SearchOptions
) -> list[Crop]:
    """The search stage alone: crops for (label, width/height) ratios on a map covering the image."""
    boosted = apply_boosts(saliency, width, height, tuple(options.boosts))
    sat = summed_area(boosted)
    crops = []
    for label, ratio in ratios:
        if options.policy == "saliency":
            found = search(
                sat,
                width,
                height,
                ratio,
                min_scale=options.min_scale,
                scale_steps=options.scale_steps,
                area_cost=options.area_cost,
                top_k=options.top_k,
                nms_iou=options.nms_iou,
            )
            crops += [Crop(label, *c.box.as_tuple(), c.score, rank) for rank, c in enumerate(found)]
            continue
        if options.policy == "twitter":
            box = centred_window(*most_salient_point(boosted, width, height), width, height, ratio)
        else:
            box = centred_window(width / 2, height / 2, width, height, ratio)
        crops.append(Crop(label, *box.as_tuple(), float(window_mass(sat, width, height, *box.as_tuple()))))
    return crops


def crop(
    image: ImageSource,
    aspect_ratios: Iterable[str | float] = DEFAULT_ASPECTS,
    *,
    model: ModelSource = "default",
    options: SearchOptions | None = None,
) -> CropResult:
    """One call: load the model, crop one image, release the model."""
    with Cropper(CropperOptions(model=model)) as cropper:
        return cropper.crop(image, aspect_ratios, options)
