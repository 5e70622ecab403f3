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
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from .._backend import delegate_library, get_backend
from .._validate import shown
from ..cropper import DEFAULT_ASPECTS, Cropper, CropperOptions, CropResult
from ..errors import BackendError, EdgecropError, ImageError, OptionError, OutputError
from ..images import DEFAULT_MAX_MEMORY, LoadedImage, keepable
from ..modelfile.registry import DEFAULT_MODEL, list_models
from ..search import Boost, Policy, SearchOptions, parse_aspects, short_ratios
from . import stop
from .info import card_summary
from .output import SAVE_FORMATS, OutputWriter, resolved
from .progress import progress
from .render import overlay

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".heic"}
HEATMAP_MAX_SIDE = 1600  # heatmaps are pictures to look at: the photo at its size, or scaled to fit this


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 some inputs failed, 2 a usage, model or output error, 130 Ctrl-C, 143 SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return stop.guarded(lambda: _run(args))


def _run(args) -> int:
    try:
        with warnings.catch_warnings():
            if not sys.warnoptions:  # a decoder's warnings about a user's file are not for them (-W shows them)
                warnings.simplefilter("ignore")
            return args.run(args)
    except EdgecropError as exc:
        if (signum := stop.received()) is not None:  # the signal broke what ran (an import, say): it is why
            return stop.report(signum)
        print(f"edgecrop: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `edgecrop crop ... --json | head -1`: the reader has all it wanted
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not hit the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgecrop", description="Saliency-based photo cropping on the device.")
    ap.add_argument("--version", action="version", version=f"edgecrop {__version__}")
    sub = ap.add_subparsers(dest="command")

    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument(
        "--model", default="default", help=f"bundled model name or .tflite path (default: {DEFAULT_MODEL})"
    )
    model_opts.add_argument("--threads", type=int, default=None, help="interpreter threads (default: up to 4)")
    model_opts.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="photos processed at once, each with its own interpreter (default: every core; 1: one by one)",
    )
    model_opts.add_argument("--delegate", help="accelerator: edgetpu, armnn, or a delegate library path")
    model_opts.add_argument("--delegate-option", action="append", default=[], metavar="KEY=VALUE")
    model_opts.add_argument(
        "--max-memory",
        type=int,
        metavar="MB",
        help=f"refuse a photo whose pixels would cost more (default {DEFAULT_MAX_MEMORY >> 20}; per photo and job)",
    )

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
        help="npy: the float32 map (the model's cells over the photo); png: the heatmap over the photo with "
        f"the crop boxes, drawn on the photo scaled to fit {HEATMAP_MAX_SIDE} px (boxes in the photo's pixels)",
    )
    sal.add_argument("--overwrite", action="store_true")
    sal.set_defaults(run=_run_saliency)

    info = sub.add_parser("info", help="backend, versions, delegates and bundled models")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=_run_info)

    audit = sub.add_parser("audit", help="measure what the cropper does to people (see edgecrop.apps.audit)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_common = argparse.ArgumentParser(add_help=False)
    audit_common.add_argument("--out-dir", type=Path, required=True, help="writes audit.json, audit.md, audit.png")
    audit_common.add_argument(
        "--policy", action="append", choices=[p.value for p in Policy], help="repeatable (default: all three)"
    )
    audit_common.add_argument("--overwrite", action="store_true")
    pairs = audit_sub.add_parser(
        "pairs",
        parents=[model_opts, audit_common],
        help="pairs of photos from two groups joined side by side and stacked, in both orders: which is kept",
    )
    pairs.add_argument("group_a", type=Path, metavar="GROUP_A_DIR")
    pairs.add_argument("group_b", type=Path, metavar="GROUP_B_DIR")
    pairs.add_argument("--pairs", type=int, default=200, help="distinct pairs drawn (default 200; at most every pair)")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--ratio", default="1:1", help="crop ratio (default 1:1)")
    pairs.set_defaults(run=_run_audit_pairs)
    faces = audit_sub.add_parser(
        "faces", parents=[model_opts, audit_common], help="share of faces kept whole, per policy and face size"
    )
    faces.add_argument("annotations", type=Path, metavar="ANNOTATIONS.json", help="EyeCrowd layout: {name: {faces}}")
    faces.add_argument("--images", type=Path, required=True)
    faces.add_argument("--aspect", action="append", metavar="W:H", help="repeatable (default 16:9 1:1 4:5 9:16)")
    faces.set_defaults(run=_run_audit_faces)

    demo = sub.add_parser("demo", parents=[model_opts], help="a local page: heatmap, crops, policies, focal point")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, default=7860)
    demo.add_argument(
        "--read-timeout", type=float, metavar="S", help="seconds a request may take to arrive (default 20)"
    )
    demo.set_defaults(run=_run_demo)

    bench = sub.add_parser("bench", help="latency benchmark on this device (see edgecrop.apps.bench)")
    bench.add_argument("--model", action="append", help="bundled name or .tflite (repeatable; default: all bundled)")
    bench.add_argument("--threads", type=int, action="append", help="thread counts (repeatable; default 1 and 2)")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per figure, after a warm-up")
    bench.add_argument("--out-dir", type=Path, help="write <date>-bench.json and <date>-bench.md here")
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
            print(f"edgecrop: wrote {path}", file=sys.stderr)
    return 0


