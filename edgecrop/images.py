"""Turn whatever the caller hands us into an upright RGB picture, cheaply and safely.

Photos arrive as paths, bytes, file objects, PIL images or numpy arrays, in every Pillow mode, rotated
by EXIF and sometimes broken. The model needs only a few hundred pixels a side, so large JPEGs are
decoded at reduced size with Pillow's DCT scaling (``Image.draft``); the original, orientation-corrected
size is kept so that crop boxes come back in full-resolution pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Callable, Union

import numpy as np
from PIL import Image

from .errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, bytearray, IO[bytes], Image.Image, np.ndarray]
#: The size a reduced decode must cover, or a function of the upright photo's size giving it.
MinSize = Union[tuple[int, int], Callable[[int, int], tuple[int, int]]]

#: Pillow's own hard limit for a decompression bomb; above this we refuse the image.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: What one photo's pixels may cost, estimated from its declared size and mode before decoding: with the
#: process itself (60 MB, 180 MB with the Numba search) a run stays under 600 MB, so that a 1 GB Raspberry
#: Pi is never pushed into swap by one file. A 50 MP JPEG's crops fit; a 13000x13000 16-bit PNG does not.
DEFAULT_MAX_MEMORY = 384 << 20

# bytes a decoded pixel takes in Pillow, by mode (RGB is stored in four)
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "BGR;24": 3}
# modes with transparency: writing a crop of one composites it on a canvas (two more copies, 4 bytes a pixel)
_ALPHA = {"LA", "La", "PA", "RGBA", "RGBa"}

# EXIF orientations 5..8 swap width and height.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
# how to turn a picture of each EXIF orientation upright (ImageOps.exif_transpose's table)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class LoadedImage:
    """An upright RGB picture plus the size of the full-resolution, orientation-corrected original."""

    rgb: Image.Image  # mode "RGB", possibly reduced by DCT scaling
    width: int  # full-resolution width after EXIF orientation
    height: int
    name: str  # how to name the source in messages
    format: str | None = None  # the file's format (JPEG, PNG, ...), None for arrays
    icc_profile: bytes | None = None  # the source's colour profile, for outputs to carry on
    exif: bytes | None = None  # the source's EXIF, orientation reset to 1 (the pixels are upright)


def describe_source(source: ImageSource) -> str:
    """A short human name for an image source, for error messages and JSON output."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if hasattr(source, "read"):
        return getattr(source, "name", None) or "<file object>"
    return f"<{type(source).__name__}>"


