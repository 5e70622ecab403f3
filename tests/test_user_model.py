"""`edgecrop-convert model`: a user's Keras file or SavedModel becomes an int8 edgecrop model with a card;
bad sources are one line, exit 2, nothing written (issue 29, the Keras and SavedModel routes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.convert


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A small saliency network saved as a Keras file and as a SavedModel, with photos to calibrate on."""
    tf = pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("user_model")
    tf.keras.utils.set_random_seed(1)
    x = tf.keras.Input((64, 64, 3))
    h = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    h = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(h)
    m = tf.keras.layers.Conv2D(1, 1, name="map")(h)
    model = tf.keras.Model(x, m)
    model.save(folder / "net.keras")
    tf.saved_model.save(model, str(folder / "net_savedmodel"))
    tf.keras.Model(x, [m, h]).save(folder / "two.keras")
    flat = tf.keras.Input((10,))
    tf.keras.Model(flat, tf.keras.layers.Dense(1)(flat)).save(folder / "flat.keras")  # not an image input
    photos = folder / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(12):
        yy, xx = np.mgrid[0:120, 0:160]
        cx, cy = rng.uniform(20, 140), rng.uniform(20, 100)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 400.0)
        rgb = np.stack([blob * 255, rng.uniform(0, 80, blob.shape), 255 - blob * 200], -1).astype(np.uint8)
        Image.fromarray(rgb).save(photos / f"{k:02d}.png")
    return folder, model


def _convert(source: Path, out: Path, *extra: str) -> int:
    from converters.cli import main

    return main(["model", str(source), "-o", str(out), "--calibration", str(out.parent / "photos"), *extra])


def test_keras_and_savedmodel_convert_to_the_same_int8_maps(sources, sample_path):
    from converters.export import convert
    from converters.user_model import map_ccs
    from edgecrop import Cropper, read_card

    folder, model = sources
    keras_out, saved_out = folder / "keras_int8.tflite", folder / "saved_int8.tflite"
    assert _convert(folder / "net.keras", keras_out) == 0
    assert _convert(folder / "net_savedmodel", saved_out) == 0
    assert _convert(folder / "net.keras", keras_out) == 2  # never over an existing file
    card = read_card(keras_out.read_bytes(), "x")
    assert card.quantization == "int8" and card.checks["int8_vs_float32_cc_mean"] >= 0.99
    assert len(card.checks["source_sha256"]) == 64 and card.output.map == (16, 16)
    photos = sorted((folder / "photos").iterdir())
    assert min(map_ccs(keras_out.read_bytes(), saved_out.read_bytes(), photos)) >= 0.99
    # the same network exported directly (the project's own export): the converted maps agree with it
    direct = folder / "direct.tflite"
    from converters.tflite_edit import embed_card

    calibration = [np.asarray(Image.open(p).convert("RGB").resize((64, 64)), np.float32)[None] / 255 for p in photos]
    direct.write_bytes(embed_card(convert(model, "int8", calibration), card))
    assert np.mean(map_ccs(keras_out.read_bytes(), direct.read_bytes(), photos)) >= 0.99
    with Cropper.from_model(keras_out) as cropper:  # and it crops like any bundled model
        assert cropper.crop(sample_path, "1:1").crops[0].width == 512


@pytest.mark.parametrize(
    "name, extra, words",
    [
        ("two.keras", [], "2 outputs (map, conv2d_1): say which is the map"),
        ("flat.keras", [], "the input is not one image of shape [1, H, W, 3]"),
        ("truncated.keras", [], "cannot load it"),
        ("net.onnx", [], ".onnx sources are not converted yet"),
        ("net.keras", ["--map-output", "nope"], "no output named 'nope' (outputs: map)"),
        ("net.keras", ["--size", "32x32"], "the model takes 64x64, not the --size (32, 32)"),
    ],
)
def test_bad_sources_are_one_line_and_write_nothing(sources, name, extra, words):
    folder, _ = sources
    (folder / "truncated.keras").write_bytes((folder / "net.keras").read_bytes()[:300])
    (folder / "net.onnx").write_bytes(b"\x08\x07")
    out = folder / f"bad_{name}.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    args = [str(folder / name), "-o", str(out), "--calibration", str(folder / "photos"), *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "converters.cli", "model", *args], capture_output=True, text=True, env=env
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgecrop-convert")]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()