def _run_demo(args) -> int:
    from .demo import READ_TIMEOUT, serve

    if not 0 <= args.port <= 65535:
        raise OptionError("--port must be from 0 to 65535")
    read_timeout = READ_TIMEOUT if args.read_timeout is None else args.read_timeout
    if not 0.1 <= read_timeout <= 3600:
        raise OptionError("--read-timeout must be from 0.1 to 3600 seconds")
    with _cropper(args) as cropper:
        try:
            serve(cropper, args.host, args.port, read_timeout=read_timeout)
        except OSError as exc:
            raise OptionError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    return 0


def _audit_policies(args) -> list[Policy]:
    return [Policy(p) for p in args.policy] if args.policy else list(Policy)


def _run_audit_pairs(args) -> int:
    from . import audit

    if not 1 <= args.pairs <= 100_000:
        raise OptionError("--pairs must be from 1 to 100000")
    audit.check_writable(args.out_dir, args.overwrite)
    groups = []
    for folder in (args.group_a, args.group_b):
        found = expand_inputs([str(folder)])
        if found.problems or not folder.is_dir() or not found.files:
            raise OptionError(found.problems[0] if found.problems else f"{folder}: not a folder of photos")
        _print_notes(found.notes)
        groups.append(found.files)
    (ratio,) = parse_aspects(args.ratio)
    with _cropper(args) as cropper:
        outcomes = audit.pair_outcomes(
            cropper, groups[0], groups[1], args.pairs, args.seed, ratio, _audit_policies(args), progress
        )
    result = audit.summarise_pairs(outcomes)
    result["ratio"], result["seed"] = ratio.label, args.seed
    if result["few_photos"]:
        print(f"edgecrop: warning: {audit.few_photos_warning(result)}", file=sys.stderr)
    command = (
        f"edgecrop audit pairs {args.group_a} {args.group_b} --pairs {args.pairs} --seed {args.seed} "
        f"--ratio {ratio.label}"
    )
    for path in audit.write_report(
        args.out_dir, result, audit.pairs_markdown(result, command), args.overwrite, audit.plot_pairs
    ):
        print(f"edgecrop: wrote {path}", file=sys.stderr)
    print(audit.pairs_markdown(result, command))
    return 0


def _run_audit_faces(args) -> int:
    from . import audit

    audit.check_writable(args.out_dir, args.overwrite)
    annotations = audit.read_faces(args.annotations)
    ratios = parse_aspects(args.aspect or list(DEFAULT_ASPECTS))
    with _cropper(args) as cropper:
        rows = audit.face_outcomes(cropper, annotations, args.images, ratios, _audit_policies(args), progress)
    if not rows:
        raise OptionError("no photo with frontal faces was found")
    result = audit.summarise_faces(rows, ratios, _audit_policies(args))
    command = f"edgecrop audit faces {args.annotations} --images {args.images}"
    markdown = audit.faces_markdown(result, command)
    for path in audit.write_report(args.out_dir, result, markdown, args.overwrite, audit.plot_faces):
        print(f"edgecrop: wrote {path}", file=sys.stderr)
    print(audit.faces_markdown(result, command))
    return 0


@dataclass
class Inputs:
    """What the command line's inputs expand to: the photos, one message per folder that could not be
    read, and notes on what a folder held that is not taken (subfolders, edgecrop's own earlier outputs)."""

    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# DIR/<stem>_<W>x<H>[_<rank>].<ext> and DIR/<stem>_heatmap.png, where <stem> may carry -N (a clash)
