"""Shared fixtures. Tests that need ../shared or TensorFlow skip with the reason when they are absent."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import hypothesis  # noqa: F401  imported early: its pytest plugin importing it at the end of a run
import numpy as np  # trips a CPython 3.11 AST bug ("recursion depth mismatch") after numba has run
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "grace_hopper.jpg"
SHARED = Path(os.environ.get("EDGECROP_SHARED", REPO.parent / "shared"))

HAVE_SHARED = (SHARED / "data" / "osie" / "fixations.json").exists()
HAVE_TF = importlib.util.find_spec("tensorflow") is not None
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "litert_torch", "onnx2torch"))


def pytest_collection_modifyitems(config, items):
    """The markers `shared`, `convert` and `torch` (pyproject) skip a test, with the reason, when its need is absent."""
    for item in items:
        if "shared" in item.keywords and not HAVE_SHARED:
            item.add_marker(pytest.mark.skip(reason=f"needs the shared data folder ({SHARED}); set EDGECROP_SHARED"))
        if "convert" in item.keywords and not HAVE_TF:
            item.add_marker(pytest.mark.skip(reason="needs TensorFlow: pip install .[convert]"))
        if "torch" in item.keywords and not HAVE_TORCH:
            item.add_marker(pytest.mark.skip(reason="needs PyTorch, litert-torch, onnx2torch: pip install .[torch]"))


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture
def photo(tmp_path) -> Path:
    """A small landscape JPEG with a bright blob right of centre."""
    yy, xx = np.mgrid[0:120, 0:200]
    blob = np.exp(-((xx - 150) ** 2 + (yy - 60) ** 2) / (2 * 12**2))
    rgb = np.stack([blob * 255, blob * 200, np.full_like(blob, 40)], -1).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny student converted to float32, int8 and uint8 .tflite by the converters (needs TF)."""
    if not HAVE_TF:
        pytest.skip("needs TensorFlow: pip install .[convert]")
    import tensorflow as tf

    from converters.export import convert, model_card
    from converters.student import Architecture, build_student
    from converters.tflite_edit import embed_card

    tf.keras.utils.set_random_seed(0)
    arch = Architecture(input_size=64, stem=4, blocks=((2, 4), (2, 8), (2, 8), (2, 8)), taps=(1, 2, 3), readout=4)
    model = build_student(arch, masks=False)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 64, 64, 3), dtype=np.float32) for _ in range(8)]
    out = tmp_path_factory.mktemp("tiny")
    paths = {}
    for kind in ("float32", "int8", "uint8"):
        if kind == "uint8":
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([x] for x in calib)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.uint8
            blob = conv.convert()
        else:
            blob = convert(model, kind, calib)
        paths[kind] = out / f"tiny_{kind}.tflite"
        paths[kind].write_bytes(embed_card(blob, model_card(arch, int(model.count_params()), kind, {}, False)))
    # the Keras model's own map of the sample photo: what every converted file must reproduce
    from edgecrop.images import load_image
    from edgecrop.postprocess import to_probability
    from edgecrop.preprocess import content_cells, to_input

    pixels, place = to_input(load_image(SAMPLE).rgb, arch.spec())
    raw = model(pixels[None].astype(np.float32) / 255.0).numpy()[0, :, :, 0]
    np.save(out / "keras_map.npy", to_probability(content_cells(raw, place), "logits"))
    paths["keras_map"] = out / "keras_map.npy"
    return paths