def load_image(
    source: ImageSource,
    *,
    min_size: MinSize | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_memory: int = DEFAULT_MAX_MEMORY,
    background: tuple[int, int, int] = (255, 255, 255),
    keep_mode: bool = False,
) -> LoadedImage:
    """Decode ``source`` into an upright RGB image.

    ``min_size`` (width, height), or a function of the upright photo's (width, height) giving it, lets a
    JPEG decode at the smallest DCT scale that still covers that size; ``None`` decodes every pixel.
    Other formats are shrunk before any conversion. Transparent pixels are composited on ``background``.
    With ``keep_mode`` (pictures to write, not to analyse) the picture keeps its own mode: convert each piece
    cut from it with :func:`keepable` (greyscale, transparency and RGB are kept as the source has them).
    Refuses, before decoding, a file of more than ``max_pixels`` or whose pixels would cost more than
    ``max_memory`` bytes. Raises :class:`ImageError` naming the source for anything that is not usable.
    """
    name = describe_source(source)
    convert = (lambda img: img) if keep_mode else partial(_to_rgb, background=background)
    if isinstance(source, np.ndarray):
        img = _from_array(source, name)
        width, height = img.size
        return LoadedImage(convert(img), width, height, name)
    limits = _Limits(max_pixels, max_memory, keep_mode)
    if isinstance(source, Image.Image):
        min_size = None  # the caller's image: never change how it decodes
        limits = _Limits(max_pixels, None, keep_mode)  # and its pixels are already in memory
    try:
        # the limits are checked in _decode on the declared size and mode before any pixel is decoded:
        # decided the same way whatever runs beside it (warning filters are process-wide: not used here)
        return _decode(_open(source, name), name, min_size, limits, convert)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"too many pixels (decompression bomb?): {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a decoder plugin may raise anything: it is this image's error
        raise ImageError(name, f"cannot decode image ({type(exc).__name__}: {exc})") from None


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        raise ImageError(name, "arrays are not files")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(name, "empty input")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            if not path.is_file():
                if path.is_symlink() and not path.exists():
                    raise ImageError(name, "a symbolic link that leads nowhere (a loop or a missing target)")
                raise ImageError(name, "not a regular file" if path.exists() else "no such file")
            if path.stat().st_size == 0:
                raise ImageError(name, "empty file")
        except OSError as exc:  # Python 3.11's is_file raises inside a folder the user cannot read
            raise ImageError(name, f"cannot read it ({exc.strerror or exc})") from None
    elif not hasattr(source, "read"):
        raise ImageError(name, "not an image source (a path, bytes, a binary file, a PIL image or a NumPy array)")
    try:
        return Image.open(source)
    except Image.UnidentifiedImageError:
        raise ImageError(name, "not an image (unrecognised format)") from None
    except OSError as exc:
        raise ImageError(name, f"cannot read it ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_memory: int | None  # None: not checked (the caller's own PIL image)
    keep_mode: bool

    def check(self, img: Image.Image, name: str) -> None:
        """Refuse ``img`` (opened, not decoded; a JPEG already drafted) if it is over either limit: the
        estimate is its decoded pixels (a picture to analyse is shrunk band by band), plus for pictures to
        write a full-size copy (an EXIF rotation, or a crop as large as the photo) and its conversion."""
        pixels = img.width * img.height
        decoded = pixels * _BYTES_PER_PIXEL.get(img.mode, 4)
        need = decoded
        if self.keep_mode:
            need += decoded + pixels * (8 if img.mode in _ALPHA else 0 if img.mode in _KEEPABLE else 4)
        if self.max_memory is not None and need > self.max_memory:
            raise ImageError(
                name,
                f"{img.width}x{img.height} ({img.mode}) needs about {need >> 20} MB to decode, over the memory "
                f"limit of {self.max_memory >> 20} MB (max_memory; --max-memory MB on the command line)",
            )


def _decode(
    img: Image.Image,
    name: str,
    min_size: MinSize | None,
    limits: _Limits,
    convert: Callable[[Image.Image], Image.Image],
) -> LoadedImage:
    if img.width * img.height > limits.max_pixels:
        raise ImageError(name, f"{img.width}x{img.height} exceeds the limit of {limits.max_pixels} pixels")
    if img.width == 0 or img.height == 0:
        raise ImageError(name, "image has no pixels")
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated: the first frame
    orientation = _orientation(img)
    full_w, full_h = img.size
    fmt = img.format
    if orientation in _TRANSPOSING_ORIENTATIONS:
        full_w, full_h = full_h, full_w
    want = None
    if min_size is not None:
        want = min_size(full_w, full_h) if callable(min_size) else min_size
        if orientation in _TRANSPOSING_ORIENTATIONS:
            want = (want[1], want[0])
        if img.format == "JPEG":
            img.draft("RGB", want)
    limits.check(img, name)
    img.load()
    exif, icc = _upright_exif(img), img.info.get("icc_profile")
    picture = _shrunk(img, want, convert) if want is not None else convert(img)
    upright = picture.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else picture
    return LoadedImage(upright, full_w, full_h, name, fmt, icc, exif)


def _shrunk(img: Image.Image, want: tuple[int, int], convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """A decoded picture at least twice ``want`` a side, converted and shrunk by area averaging (by an
    integer factor, so that it still covers ``want``; fewer than ``factor`` rows and columns at the far
    edges are left out) one band of rows at a time: no conversion (a palette's, a transparency's
    compositing, 16 bits to 8) ever copies the whole picture."""
    factor = min(img.width // max(1, want[0]), img.height // max(1, want[1]))
    if factor < 2:
        return convert(img)
    width, height = img.width // factor, img.height // factor
    rows = factor * max(1, (1 << 22) // (img.width * factor))  # bands of about four million pixels
    bands = [
        convert(img.crop((0, top, width * factor, min(top + rows, height * factor)))).reduce(factor)
        for top in range(0, height * factor, rows)
    ]
    out = Image.new(bands[0].mode, (width, height))
    for k, band in enumerate(bands):
        out.paste(band, (0, k * (rows // factor)))
    return out


# TIFF tags that describe the file's own pixel layout (size, strips, tiles, sample format): a TIFF's
# getexif() is its main IFD, and these handed to a writer as EXIF would describe the source, not the crop
_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 330, 338, 339}
    | {347, 513, 514, 530, 531, 532}
)


# what one JPEG segment holds of EXIF (its APP1 is at most 65535 bytes, with its length and "Exif\0\0")
_MAX_EXIF = 65_527
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def _upright_exif(img: Image.Image) -> bytes | None:
    """The image's EXIF with the orientation set to 1 and no pixel-layout tags, or None (none, or
    unreadable). Re-serialised EXIF can outgrow what a JPEG holds (pointers that share one IFD are written
    twice): then without the GPS and Exif sub-IFDs, else none."""
    try:
        exif = img.getexif()
        for tag in _LAYOUT_TAGS & set(exif):
            del exif[tag]
        if not exif:
            return None
        exif[0x0112] = 1
        data = exif.tobytes()
        for pointer in (_GPS_IFD, _EXIF_IFD):
            if len(data) <= _MAX_EXIF:
                break
            exif.pop(pointer, None)
            data = exif.tobytes()
        return data if len(data) <= _MAX_EXIF else None
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the picture
        return None


def picture_to_show(
    source: ImageSource,
    loaded: LoadedImage,
    max_side: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> Image.Image:
    """The photo at its own size, or scaled to fit ``max_side``, for a person to look at: from the decode
    the crop used when that is large enough, else from a JPEG decode at the smallest DCT scale that is
    (never the whole of a huge photo)."""
    scale = min(1.0, max_side / max(loaded.width, loaded.height))
    size = (max(1, round(loaded.width * scale)), max(1, round(loaded.height * scale)))
    picture = loaded.rgb
    if picture.width < size[0] or picture.height < size[1]:
        picture = load_image(source, min_size=size, max_pixels=max_pixels, max_memory=max_memory).rgb
    return picture if picture.size == size else picture.resize(size, Image.Resampling.BILINEAR)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not cost the picture
        return 1


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency and scaling high-bit-depth data."""
    img = flatten(keepable(img), background)
    return img if img.mode == "RGB" else img.convert("RGB")


def flatten(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """A picture with transparency (LA, RGBA) composited on ``background`` (RGB); any other unchanged."""
    if img.mode not in ("LA", "RGBA"):
        return img
    canvas = Image.new("RGBA", img.size, (*background, 255))
    canvas.alpha_composite(img.convert("RGBA"))
    return canvas.convert("RGB")


_KEEPABLE = ("L", "LA", "RGB", "RGBA")


def keepable(img: Image.Image) -> Image.Image:
    """Any Pillow mode (a piece of a picture loaded with ``keep_mode``, say) as the nearest of L, LA, RGB and
    RGBA: greyscale and transparency kept."""
    if img.mode in _KEEPABLE:
        return img
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _scale_to_8bit(img)
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("PA", "RGBa"):
        return img.convert("RGBA")
    if img.mode == "La":
        return img.convert("LA")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """High bit-depth grey (16-bit, 32-bit int, float) to 8-bit, by the range the data can take; in strips
    of about a million pixels, so that the float copies never cost more than a few megabytes."""
    rows = max(1, (1 << 20) // img.width)

    def strips():
        for top in range(0, img.height, rows):
            part = img.crop((0, top, img.width, min(img.height, top + rows)))
            yield top, np.asarray(part.convert("F") if part.mode.startswith("I;16") else part, dtype=np.float64)

    out = np.empty((img.height, img.width), np.uint8)
    with np.errstate(all="ignore"):  # NaN and infinities are handled here, not warned about
        if img.mode.startswith("I;16"):
            brightest, top_value = 65535.0, 65535.0
        else:
            brightest = max((float(np.max(a, where=np.isfinite(a), initial=0.0)) for _, a in strips()), default=0.0)
            top_value = 1.0 if img.mode == "F" and brightest <= 1.0 else max(brightest, 255.0)
        for top, a in strips():
            a = np.where(np.isfinite(a), a, np.where(a > 0, brightest, 0.0))  # +inf: the brightest, nan/-inf: 0
            out[top : top + len(a)] = np.clip(a * (255.0 / top_value) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    """Accept HxW, HxWx1, HxWx3 or HxWx4 arrays of uint8, uint16, bool or floats in [0, 1]."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(name, "array must be HxW, HxWx1, HxWx3 or HxWx4")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(name, "image has no pixels")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 + 32767) // 65535
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0) * 255.0 + 0.5
    elif arr.dtype != np.uint8:
        raise ImageError(name, f"unsupported array dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
    return Image.fromarray(arr, mode)