_OUTPUT_NAME = re.compile(r"(?P<stem>.+?)(-\d+)?_(\d+(\.\d+)?x\d+(\.\d+)?(_\d+)?|heatmap)")


def expand_inputs(inputs: list[str], out_dir: Path | None = None) -> Inputs:
    """Files as given; folders expanded to their image files (sorted, not recursive). In the output folder
    itself, the outputs of an earlier run (``<stem>_16x9.jpg`` beside ``<stem>.jpg``) are not inputs."""
    found = Inputs()
    out = resolved(out_dir) if out_dir is not None else None
    for item in inputs:
        p = Path(item)
        try:
            folder = p.is_dir()
        except OSError:  # inside a folder the user cannot read: that input's own error, when it is read
            folder = False
        if not folder:
            found.files.append(p)
            continue
        try:
            entries = sorted(p.iterdir())
            folders = [f for f in entries if f.is_dir()]
            photos = [f for f in entries if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        except OSError as exc:
            found.problems.append(f"{p}: cannot read the folder ({exc.strerror or exc})")
            continue
        if folders:
            found.notes.append(f"{p}: skipped {_count(len(folders), 'subfolder')} (folders are not searched)")
        if out is not None and resolved(p) == out:
            stems = {f.stem for f in photos}
            earlier = [f for f in photos if (m := _OUTPUT_NAME.fullmatch(f.stem)) and m["stem"] in stems]
            if earlier:
                names = ", ".join(f.name for f in earlier[:3]) + (", ..." if len(earlier) > 3 else "")
                found.notes.append(f"{p}: skipped {_count(len(earlier), 'earlier output')} of edgecrop ({names})")
                photos = [f for f in photos if f not in earlier]
        found.files += photos
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"edgecrop: note: {note}", file=sys.stderr)


def parse_focus(text: str) -> Boost:
    """'X,Y' (a point) or 'X,Y,W,H' (a box), optionally '@WEIGHT'."""
    spec, _, weight = text.partition("@")
    try:
        values = [float(v) for v in spec.split(",")]
        w = float(weight) if weight else 1.0
    except ValueError:
        values, w = [], 0.0
    if len(values) not in (2, 4) or w <= 0:
        raise OptionError(f"--focus {shown(text)}: use X,Y or X,Y,W,H with an optional @WEIGHT > 0")
    try:
        x, y, bw, bh = values if len(values) == 4 else (*values, 0.0, 0.0)
        return Boost(x, y, bw, bh, weight=w)
    except OptionError as exc:
        raise OptionError(f"--focus {shown(text)}: {exc}") from None


def _cropper(args) -> Cropper:
    options = {}
    for item in args.delegate_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise OptionError(f"--delegate-option {item!r}: use KEY=VALUE")
        options[key] = value
    cropper_options = CropperOptions(
        model=args.model, num_threads=args.threads, delegate=args.delegate, delegate_options=options
    )
    if args.max_memory is not None:  # megabytes here, bytes in the options
        if not 1 <= args.max_memory <= 1 << 30:
            raise OptionError(f"--max-memory must be a number of megabytes from 1, not {shown(args.max_memory)}")
        cropper_options = replace(cropper_options, max_memory=args.max_memory << 20)
    return Cropper(cropper_options)


def _focus(args) -> list[Boost]:
    return [parse_focus(f) for f in args.focus]


def _search_options(args) -> tuple[list, SearchOptions]:
    aspects = parse_aspects(args.aspect or list(DEFAULT_ASPECTS))  # fail early on a bad ratio
    return aspects, SearchOptions(
        policy=args.policy,
        top_k=args.top_k,
        min_scale=args.min_scale,
        area_cost=args.area_cost,
        boosts=_focus(args),
    )


