"""The public API: a Cropper that turns a photo into a saliency map and crop boxes.

The pipeline, one stage a step (each timed):
  decode      -> upright RGB, large JPEGs at reduced size          (images.load_image)
  preprocess  -> the model's input, letterboxed or stretched       (preprocess.to_input)
  inference   -> the raw output map (of the photo and its mirror,  (model.SaliencyModel.run)
                 averaged, when the card says so)
  postprocess -> a probability map covering exactly the picture,   (preprocess.to_probability,
                 at the card's temperature, with its centre prior   preprocess.mix_centre_prior)
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
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, Union

import numpy as np

from .errors import EdgecropError, OptionError
from .geometry import AspectRatio
from .images import DEFAULT_MAX_PIXELS, ImageSource, LoadedImage, load_image
from .model import ModelSource, SaliencyModel
from .preprocess import content_cells, decode_size, mix_centre_prior, to_input, to_probability
from .registry import resolve_model
from .search import Crop, SearchOptions, find_crops, parse_aspects

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
    background: tuple[int, int, int] = (255, 255, 255)  # behind transparent pixels

    def __post_init__(self) -> None:
        t = self.num_threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_THREADS):
            raise OptionError(f"num_threads must be an integer from 1 to {MAX_THREADS}, not {t!r}")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise OptionError(f"max_pixels must be a positive integer, not {self.max_pixels!r}")
        bg = self.background
        if not (
            isinstance(bg, (tuple, list)) and len(bg) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in bg)
        ):
            raise OptionError(f"background must be three integers 0..255, not {bg!r}")
        if self.delegate is not None and not (isinstance(self.delegate, str) and self.delegate):
            raise OptionError("delegate must be a non-empty string")


@dataclass(frozen=True)
class CropResult:
    image: str
    width: int
    height: int
    crops: list[Crop]
    saliency: np.ndarray  # probability map covering exactly the image (sums to 1), centre prior included
    timings: dict[str, float]  # seconds per stage

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
            background=self.options.background,
        )

    def saliency(self, image: ImageSource | LoadedImage) -> np.ndarray:
        """The probability map (float32, sums to 1) covering exactly the image."""
        return self._saliency(self._loaded(image), {})

    def crop(
        self,
        image: ImageSource | LoadedImage,
        aspect_ratios: Aspects = DEFAULT_ASPECTS,
        options: SearchOptions | None = None,
    ) -> CropResult:
        """Crop boxes for each aspect ratio (one, or a list), with the saliency map and stage timings."""
        options = options or SearchOptions()
        ratios = parse_aspects(aspect_ratios)
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
        jobs = (os.cpu_count() or 1) if jobs is None else jobs
        if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_THREADS:
            raise OptionError(f"jobs must be an integer from 1 to {MAX_THREADS}, not {jobs!r}")
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

    def _saliency(self, loaded: LoadedImage, timings: dict[str, float]) -> np.ndarray:
        info = self.model.info
        t = time.perf_counter()
        pixels, place = to_input(loaded.rgb, info.spec)
        timings["preprocess"] = time.perf_counter() - t
        t = time.perf_counter()
        raw = self.model.run(pixels)
        timings["inference"] = time.perf_counter() - t
        t = time.perf_counter()
        out = info.card.output
        prob = to_probability(content_cells(raw, place), out.kind, out.temperature)
        if out.centre_prior is not None:
            prob = mix_centre_prior(prob, out.centre_prior.weight, out.centre_prior.sigma)
        timings["postprocess"] = time.perf_counter() - t
        return prob

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
