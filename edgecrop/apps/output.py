"""Writing outputs as a user expects: nothing lost, nothing overwritten, files as the umask says.

Each output is written to a hidden temporary file beside its destination, then linked to its name,
which fails if the name exists: two runs into one folder can never both write one file (there is no
check-then-rename race). ``overwrite`` replaces instead. Inputs are never replaced. Permissions are
0666 less the umask, as any program's new file. Temporary files are removed on every failure and by
``cleanup()`` after an interruption.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from ..errors import OutputError
from ..images import flatten

SAVE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_CARRIES_METADATA = {"JPEG", "PNG", "WEBP", "TIFF"}  # formats that keep an ICC profile and EXIF


def resolved(path: Path) -> Path:
    """The path with symlinks resolved, or as it is when they cannot be (a loop, a folder one cannot
    read): that photo then fails on its own, with its one line, when it is opened."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputWriter:
    """Names outputs DIR/<stem>_<suffix>.<ext> and writes them atomically and exclusively."""

    def __init__(self, inputs: list[Path], out_dir: Path | None, overwrite: bool):
        self.inputs = {resolved(p) for p in inputs}
        self.out_dir = out_dir
        self.overwrite = overwrite
        self.written: list[Path] = []
        self._pending: set[str] = set()
        # each input's stem, fixed in input order: two inputs named x.png write x_* and x-1_*, whichever
        # thread of a batch gets to them first
        self._stems: dict[Path, str] = {}
        self.renamed: list[tuple[Path, str]] = []  # inputs whose outputs take another stem than their own
        used: set[str] = set()
        for p in inputs:
            if resolved(p) in self._stems:
                continue
            stem, n = p.stem, 1
            while stem in used:
                stem, n = f"{p.stem}-{n}", n + 1
            used.add(stem)
            self._stems[resolved(p)] = stem
            if stem != p.stem:
                self.renamed.append((p, stem))
        self._mode = 0o666 & ~current_umask()
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise OutputError(f"{out_dir}: not a folder") from None
            except OSError as exc:  # a parent the user cannot read or write, a read-only disk
                raise OutputError(f"{out_dir}: cannot create the folder ({exc.strerror or exc})") from None

    def target(self, source: Path, suffix: str, ext: str) -> Path:
        if self.out_dir is None:
            raise OutputError("no output folder (--out-dir)")
        stem = self._stems.get(resolved(source), source.stem)
        dest = self.out_dir / (f"{stem}_{suffix}{ext}" if suffix else f"{stem}{ext}")
        if resolved(dest) in self.inputs:
            raise OutputError(f"{dest}: refusing to overwrite an input")
        self._refuse_existing(dest)
        return dest

    def save(
        self,
        image: Image.Image,
        source: Path,
        suffix: str,
        fmt: str,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
        background: tuple[int, int, int] = (255, 255, 255),
    ) -> Path:
        """An image in ``fmt``, keeping the source's colour profile and EXIF where the format can, and its
        greyscale and transparency where the format holds them (else composited on ``background``)."""
        dest = self.target(source, suffix, SAVE_FORMATS[fmt])
        image = _fit_mode(image, fmt, background)
        params: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
        if fmt in _CARRIES_METADATA:
            if icc_profile:
                params["icc_profile"] = icc_profile
            if exif:
                params["exif"] = exif
        return self._write(dest, lambda f: image.save(f, format=fmt, **params), lambda tmp: _decodes(tmp, image.size))

    def save_npy(self, array: np.ndarray, source: Path) -> Path:
        return self._write(self.target(source, "", ".npy"), lambda f: np.save(f, array))

    def write_text(self, name: str, text: str) -> Path:
        """A report ``DIR/name`` (UTF-8), written as every output is."""
        return self.write_with(name, lambda f: f.write(text.encode("utf-8")))

    def write_with(self, name: str, write: Callable[[BinaryIO], object]) -> Path:
        """``DIR/name`` with the bytes ``write`` puts into the file it is given, written as every output
        is: atomically, never over an existing file unless ``overwrite``, nothing left if it raises."""
        if self.out_dir is None:
            raise OutputError("no output folder (--out-dir)")
        dest = self.out_dir / name
        self._refuse_existing(dest)
        return self._write(dest, write)

    def _refuse_existing(self, dest: Path) -> None:
        try:
            taken = dest.exists()  # Python 3.11 raises where the folder cannot be searched
        except OSError as exc:
            raise OutputError(f"{dest}: cannot look into the folder ({exc.strerror or exc})") from None
        if taken and not self.overwrite:
            raise OutputError(f"{dest}: already exists (use --overwrite to replace it)")

    def _write(
        self, dest: Path, write: Callable[[BinaryIO], object], check: Callable[[str], None] | None = None
    ) -> Path:
        """``write`` into a temporary file, flushed to disk (a full disk is an error here, not a short
        file later), ``check``ed, then given its name: a file that has its final name is whole."""
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            self._pending.add(tmp)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if check is not None:
                check(tmp)
            os.chmod(tmp, self._mode)
            if self.overwrite:
                os.replace(tmp, dest)
            else:
                _link_exclusive(tmp, dest)
        except FileExistsError:
            raise OutputError(f"{dest}: already exists (use --overwrite to replace it)") from None
        except OSError as exc:
            raise OutputError(f"{dest}: cannot write it ({exc.strerror or exc})") from None
        except (ValueError, TypeError) as exc:  # an encoder refusing what it was given (EXIF too long, say)
            raise OutputError(f"{dest}: cannot write it ({type(exc).__name__}: {exc})") from None
        finally:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
                self._pending.discard(tmp)
        self.written.append(dest)
        return dest

    def cleanup(self) -> None:
        """Remove temporary files left by a write that was interrupted."""
        for tmp in list(self._pending):
            Path(tmp).unlink(missing_ok=True)
            self._pending.discard(tmp)


_MODES = {  # what each format holds of L, LA, RGB, RGBA (the modes images.load_image(keep_mode=True) gives)
    "JPEG": {"L", "RGB"},
    "BMP": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
    "PNG": {"L", "LA", "RGB", "RGBA"},
    "TIFF": {"L", "LA", "RGB", "RGBA"},
}


def _fit_mode(image: Image.Image, fmt: str, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The image in the nearest mode ``fmt`` holds: transparency composited on ``background`` where the
    format has no alpha, greyscale widened to RGB where it has no greyscale."""
    holds = _MODES.get(fmt, {"RGB"})
    if image.mode in holds:
        return image
    if image.mode in ("LA", "RGBA") and image.mode[:-1] in holds:
        return flatten(image, background).convert(image.mode[:-1])
    return image.convert("RGBA" if "A" in image.mode and "RGBA" in holds else "RGB")


def _decodes(path: str, size: tuple[int, int]) -> None:
    """The written image decodes, whole, at the size it was given (OSError otherwise: not reported written)."""
    try:
        with Image.open(path) as written:
            if written.size != size:
                raise OSError(f"it was written as {written.size[0]}x{written.size[1]}, not {size[0]}x{size[1]}")
            written.load()
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder error means the file is not a whole picture
        raise OSError(f"it does not decode ({type(exc).__name__}: {exc})") from None


def _link_exclusive(tmp: str, dest: Path) -> None:
    """Give ``tmp``'s content the name ``dest`` only if nothing has that name (FileExistsError otherwise)."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: reserve the name exclusively, then replace it
        os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.replace(tmp, dest)