def _batch(args, handle) -> int:
    """Run ``handle(cropper, path, loaded, result, writer) -> text`` for every input on --jobs threads and
    print the texts in input order; a bad input or output is one line on stderr and the batch goes on.
    Temporary files are removed if the batch is interrupted."""
    aspects, options = _search_options(args)
    found = expand_inputs(args.inputs, args.out_dir)
    for message in found.problems:
        print(f"edgecrop: error: {message}", file=sys.stderr)
    _print_notes(found.notes)
    paths = found.files
    if not paths:
        if found.problems:
            return 1
        raise OptionError("no input images")
    failed = len(found.problems)
    writer = OutputWriter(paths, args.out_dir, args.overwrite)
    if args.out_dir is not None:
        _print_notes(
            [f"{p}: its outputs are named {stem}_* (another input has its name)" for p, stem in writer.renamed]
        )

    def one(cropper: Cropper, path: Path) -> tuple[dict[str, int], str]:
        loaded = cropper.load(path)
        try:
            for boost in options.boosts:
                boost.check_inside(loaded.width, loaded.height)
        except OptionError as exc:  # this photo's problem: the others may be large enough
            raise ImageError(str(path), str(exc)) from None
        result = cropper.crop(loaded, aspects, options)
        return short_ratios(result.crops, options), handle(cropper, path, loaded, result, writer)

    short: Counter[str] = Counter()
    try:
        with _cropper(args) as cropper:
            for outcome in progress(cropper.map(one, paths, args.jobs), desc="edgecrop", total=len(paths)):
                if isinstance(outcome, (ImageError, OutputError)):
                    failed += 1
                    print(f"edgecrop: error: {outcome}", file=sys.stderr)
                elif isinstance(outcome, EdgecropError):
                    raise outcome  # the model or an option: every photo would fail
                else:
                    shortfall, text = outcome
                    short.update(shortfall.keys())  # photos per ratio
                    if text:
                        print(text, flush=True)
    finally:
        writer.cleanup()
        if short:
            per_ratio = ", ".join(f"{label} on {_count(n, 'photo')}" for label, n in sorted(short.items()))
            print(
                f"edgecrop: note: fewer than {options.top_k} distinct crops for {per_ratio}: every other window "
                f"overlaps a chosen one by {options.nms_iou:g} IoU or more",
                file=sys.stderr,
            )
        if writer.written:
            folders = sorted({str(p.parent) for p in writer.written})
            print(f"edgecrop: wrote {_count(len(writer.written), 'file')} to {', '.join(folders)}", file=sys.stderr)
    return 1 if failed else 0


def _run_crop(args) -> int:
    if args.heatmap and not args.out_dir:
        raise OptionError("--heatmap needs --out-dir")
    focus = _focus(args)  # drawn on each heatmap

    def handle(cropper: Cropper, path: Path, loaded: LoadedImage, result: CropResult, writer: OutputWriter) -> str:
        record = {**result.as_dict(), "image": str(path)}
        if args.out_dir:
            full = cropper.load_to_write(path)  # first: a photo over the limits writes nothing
            if args.heatmap:
                shown = cropper.picture(path, loaded, HEATMAP_MAX_SIDE)
                heat = overlay(shown, result.saliency, result.crops, (result.width, result.height), focus)
                record["heatmap"] = str(writer.save(heat, path, "heatmap", "PNG"))
            options = cropper.options
            fmt = full.format if full.format in SAVE_FORMATS else "PNG"
            for c, entry in zip(result.crops, record["crops"]):
                suffix = c.aspect.label.replace(":", "x") + (f"_{c.rank + 1}" if c.rank else "")
                piece = keepable(full.rgb.crop((c.x, c.y, c.x + c.width, c.y + c.height)))
                saved = writer.save(piece, path, suffix, fmt, full.icc_profile, full.exif, options.background)
                entry["file"] = str(saved)
        if args.json:
            return json.dumps(record)
        if not args.out_dir:
            boxes = "  ".join(f"{c.aspect.label}: {c.x},{c.y} {c.width}x{c.height}" for c in result.crops)
            return f"{path} ({result.width}x{result.height})  {boxes}"
        return ""

    return _batch(args, handle)


def _run_saliency(args) -> int:
    focus = _focus(args)  # drawn on each heatmap

    def handle(cropper: Cropper, path: Path, loaded: LoadedImage, result: CropResult, writer: OutputWriter) -> str:
        if args.format == "npy":
            writer.save_npy(result.saliency.astype(np.float32), path)
        else:
            shown = cropper.picture(path, loaded, HEATMAP_MAX_SIDE)
            heat = overlay(shown, result.saliency, result.crops, (result.width, result.height), focus)
            writer.save(heat, path, "heatmap", "PNG")
        return ""

    return _batch(args, handle)


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
