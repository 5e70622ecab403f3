"""The public API: a Cropper that turns a photo into a saliency map and crop boxes.

The pipeline, one stage a step (each timed):
  decode      -> upright RGB, large JPEGs at reduced size          (images.load_image)
  preprocess  -> the model's input, letterboxed or stretched       (SaliencyModel.raw_map:
  inference   -> the raw output map over the picture's cells (of    preprocess.to_input, SaliencyModel.run)
                 the photo and its mirror, averaged, when the card
                 says so)
  postprocess -> a probability map covering exactly the picture,   (postprocess.postprocess)
                 at the card's temperature, with its centre prior
  search      -> the best box for each aspect ratio                (search.find_crops)
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar, Union

import numpy as np
from PIL import Image

from ._validate import count
from .errors import EdgecropError, OptionError
from .geometry import AspectRatio
from .images import DEFAULT_MAX_MEMORY, DEFAULT_MAX_PIXELS, ImageSource, LoadedImage, load_image, picture_to_show
from .model import ModelSource, SaliencyModel
from .modelfile.registry import resolve_model
from .postprocess import postprocess
from .preprocess import decode_size
from .search import Crop, SearchOptions, by_aspect, find_crops, parse_aspects

DEFAULT_ASPECTS = ("16:9", "1:1", "4:5", "9:16")
MAX_THREADS = 256
T = TypeVar("T")
R = TypeVar("R")
Aspects = Union[str, float, AspectRatio, Sequence[Union[str, float, AspectRatio]]]


@dataclass(frozen=True)
class CropperOptions:
    """How to build a Cropper: which model, how many threads, which accelerator."""

    model: ModelSource = "default"  # a bundled model's name, a .tflite path, or the model's bytes
    num_threads: int | None = None  # None: min(4, CPU count)
    delegate: str | None = None  # 'edgetpu', 'armnn' or a delegate library path
    delegate_options: dict[str, str] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused (decompression bombs)
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes one photo's pixels may cost (estimated before decoding)
    background: tuple[int, int, int] = (255, 255, 255)  # behind transparent pixels

    def __post_init__(self) -> None:
        if self.num_threads is not None:
            count(self.num_threads, "num_threads", MAX_THREADS)
        count(self.max_pixels, "max_pixels")
        count(self.max_memory, "max_memory")
        bg = self.background
        if not (
            isinstance(bg, (tuple, list)) and len(bg) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in bg)
        ):
            raise OptionError(f"background must be three integers 0..255, not {bg!r}")
        if self.delegate is not None and not (isinstance(self.delegate, str) and self.delegate):
            raise OptionError("delegate must be a non-empty string")


@dataclass(frozen=True)
class Timings:
    """Seconds each stage of one crop took."""

    decode: float = 0.0
    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    search: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class CropResult:
    image: str
    width: int
    height: int
    crops: list[Crop]  # every ratio's crops, in the order the ratios were asked, best first within each
    saliency: np.ndarray  # probability map covering exactly the image (sums to 1), centre prior included
    timings: Timings

    def by_aspect(self) -> dict[str, list[Crop]]:
        """{ratio label ("16:9"): its crops, best first}, in the order the ratios were asked."""
        return by_aspect(self.crops)

    def best(self, aspect: str | float | AspectRatio) -> Crop:
        """The best crop of one of the ratios asked for (OptionError for a ratio that was not)."""
        (ratio,) = parse_aspects(aspect)
        grouped = self.by_aspect()
        if ratio.label not in grouped:
            raise OptionError(f"no crop of ratio {ratio.label} in this result (asked: {', '.join(grouped)})")
        return grouped[ratio.label][0]

    def as_dict(self) -> dict[str, Any]:
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
        self._idle: queue.SimpleQueue[Cropper] = queue.SimpleQueue()  # batch workers, one interpreter each
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
        """Decode ``image``; a JPEG at the smallest DCT scale that covers the picture's place in the model
        input (a 1024x768 photo at 1/4, 256x192, for a letterboxed 256x256 input: no resize left to do)."""
        spec = self.model.info.spec
        return load_image(
            image,
            min_size=lambda width, height: decode_size(width, height, spec),
            max_pixels=self.options.max_pixels,
            max_memory=self.options.max_memory,
            background=self.options.background,
        )

    def load_to_write(self, image: ImageSource) -> LoadedImage:
        """Decode ``image`` at full resolution in its own mode, to cut crops from (each piece converted with
        ``images.keepable``), within the same limits."""
        options = self.options
        return load_image(image, max_pixels=options.max_pixels, max_memory=options.max_memory, keep_mode=True)

    def picture(self, image: ImageSource, loaded: LoadedImage, max_side: int) -> Image.Image:
        """The photo to show a person (a heatmap's, the demo's), scaled to fit ``max_side``."""
        return picture_to_show(image, loaded, max_side, self.options.max_pixels, self.options.max_memory)

    def saliency(self, image: ImageSource | LoadedImage) -> np.ndarray:
        """The probability map (float32, sums to 1) covering exactly the image."""
        return postprocess(self.model.raw_map(self._loaded(image).rgb).values, self.model.info.card.output)

    def crop(
        self,
        image: ImageSource | LoadedImage,
        aspect_ratios: Aspects = DEFAULT_ASPECTS,
        options: SearchOptions | None = None,
    ) -> CropResult:
        """Crop boxes for each aspect ratio (one, or a list), with the saliency map and stage timings."""
        options = options or SearchOptions()
        ratios = parse_aspects(aspect_ratios)
        t0 = time.perf_counter()
        loaded = self._loaded(image)
        decoded = time.perf_counter()
        raw = self.model.raw_map(loaded.rgb)
        t = time.perf_counter()
        saliency = postprocess(raw.values, self.model.info.card.output)
        t_post = time.perf_counter() - t
        t = time.perf_counter()
        crops = find_crops(saliency, loaded.width, loaded.height, ratios, options)
        t_search = time.perf_counter() - t
        timings = Timings(decoded - t0, raw.preprocess_s, raw.inference_s, t_post, t_search, time.perf_counter() - t0)
        return CropResult(loaded.name, loaded.width, loaded.height, crops, saliency, timings)

    def crop_many(
        self,
        images: Iterable[ImageSource],
        aspect_ratios: Aspects = DEFAULT_ASPECTS,
        options: SearchOptions | None = None,
        jobs: int | None = None,
    ) -> Iterator[CropResult | EdgecropError]:
        """Crop a batch on ``jobs`` threads (default: every core): results in input order, a photo
        that fails gives its error in its place, and at most two photos per thread are in flight."""
        return self.map(lambda cropper, image: cropper.crop(image, aspect_ratios, options), images, jobs)

    def map(
        self, fn: Callable[[Cropper, T], R], items: Iterable[T], jobs: int | None = None
    ) -> Iterator[R | EdgecropError]:
        """``fn(cropper, item)`` for every item, on ``jobs`` threads, in input order; an EdgecropError raised
        for an item is yielded in its place. Each thread has its own interpreter (one thread each), so
        inference runs in parallel as decoding does (Pillow, LiteRT and the search release the GIL); the
        workers' interpreters are kept for the next batch until close(). With a delegate the threads
        share this Cropper's accelerator."""
        jobs = count((os.cpu_count() or 1) if jobs is None else jobs, "jobs", MAX_THREADS)
        if jobs == 1:
            return (_guarded(fn, self, item) for item in items)
        return self._map_threads(fn, items, jobs)

    def _map_threads(self, fn, items, jobs: int):
        def job(item):
            if self.options.delegate:
                return _guarded(fn, self, item)
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = Cropper(replace(self.options, model=self.model.data, num_threads=1))
            try:
                return _guarded(fn, worker, item)
            finally:
                self._idle.put(worker)

        pending: collections.deque = collections.deque()
        iterator = iter(items)
        try:
            with ThreadPoolExecutor(jobs) as pool:
                pending.extend(pool.submit(job, item) for item in itertools.islice(iterator, 2 * jobs))
                while pending:
                    result = pending.popleft().result()
                    pending.extend(pool.submit(job, item) for item in itertools.islice(iterator, 1))
                    yield result
        finally:
            for f in pending:
                f.cancel()

    def _loaded(self, image: ImageSource | LoadedImage) -> LoadedImage:
        return image if isinstance(image, LoadedImage) else self.load(image)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
        self.model.close()

    def __enter__(self) -> Cropper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _guarded(fn, cropper: Cropper, item):
    try:
        return fn(cropper, item)
    except EdgecropError as exc:
        return exc


def crop(
    image: ImageSource,
    aspect_ratios: Aspects = DEFAULT_ASPECTS,
    *,
    model: ModelSource = "default",
    options: SearchOptions | None = None,
) -> CropResult:
    """One call: load the model, crop one image, release the model."""
    with Cropper(CropperOptions(model=model)) as cropper:
        return cropper.crop(image, aspect_ratios, options)
