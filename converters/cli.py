"""``edgecrop-convert``: turn other saliency networks into edgecrop models, and check models for accelerators.

edgecrop-convert model my_net.onnx -o my_net_int8.tflite --calibration PHOTOS_DIR [--check PHOTOS_DIR]
edgecrop-convert fastgaze fastgaze.vxm -o fastgaze_int8.tflite [--kind int8] [--calibration PHOTOS_DIR]
edgecrop-convert edgetpu-check models/edgecrop_int8.tflite
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from edgecrop.errors import EdgecropError

from . import paths
from .vxm import VxmError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ logging (a CUDA probe's errors on a machine without a GPU among it) is not the user's
    # business: errors reach them as one line from here. TF_CPP_MIN_LOG_LEVEL set by the user wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not sys.warnoptions:  # the converters' Python warnings too, unless asked for with -W or PYTHONWARNINGS
        warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(
        prog="edgecrop-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)

    fg = sub.add_parser("fastgaze", help="Twitter's FastGaze .vxm -> edgecrop TFLite (needs TensorFlow)")
    fg.add_argument("vxm", type=Path)
    fg.add_argument("-o", "--output", type=Path, required=True)
    fg.add_argument("--kind", choices=("int8", "float16", "float32"), default="int8")
    fg.add_argument("--size", type=int, help="square input size, a multiple of 16 (default: the chosen variant's)")
    fg.add_argument(
        "--calibration", type=Path, help="folder of photos for int8 calibration (default: ../shared corpus)"
    )
    fg.add_argument("--check", type=Path, help="folder of photos for the int8-vs-float check (default: OSIE val)")
    fg.add_argument("--limit", type=int, default=240, help="at most this many calibration photos")
    fg.add_argument("--shared")
    fg.add_argument("--overwrite", action="store_true")
    fg.set_defaults(run=_run_fastgaze)

    um = sub.add_parser(
        "model", help="your own saliency network (Keras, SavedModel, ONNX, PyTorch, float TFLite) -> edgecrop TFLite"
    )
    um.add_argument(
        "source",
        help="a .keras/.h5 file, a SavedModel folder, an .onnx file, a PyTorch .pt2 (torch.export) or .pt/.pth "
        "(TorchScript) file, package.module:function returning an nn.Module, or a float .tflite file",
    )
    um.add_argument("-o", "--output", type=Path, required=True)
    um.add_argument("--kind", choices=("int8", "float16", "float32"), default="int8")
    um.add_argument("--calibration", type=Path, help="folder of photos for int8 calibration (needed for int8)")
    um.add_argument("--check", type=Path, help="folder of photos for the int8-vs-float check (default: calibration)")
    um.add_argument("--limit", type=int, default=200, help="at most this many calibration photos")
    um.add_argument("--resize", choices=("letterbox", "stretch"), default="letterbox", help="how photos fill the input")
    um.add_argument(
        "--mean", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar="V", help="input = (pixel-mean)/std"
    )
    um.add_argument("--std", type=float, nargs=3, default=(255.0, 255.0, 255.0), metavar="V")
    um.add_argument(
        "--channels", choices=("RGB", "BGR"), default="RGB", help="the order the network reads (--mean/--std in it)"
    )
    um.add_argument(
        "--keep-float",
        metavar="REGEX",
        help="int8 through AI Edge Quantizer: keep the ops whose tensor names match in float (with --allow-float)",
    )
    um.add_argument("--map-output", help="the output that is the map, for a model with several")
    um.add_argument("--map-kind", choices=("logits", "probability", "saliency"), default="saliency")
    um.add_argument("--temperature", type=float, default=1.0, help="logits maps: softmax(logits / T)")
    um.add_argument("--size", help="HEIGHTxWIDTH, for a model whose input size is not fixed (PyTorch needs it)")
    um.add_argument(
        "--allow-float", action="store_true", help="int8: keep the ops int8 cannot take in float (listed in the report)"
    )
    um.add_argument(
        "--custom-objects",
        action="append",
        default=[],
        metavar="MODULE",
        help="a Python module with the custom layers a Keras file uses (repeatable)",
    )
    um.add_argument("--fixations", type=Path, help="a fixations.json beside images/ (OSIE layout): score the crops")
    um.add_argument("--overwrite", action="store_true")
    um.set_defaults(run=_run_model)

    tpu = sub.add_parser("edgetpu-check", help="ops of a .tflite that an Edge TPU would not take")
    tpu.add_argument("model", type=Path)
    tpu.set_defaults(run=_run_edgetpu_check)
    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        extra = dict.fromkeys(("tensorflow", "keras", "tqdm", "matplotlib", "ai_edge_quantizer"), "convert")
        extra |= dict.fromkeys(("torch", "torchao", "onnx", "onnx2torch", "onnxruntime", "litert_torch"), "torch")
        if top in extra:
            print(f'edgecrop-convert: error: needs {top}: pip install "edgecrop[{extra[top]}]"', file=sys.stderr)
            return 2
        raise
    except (VxmError, EdgecropError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"edgecrop-convert: error: {exc}", file=sys.stderr)
        return 2


def _photos(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise ValueError(f"no .jpg/.png photos in {folder}")
    return photos[:: max(1, len(photos) // limit)][:limit]


def _run_fastgaze(args) -> int:
    from dataclasses import replace

    from .quiet import native_chatter_dropped

    with native_chatter_dropped():
        import tensorflow  # noqa: F401  the conversion needs it: say so before reading anything

    from .fastgaze import DEFAULT_VARIANT, STRIDE, convert_fastgaze, default_photos
    from .vxm import read_vxm

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists (use --overwrite)")
    read_vxm(args.vxm)  # fail on a bad file before TensorFlow loads
    variant = DEFAULT_VARIANT
    if args.size:
        if args.size % STRIDE or args.size < STRIDE:
            raise ValueError(f"--size must be a positive multiple of {STRIDE}")
        variant = replace(variant, size=args.size)
    calib: list[Path] = []
    check: list[Path] = []
    if args.calibration is None or args.check is None:
        shared = paths.shared_dir(args.shared)
        if (shared / "data").exists():
            calib, check = default_photos(shared, args.limit, 100)
        elif args.kind == "int8":
            raise ValueError("int8 needs real photos: give --calibration DIR and --check DIR (or ../shared)")
    calib = _photos(args.calibration, args.limit) if args.calibration else calib
    check = _photos(args.check, 100) if args.check else check
    blob = convert_fastgaze(args.vxm, (args.kind,), calib, check, variant)[args.kind]
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.output)
    print(
        f"wrote {args.output} ({len(blob)} bytes); "
        f"crop with: edgecrop crop --model {args.output} --policy twitter PHOTO"
    )
    return 0


def _run_model(args) -> int:
    from .user_model import SourceSpec, convert_user_model, source_kind

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists (use --overwrite)")
    source_kind(args.source)  # a wrong or unsupported source is one line before TensorFlow loads
    size = None
    if args.size:
        try:
            height, width = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--size {args.size!r}: use HEIGHTxWIDTH, e.g. 256x256") from None
        size = (height, width)
    spec = SourceSpec(
        args.resize,
        tuple(args.mean),
        tuple(args.std),
        args.map_output,
        args.map_kind,
        size,
        args.temperature,
        args.allow_float,
        tuple(args.custom_objects),
        args.channels,
        args.keep_float,
    )
    if args.kind == "int8" and args.calibration is None:
        raise ValueError("int8 needs real photos to calibrate on: give --calibration DIR (or --kind float16)")
    if args.fixations is not None and not args.fixations.is_file():
        raise FileNotFoundError(f"--fixations {args.fixations}: no such file")
    calib = _photos(args.calibration, args.limit) if args.calibration else []
    check = _photos(args.check, 100) if args.check else calib[:100]
    blob, report = convert_user_model(args.source, spec, args.kind, calib, check, args.fixations)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.output)
    for key, value in report.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {args.output} ({len(blob)} bytes); crop with: edgecrop crop --model {args.output} PHOTO")
    return 0


def _run_edgetpu_check(args) -> int:
    from .edgetpu import edgetpu_report

    ok, text = edgetpu_report(args.model.read_bytes())
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
