"""`edgecrop-convert model`: a user's network (Keras file, SavedModel, ONNX, PyTorch, float TFLite) becomes
an int8 edgecrop model with a card; bad sources are one line, exit 2, nothing written (issue 29)."""

from __future__ import annotations

import os
import re
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
    features = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="features")(h)
    h = features + tf.keras.layers.Conv2D(8, 1, name="residual")(features)  # an addition int8 must find
    m = tf.keras.layers.Conv2D(1, 1, name="map")(h)
    model = tf.keras.Model(x, m)
    model.save(folder / "net.keras")
    tf.saved_model.save(model, str(folder / "net_savedmodel"))
    tf.keras.Model(x, [m, features]).save(folder / "two.keras")
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


CUSTOM_LAYER = """
import keras


class Halve(keras.layers.Layer):
    def call(self, x):
        return x * 0.5
"""


def test_a_keras_file_with_custom_layers_loads_with_their_module(sources):
    """--custom-objects MODULE (imported from the current folder) gives Keras the custom layers; without it
    the file is one line."""
    import importlib.util

    import tensorflow as tf

    folder, model = sources
    (folder / "mylayers.py").write_text(CUSTOM_LAYER)
    spec = importlib.util.spec_from_file_location("mylayers", folder / "mylayers.py")
    mylayers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mylayers)
    tf.keras.Model(model.inputs, mylayers.Halve()(model.outputs[0])).save(folder / "custom.keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, "-m", "converters.cli", "model", "custom.keras", "--calibration", "photos", "-o"]
    plain = subprocess.run([*args, "plain.tflite"], capture_output=True, text=True, env=env, cwd=folder)
    lines = [ln for ln in plain.stderr.splitlines() if ln.startswith("edgecrop-convert")]
    assert plain.returncode == 2 and len(lines) == 1 and "cannot load it" in lines[0], plain.stderr[-2000:]
    given = [*args, "custom.tflite", "--custom-objects", "mylayers"]
    assert subprocess.run(given, capture_output=True, text=True, env=env, cwd=folder).returncode == 0
    assert (folder / "custom.tflite").exists() and not (folder / "plain.tflite").exists()


@pytest.mark.parametrize(
    "name", ["bgr.keras", "bgr_float.tflite", pytest.param("net_bgr.pt2", marks=pytest.mark.torch)]
)
def test_a_network_that_reads_bgr_converts_to_one_that_reads_rgb(sources, name, request):
    """--channels BGR: the converted model takes the runtime's RGB (the first convolution's filters are
    reversed, or the input is) and gives the maps of the same network reading RGB; --mean and --std are
    given in the network's order and stored in RGB order."""
    import tensorflow as tf

    from converters.export import convert
    from converters.user_model import map_ccs
    from edgecrop import read_card

    folder, model = sources
    bgr = tf.keras.models.clone_model(model)
    bgr.set_weights(model.get_weights())
    kernel, bias = bgr.layers[1].get_weights()
    bgr.layers[1].set_weights([kernel[:, :, ::-1, :], bias])
    bgr.save(folder / "bgr.keras")
    (folder / "bgr_float.tflite").write_bytes(convert(bgr, "float32"))
    keras_out = folder / "keras_int8.tflite"
    if not keras_out.exists():
        assert _convert(folder / "net.keras", keras_out) == 0
    out = folder / f"{name}_int8.tflite"
    if name.endswith(".pt2"):
        request.getfixturevalue("torch_sources")  # it makes net_bgr.pt2
    extra = ["--channels", "BGR", "--mean", "0", "0", "0", "--std", "255", "255", "250"]
    extra += ["--size", "64x64"] if name.endswith(".pt2") else []
    proc = _convert_in_a_process(folder, name, "-o", str(out), "--calibration", "photos", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = read_card(out.read_bytes(), "x")
    assert card.input.std == (250.0, 255.0, 255.0) and card.checks["source_channels"] == "BGR"
    photos = sorted((folder / "photos").iterdir())
    assert np.mean(map_ccs(out.read_bytes(), keras_out.read_bytes(), photos)) >= 0.99


def test_float16_of_a_float_tflite_keeps_its_maps(sources):
    """--kind float16 through AI Edge Quantizer: weights in float16, the same maps."""
    from converters.export import convert
    from converters.user_model import map_ccs

    folder, model = sources
    (folder / "f32.tflite").write_bytes(convert(model, "float32"))
    out = folder / "f16.tflite"
    assert _convert(folder / "f32.tflite", out, "--kind", "float16") == 0
    reference = folder / "f32_converted.tflite"
    assert _convert(folder / "f32.tflite", reference, "--kind", "float32") == 0
    from converters.tflite_edit import operators

    assert ("DEQUANTIZE", ["FLOAT16"], ["FLOAT32"]) in operators(out.read_bytes())  # float16 weights
    photos = sorted((folder / "photos").iterdir())
    assert min(map_ccs(out.read_bytes(), reference.read_bytes(), photos)) >= 0.999


def test_fixations_score_the_converted_crops(sources, tmp_path):
    """--fixations (OSIE layout: fixations.json beside images/) puts crop and map scores in the card."""
    import json

    from edgecrop import read_card

    folder, _ = sources
    (tmp_path / "images").symlink_to(folder / "photos")
    records = {}
    for p in sorted((folder / "photos").iterdir()):  # people look at the bright blob of each photo
        red = np.asarray(Image.open(p))[..., 0].astype(float)
        y, x = np.unravel_index(red.argmax(), red.shape)
        points = [[int(x) + dx, int(y) + dy, 0, k] for k in range(3) for dx, dy in ((0, 0), (3, 2), (-2, 3))]
        records[p.name] = {"width": red.shape[1], "height": red.shape[0], "fixations": points}
    (tmp_path / "fixations.json").write_text(json.dumps(records))
    out = folder / "scored.tflite"
    assert _convert(folder / "net.keras", out, "--fixations", str(tmp_path / "fixations.json")) == 0
    checks = read_card(out.read_bytes(), "x").checks
    assert checks["fixation_photos"] == 12 and checks["crop_score_vs_centre"] <= 1  # 1: the best window
    assert np.isfinite(checks["map_nss"]) and len(checks["crop_score_ci95"]) == 2


@pytest.mark.parametrize(
    "name, extra, words",
    [
        ("two.keras", [], "2 outputs (map, features): say which is the map"),
        ("flat.keras", [], "the input is not one image of shape [1, H, W, 3]"),
        ("truncated.keras", [], "cannot load it"),
        ("net.caffemodel", [], "not a model this converter reads"),
        ("net.keras", ["--map-output", "nope"], "no output named 'nope' (outputs: map)"),
        ("net.keras", ["--size", "32x32"], "the model takes 64x64, not the --size (32, 32)"),
    ],
)
def test_bad_sources_are_one_line_and_write_nothing(sources, name, extra, words):
    folder, _ = sources
    (folder / "truncated.keras").write_bytes((folder / "net.keras").read_bytes()[:300])
    (folder / "net.caffemodel").write_bytes(b"\x08\x07")
    out = folder / f"bad_{name}.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    args = [str(folder / name), "-o", str(out), "--calibration", str(folder / "photos"), *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "converters.cli", "model", *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]  # the whole stderr: one line
    assert proc.stderr.startswith("edgecrop-convert: error: ") and words in proc.stderr and not out.exists()


# The same network as a PyTorch user would write it: TensorFlow's "same" padding of a stride-2 3x3
# convolution on an even size pads one row and column at the bottom right. Run as a script, it takes the
# Keras network's weights and saves the network as TorchScript, an exported program and ONNX.
TORCH_NET = """
import sys

import numpy as np
import torch
import torch.nn.functional as F


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = torch.nn.Conv2d(3, 8, 3, 2), torch.nn.Conv2d(8, 8, 3, 2), torch.nn.Conv2d(8, 1, 1)
        self.residual = torch.nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = F.relu(self.c1(F.pad(x, (0, 1, 0, 1))))
        x = F.relu(self.c2(F.pad(x, (0, 1, 0, 1))))
        x = x + self.residual(x)
        return self.c3(x)


def build():
    net = Net()
    net.load_state_dict(torch.load(__file__.replace("usernet.py", "weights.pt")))
    return net.eval()


if __name__ == "__main__":
    keras = np.load("keras.npz")
    net = Net().eval()
    with torch.no_grad():
        for k, conv in enumerate((net.c1, net.c2, net.residual, net.c3)):  # the Keras layers' order
            conv.weight.copy_(torch.from_numpy(keras[f"kernel{k}"].transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.from_numpy(keras[f"bias{k}"]))
    torch.save(net.state_dict(), "weights.pt")
    x = torch.from_numpy(keras["x"]).permute(0, 3, 1, 2).contiguous()
    gap = np.abs(net(x).detach().numpy()[0, 0] - keras["map"]).max()
    torch.jit.trace(net, x).save("net.pt")
    torch.export.save(torch.export.export(net, (x,)), "net.pt2")
    with torch.no_grad():  # the same network reading BGR
        net.c1.weight.copy_(net.c1.weight.flip(1))
    torch.export.save(torch.export.export(net, (x,)), "net_bgr.pt2")
    net.load_state_dict(torch.load("weights.pt"))
    names = {"input_names": ["image"], "output_names": ["map"], "dynamo": False}
    torch.onnx.export(net, (x,), "net.onnx", opset_version=17, **names)
    torch.onnx.export(net, (x,), "net20.onnx", opset_version=20, **names)
    sys.exit(0 if gap < 1e-4 else f"not the same network: maps differ by {gap}")
"""


PROGRESS = re.compile(r"\(\d\d:\d\d\) \[|.*(%\||it/s\])|INFO: Created TensorFlow Lite XNNPACK delegate")


def _foreign_lines(stderr: str) -> list[str]:
    """stderr lines that are neither edgecrop-convert's nor the converters' progress (litert-torch's steps,
    AI Edge Quantizer's bars, LiteRT's delegate note while it calibrates)."""
    lines = [ln for ln in re.split(r"[\r\n]", stderr) if ln.strip()]
    return [ln for ln in lines if not ln.startswith("edgecrop-convert") and not PROGRESS.match(ln)]


def _convert_in_a_process(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`edgecrop-convert model ARGS` run in ``folder``, in a process of its own (litert-torch and
    TensorFlow crash one process together, and the tests' process has TensorFlow)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "converters.cli", "model", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)


@pytest.fixture(scope="module")
def torch_sources(sources):
    """The fixture's Keras network re-implemented in PyTorch with its weights, saved as TorchScript, an
    exported program, ONNX and a module:function (in a process of its own: PyTorch's compiler stack and
    TensorFlow crash one process together); and the Keras network as a float32 TFLite file."""
    from converters.export import convert

    folder, model = sources
    (folder / "usernet.py").write_text(TORCH_NET)
    convs = [layer.get_weights() for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    x = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
    weights = {f"{name}{k}": w for k, pair in enumerate(convs) for name, w in zip(("kernel", "bias"), pair)}
    np.savez(folder / "keras.npz", x=x, map=model(x).numpy()[0, ..., 0], **weights)
    proc = subprocess.run([sys.executable, "usernet.py"], capture_output=True, text=True, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder / "net_float.tflite").write_bytes(convert(model, "float32"))
    return folder


@pytest.mark.torch
@pytest.mark.parametrize("name", ["net.onnx", "net.pt", "net.pt2", "usernet:build", "net_float.tflite"])
def test_every_route_gives_the_maps_of_the_direct_export(sources, torch_sources, name):
    """ONNX, TorchScript, an exported program, a module:function and a float TFLite file of the same
    network: each is int8 throughout (int8 in and out, no op left in float) and its maps agree with the
    Keras route's within CC 0.99."""
    from converters.user_model import map_ccs
    from edgecrop import read_card
    from edgecrop.model import SaliencyModel

    folder = torch_sources
    keras_out = folder / "keras_int8.tflite"
    if not keras_out.exists():
        assert _convert(folder / "net.keras", keras_out) == 0
    out = folder / f"{name.replace(':', '_')}_int8.tflite"
    size = [] if name.endswith((".onnx", ".tflite")) else ["--size", "64x64"]
    proc = _convert_in_a_process(folder, name, "-o", str(out), "--calibration", "photos", *size)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = read_card(out.read_bytes(), "x")
    assert card.checks["left_in_float"] == "none" and card.checks["int8_vs_float32_cc_worst"] >= 0.98
    assert card.output.map == (16, 16) and len(card.checks["source_sha256"]) in (64, len("none: a Python callable"))
    info = SaliencyModel(out).info
    assert info.input_quant.dtype == "int8" and info.output_quant.dtype == "int8"
    photos = sorted((folder / "photos").iterdir())
    assert np.mean(map_ccs(out.read_bytes(), keras_out.read_bytes(), photos)) >= 0.99


@pytest.mark.torch
def test_a_pytorch_conversion_from_the_command_line(torch_sources, sample_path):
    """The CLI in a subprocess: stdout is the report, the model crops from `edgecrop crop`, and stderr holds
    only the converters' progress and notes (no traceback, no warning)."""
    folder = torch_sources
    out = folder / "cli_int8.tflite"
    proc = _convert_in_a_process(folder, "net.pt2", "-o", str(out), "--calibration", "photos", "--size", "64x64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("source: net.pt2\n") and "route: PyTorch -> litert-torch" in proc.stdout
    assert "left_in_float: none" in proc.stdout and "wrote" in proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-2000:]
    crop = subprocess.run(
        [sys.executable, "-m", "edgecrop", "crop", "--model", str(out), str(sample_path)],
        capture_output=True,
        text=True,
    )
    assert crop.returncode == 0 and crop.stderr == "" and "1:1" in crop.stdout


@pytest.fixture(scope="module")
def square_tflite(sources):
    """A float TFLite whose map squares a tensor: AI Edge Quantizer leaves SQUARE in float."""
    tf = pytest.importorskip("tensorflow")
    from converters.export import convert

    folder, _ = sources
    x = tf.keras.Input((32, 32, 3), batch_size=1)
    h = tf.keras.layers.Conv2D(4, 3, strides=4, padding="same")(x)
    m = tf.keras.layers.Conv2D(1, 1)(tf.keras.layers.Lambda(tf.math.square)(h))
    (folder / "square.tflite").write_bytes(convert(tf.keras.Model(x, m), "float32"))
    return folder / "square.tflite"


@pytest.mark.torch
@pytest.mark.parametrize(
    "name, extra, words",
    [
        ("truncated.onnx", [], "cannot load it"),
        ("net20.onnx", [], "opset 20, and onnx2torch reads up to opset 17: export it with opset_version=17"),
        ("junk.pt", ["--size", "64x64"], "not a TorchScript network (RuntimeError); for a file of weights"),
        ("weights.pt", ["--size", "64x64"], "give package.module:function that builds the network"),
        ("net.pt", [], "give --size HEIGHTxWIDTH"),
        ("net.onnx", ["--size", "32x32"], "the model takes 64x64, not the --size (32, 32)"),
        ("nosuchmodule:build", ["--size", "64x64"], "cannot import it"),
        ("junk.tflite", [], "not a TFLite model LiteRT can load"),
        ("square.tflite", [], "SQUARE x1 stay float): try --kind float16, or --allow-float"),
    ],
)
def test_bad_sources_of_the_other_routes_are_one_line(torch_sources, square_tflite, name, extra, words):
    folder = torch_sources
    (folder / "truncated.onnx").write_bytes((folder / "net.onnx").read_bytes()[:200])
    (folder / "junk.pt").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "junk.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(40))
    out = folder / f"bad_{name.replace(':', '_')}.tflite"
    proc = _convert_in_a_process(folder, name, "-o", str(out), "--calibration", "photos", *extra)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgecrop-convert")]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
    assert _foreign_lines(proc.stderr) == [] and not out.exists()


@pytest.mark.shared
def test_attention_center_converts_to_int8_and_crops(shared, tmp_path, sample_path):
    """Google's attention-center (float16 TFLite from ../shared, with group norms): its dense map 'Sum' as
    logits, the group norms kept float; the int8 maps within CC 0.98 of the float model's, and it crops from
    the command line."""
    photos, check = tmp_path / "photos", tmp_path / "check"
    photos.mkdir()
    check.mkdir()
    corpus = sorted((shared / "data" / "corpus").iterdir())
    osie = sorted((shared / "data" / "osie" / "images").iterdir())
    for folder, files in ((photos, corpus[::60][:20]), (check, osie[::60][:8])):
        for f in files:
            (folder / f.name).symlink_to(f)
    out = tmp_path / "attention_center_int8.tflite"
    flags = ["--map-output", "Sum", "--map-kind", "logits", "--temperature", "2"]
    flags += ["--allow-float", "--keep-float", ".*GroupNorm.*", "--check", str(check)]
    source = str(shared / "teachers" / "attention-center" / "center.tflite")
    proc = _convert_in_a_process(tmp_path, source, "-o", str(out), "--calibration", str(photos), *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from edgecrop import read_card

    checks = read_card(out.read_bytes(), "x").checks
    assert checks["int8_vs_float32_cc_mean"] >= 0.98 and len(checks["source_sha256"]) == 64
    command = [sys.executable, "-m", "edgecrop", "crop", "--model", str(out), str(sample_path)]
    crop = subprocess.run(command, capture_output=True, text=True)
    assert crop.returncode == 0 and crop.stderr == "" and "16:9" in crop.stdout
