"""Stage 1: Google's attention-center as a dense-map teacher, and its maps cached on disk.

The released model only outputs one (x, y) attention centre; its dense logit map is the internal
tensor ``Sum``. This converter re-points the model's output at that tensor and embeds a model card,
which turns it into a model that edgecrop's runtime runs like any other. The maps (softmax of
logits / T over the un-padded region) are cached as float32 .npy at 1/POOL of the image size.

    python -m converters.teacher --workers 2          # all corpus + OSIE photos, resumable
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np
from PIL import Image

from edgecrop.images import load_image
from edgecrop.model import SaliencyModel
from edgecrop.modelfile.card import InputCard, ModelCard, OutputCard
from edgecrop.postprocess import postprocess
from edgecrop.preprocess import OutputKind, Resize

from . import paths
from .data import photo_sets
from .tflite_edit import embed_card, set_outputs, tensor_index

TEMPERATURE = 2.0  # softmax(logits / 2): temperature 1 is over-peaked (shared/README.md)
POOL = 4  # cached maps are 1/4 of the image size
MAP_TENSOR = "Sum"

TEACHER_CARD = ModelCard(
    name="attention-center (teacher)",
    licence="Apache-2.0 (Google)",
    input=InputCard(resize=Resize.LETTERBOX),
    output=OutputCard(kind=OutputKind.LOGITS, temperature=TEMPERATURE, name=MAP_TENSOR),
    notes="Output re-pointed at the internal dense logit map 'Sum' by converters.teacher.",
)

log = logging.getLogger("converters.teacher")


def convert_teacher(model_path: Path) -> bytes:
    """The attention-center model with its dense map as output and an edgecrop model card."""
    data = model_path.read_bytes()
    return embed_card(set_outputs(data, [tensor_index(data, MAP_TENSOR)]), TEACHER_CARD)


def teacher_map(model: SaliencyModel, image_path: Path) -> np.ndarray:
    """Probability map (sums to 1) at 1/POOL of the image size, from the teacher."""
    image = load_image(image_path)
    prob = postprocess(model.raw_map(image.rgb).values, model.info.card.output)
    size = (max(1, round(image.width / POOL)), max(1, round(image.height / POOL)))
    pooled = np.asarray(Image.fromarray(prob, "F").resize(size, Image.Resampling.BOX), dtype=np.float64)
    return (pooled / pooled.sum()).astype(np.float32)


_worker_model: SaliencyModel | None = None


def _init_worker(model_bytes: bytes) -> None:
    global _worker_model
    _worker_model = SaliencyModel(model_bytes, num_threads=1, name="teacher")


def _work(job: tuple[Path, Path]) -> str:
    image_path, out = job
    assert _worker_model is not None
    m = teacher_map(_worker_model, image_path)
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, m)
    tmp.replace(out)
    return image_path.name


def cache_maps(images: list[Path], cache: Path, model_bytes: bytes, workers: int = 2) -> int:
    """Compute the maps not yet cached; returns how many were computed."""
    from tqdm import tqdm

    jobs = [(p, paths.teacher_map_path(cache, p)) for p in images if not paths.teacher_map_path(cache, p).exists()]
    for _, out in jobs:
        out.parent.mkdir(parents=True, exist_ok=True)
    log.info("%d images, %d already cached, %d to compute", len(images), len(images) - len(jobs), len(jobs))
    if not jobs:
        return 0
    with mp.get_context("spawn").Pool(workers, _init_worker, (model_bytes,)) as pool:
        for _ in tqdm(pool.imap_unordered(_work, jobs, chunksize=4), total=len(jobs), desc="teacher"):
            pass
    return len(jobs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", help="the shared data folder (default ../shared)")
    ap.add_argument("--cache", help="cache folder (default .cache/)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N photos of each set (smoke runs)")
    ap.add_argument("--export", help="also write the converted teacher .tflite here")
    args = ap.parse_args(argv)
    shared, cache = paths.shared_dir(args.shared), paths.cache_dir(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(cache / "teacher.log")],
    )
    model_bytes = convert_teacher(paths.teacher_model_path(shared))
    if args.export:
        Path(args.export).write_bytes(model_bytes)
    images = sorted({p for photos in photo_sets(shared, args.limit).values() for p in photos})
    n = cache_maps(images, cache, model_bytes, args.workers)
    log.info("done: %d maps computed into %s", n, cache / "teacher")


if __name__ == "__main__":
    main()
