"""The ``edgecrop`` command line: crop, saliency, info.

A batch never stops at a bad file: each failure is one line on stderr, the rest go on, and the exit
status is 1 if any file failed (2 for a usage or model error). Outputs are written atomically, never
over an input, and never over an existing file unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from . import __version__
from .backend import delegate_library, get_backend
from .card import card_summary
from .cropper import DEFAULT_ASPECTS, Cropper, CropperOptions, CropResult
from .errors import BackendError, EdgecropError, ImageError, OptionError
from .images import load_image
from .progress import progress
from .registry import DEFAULT_MODEL, list_models
from .render import overlay
from .search import Boost, Policy, SearchOptions, parse_aspects

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
_SAVE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except EdgecropError as exc:
        print(f"edgecrop: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgecrop", description="Saliency-based photo cropping on the device.")
    ap.add_argument("--version", action="version", version=f"edgecrop {__version__}")
    sub = ap.add_subparsers(dest="command")

    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument(
        "--model", default="default", help=f"bundled model name or .tflite path (default: {DEFAULT_MODEL})"
    )
    model_opts.add_argument("--threads", type=int, default=None, help="interpreter threads (default: up to 4)")
    model_opts.add_argument("--delegate", help="accelerator: edgetpu, armnn, or a delegate library path")
    model_opts.add_argument("--delegate-option", action="append", default=[], metavar="KEY=VALUE")

    search_opts = argparse.ArgumentParser(add_help=False)
    search_opts.add_argument(
        "--aspect", action="append", metavar="W:H", help="aspect ratio (repeatable; default 16:9 1:1 4:5 9:16)"
    )
    search_opts.add_argument(
        "--policy",
        choices=[p.value for p in Policy] + ["center"],
        default="saliency",
        help="saliency: the window with the most saliency (all options apply); twitter: centred on the "
        "peak (--focus moves the peak; --top-k/--min-scale/--area-cost are refused); centre: the centred "
        "window (no option applies)",
    )
    search_opts.add_argument("--top-k", type=int, default=1, help="distinct crops per ratio")
    search_opts.add_argument("--min-scale", type=float, default=1.0, help="let windows shrink to this fraction")
    search_opts.add_argument("--area-cost", type=float, default=0.0, help="density threshold for smaller windows")
    search_opts.add_argument(
        "--focus",
        action="append",
        default=[],
        metavar="X,Y[,W,H][@WEIGHT]",
        help="a point or box (pixels) the crop should keep; overrides the model",
    )

    crop = sub.add_parser("crop", parents=[model_opts, search_opts], help="crop photos")
    crop.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS")
    crop.add_argument("--out-dir", type=Path, help="write the cropped images here")
    crop.add_argument("--json", action="store_true", help="print one JSON object per image")
    crop.add_argument("--heatmap", action="store_true", help="also write <stem>_heatmap.png to --out-dir")
    crop.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    crop.set_defaults(run=_run_crop)

    sal = sub.add_parser("saliency", parents=[model_opts, search_opts], help="write saliency maps")
    sal.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS")
    sal.add_argument("--out-dir", type=Path, required=True)
    sal.add_argument(
        "--format",
        choices=["png", "npy"],
        default="png",
        help="npy: the float32 map; png: heatmap over the photo with the crop boxes",
    )
    sal.add_argument("--overwrite", action="store_true")
    sal.set_defaults(run=_run_saliency)

    info = sub.add_parser("info", help="backend, versions, delegates and bundled models")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=_run_info)

    bench = sub.add_parser("bench", help="latency benchmark on this device (see edgecrop.bench)")
    bench.add_argument("--model", action="append", help="bundled name or .tflite (repeatable; default: all bundled)")
    bench.add_argument("--threads", type=int, action="append", help="thread counts (repeatable; default 1 and 2)")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per figure, after a warm-up")
    bench.add_argument("--out-dir", type=Path, help="write <date>-bench.json, .md and PNG plots here")
    bench.add_argument("--overwrite", action="store_true")
    bench.set_defaults(run=_run_bench)
    return ap


def _run_bench(args) -> int:
    from . import bench

    if args.repeats < 1 or any(t < 1 for t in args.threads or []):
        raise OptionError("--repeats and --threads must be at least 1")
    if args.out_dir:
        bench.check_writable(args.out_dir, datetime.date.today().isoformat(), args.overwrite)
    models = {m: m for m in args.model} if args.model else {m.name: m.path for m in list_models()}
    command = " ".join(
        ["edgecrop bench", *(f"--model {m}" for m in args.model or []), *(f"--threads {t}" for t in args.threads or [])]
        + [f"--repeats {args.repeats}"]
    )
    results = bench.run(models, args.threads or (1, 2), args.repeats, command, progress=progress).to_dict()
    print(bench.markdown(results))
    if args.out_dir:
        for path in bench.write(results, args.out_dir, args.overwrite):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; directories expanded to their image files (sorted, not recursive)."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def parse_focus(text: str) -> Boost:
    """'X,Y' (a point) or 'X,Y,W,H' (a box), optionally '@WEIGHT'."""
    spec, _, weight = text.partition("@")
    try:
        values = [float(v) for v in spec.split(",")]
        w = float(weight) if weight else 1.0
    except ValueError:
        values, w = [], 0.0
    if len(values) not in (2, 4) or w <= 0:
        raise OptionError(f"--focus {text!r}: use X,Y or X,Y,W,H with an optional @WEIGHT > 0")
    try:
        x, y, bw, bh = values if len(values) == 4 else (*values, 0.0, 0.0)
        return Boost(x, y, bw, bh, weight=w)
    except OptionError as exc:
        raise OptionError(f"--focus {text!r}: {exc}") from None


def _cropper(args) -> Cropper:
    options = {}
    for item in args.delegate_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise OptionError(f"--delegate-option {item!r}: use KEY=VALUE")
        options[key] = value
    return Cropper(
        CropperOptions(model=args.model, num_threads=args.threads, delegate=args.delegate, delegate_options=options)
    )


def _search_options(args) -> tuple[list, SearchOptions]:
    aspects = parse_aspects(args.aspect or list(DEFAULT_ASPECTS))  # fail early on a bad ratio
    return aspects, SearchOptions(
        policy=args.policy,
        top_k=args.top_k,
        min_scale=args.min_scale,
        area_cost=args.area_cost,
        boosts=[parse_focus(f) for f in args.focus],
    )


def _batch(args, handle) -> int:
    """Run ``handle(cropper, path, result)`` per input; report failures and keep going."""
    aspects, options = _search_options(args)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise OptionError("no input images")
    failed = 0
    with _cropper(args) as cropper:
        writer = OutputWriter(paths, args.out_dir, args.overwrite)
        for path in progress(paths, desc="edgecrop"):
            try:
                result = cropper.crop(path, aspects, options)
                handle(cropper, path, result, writer)
            except (ImageError, OSError) as exc:
                failed += 1
                print(f"edgecrop: error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _run_crop(args) -> int:
    if args.heatmap and not args.out_dir:
        raise OptionError("--heatmap needs --out-dir")

    def handle(cropper: Cropper, path: Path, result: CropResult, writer: OutputWriter) -> None:
        if args.out_dir:
            full = load_image(path, max_pixels=cropper.options.max_pixels, background=cropper.options.background)
            fmt = full.format if full.format in _SAVE_FORMATS else "PNG"
            for c in result.crops:
                suffix = c.aspect.label.replace(":", "x") + (f"_{c.rank + 1}" if c.rank else "")
                piece = full.rgb.crop((c.x, c.y, c.x + c.width, c.y + c.height))
                writer.save(piece, path, suffix, fmt)
            if args.heatmap:
                writer.save(overlay(full.rgb, result.saliency, result.crops), path, "heatmap", "PNG")
        if args.json:
            print(json.dumps({**result.as_dict(), "image": str(path)}), flush=True)
        elif not args.out_dir:
            boxes = "  ".join(f"{c.aspect.label}: {c.x},{c.y} {c.width}x{c.height}" for c in result.crops)
            print(f"{path} ({result.width}x{result.height})  {boxes}", flush=True)

    return _batch(args, handle)


def _run_saliency(args) -> int:
    def handle(cropper: Cropper, path: Path, result: CropResult, writer: OutputWriter) -> None:
        if args.format == "npy":
            writer.save_npy(result.saliency.astype(np.float32), path)
        else:
            shown = cropper.load(path)  # the reduced decode is plenty for a picture
            writer.save(
                overlay(shown.rgb, result.saliency, result.crops, (result.width, result.height)), path, "heatmap", "PNG"
            )

    return _batch(args, handle)


class OutputWriter:
    """Names outputs DIR/<stem>_<suffix>.<ext>, writes them atomically, protects inputs and old files."""

    def __init__(self, inputs: list[Path], out_dir: Path | None, overwrite: bool):
        self.inputs = {p.resolve() for p in inputs}
        self.out_dir = out_dir
        self.overwrite = overwrite
        self.written: set[Path] = set()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)

    def target(self, source: Path, suffix: str, ext: str) -> Path:
        assert self.out_dir is not None
        stem = f"{source.stem}_{suffix}" if suffix else source.stem
        dest = self.out_dir / f"{stem}{ext}"
        n = 1
        while dest.resolve() in self.written:  # two inputs with the same name in one batch
            dest = self.out_dir / f"{stem}-{n}{ext}"
            n += 1
        if dest.resolve() in self.inputs:
            raise OSError(f"{dest}: refusing to overwrite an input")
        if dest.exists() and not self.overwrite:
            raise OSError(f"{dest}: already exists (use --overwrite to replace it)")
        self.written.add(dest.resolve())
        return dest

    def save(self, image: Image.Image, source: Path, suffix: str, fmt: str) -> Path:
        dest = self.target(source, suffix, _SAVE_FORMATS[fmt])
        params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
        return self._atomic(dest, lambda f: image.save(f, format=fmt, **params))

    def save_npy(self, array: np.ndarray, source: Path) -> Path:
        return self._atomic(self.target(source, "", ".npy"), lambda f: np.save(f, array))

    @staticmethod
    def _atomic(dest: Path, write) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


def _run_info(args) -> int:
    import numba

    try:
        backend = get_backend()
        backend_desc: dict[str, str | None] = {"name": backend.name, "version": backend.version}
    except BackendError as exc:
        backend_desc = {"name": None, "error": str(exc)}
    info = {
        "edgecrop": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "backend": backend_desc,
        "delegates": {alias: delegate_library(alias)[0] for alias in ("edgetpu", "armnn")},
        "default_model": DEFAULT_MODEL,
        "models": [
            {"name": m.name, "path": str(m.path), "bytes": m.size_bytes, "card": m.card().to_dict()}
            for m in list_models()
        ],
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"edgecrop {info['edgecrop']}  python {info['python']} ({info['machine']})", end="  ")
    print(f"numpy {info['numpy']}  numba {info['numba']}")
    print(f"backend: {backend_desc.get('name')} {backend_desc.get('version', backend_desc.get('error', ''))}")
    print("delegates: " + ", ".join(f"{k} -> {v}" for k, v in info["delegates"].items()) + ", or any library path")
    print(f"models (default: {DEFAULT_MODEL}):")
    for m in list_models():
        print(f"  {m.name}  {m.size_bytes / 1024:.0f} KB")
        for line in card_summary(m.card()):
            print(f"      {line}")
    print("(edgecrop info --json prints every card in full)")
    return 0
