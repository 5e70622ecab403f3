"""The .vxm reader (fuzzed), the FastGaze Keras network against a NumPy reference, and its conversion."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.vxm import LAYER_BLUR, LAYER_CONV, LAYER_POOL, Layer, VxmError, read_vxm, write_vxm

VXM_IN_SHARED = "teachers/fastgaze/fastgaze.vxm"


def tiny_layers(seed: int = 0) -> list[Layer]:
    """A FastGaze-shaped network small enough for tests: conv, pool, conv, 1x1 readout with alpha, blur."""
    rng = np.random.default_rng(seed)

    def conv(i, out_c, in_c, k, act, alpha=None):
        w = rng.normal(0, 0.5, (out_c, in_c, k, k)).astype(np.float32)
        return Layer(i, LAYER_CONV, act=act, weights=w, bias=rng.normal(0, 0.1, out_c).astype(np.float32), alpha=alpha)

    return [
        conv(0, 4, 3, 3, 1),
        Layer(1, LAYER_POOL, pool=2),
        conv(2, 3, 4, 3, 1),
        conv(3, 2, 3, 1, 4, 0.3),
        conv(4, 1, 2, 1, 4, 0.25),
        Layer(5, LAYER_BLUR, kernel_size=5, std=1.0),
    ]


@pytest.fixture(scope="module")
def tiny_vxm() -> bytes:
    return write_vxm(tiny_layers())


def test_round_trip(tiny_vxm):
    model = read_vxm(tiny_vxm)
    assert [layer.kind for layer in model.layers] == ["conv", "pool", "conv", "conv", "conv", "blur"]
    for a, b in zip(model.layers, tiny_layers()):
        if a.kind == "conv":
            np.testing.assert_array_equal(a.weights, b.weights)
            assert a.act == b.act and a.alpha == pytest.approx(b.alpha if b.alpha else a.alpha)
    assert write_vxm(model.layers) == tiny_vxm


def test_every_truncation_is_a_clear_error(tiny_vxm):
    for n in range(len(tiny_vxm)):
        with pytest.raises(VxmError):
            read_vxm(tiny_vxm[:n])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "bad magic"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "bad magic"),
        (b"\x01tPM" + (10**6).to_bytes(4, "little"), "more than"),
        (b"\x01tPM" + (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"ab" + bytes(4), "malformed key"),
    ],
)
def test_foreign_files_are_refused(data, message):
    with pytest.raises(VxmError, match=message):
        read_vxm(data)


def test_missing_file(tmp_path):
    with pytest.raises(VxmError, match="cannot read"):
        read_vxm(tmp_path / "nope.vxm")


def test_inconsistent_shapes_are_refused():
    layers = tiny_layers()
    bad = layers[2]
    layers[2] = Layer(bad.index, LAYER_CONV, act=1, weights=np.zeros((3, 5, 3, 3), np.float32), bias=bad.bias)
    with pytest.raises(VxmError, match="channels"):
        read_vxm(write_vxm(layers))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_bytes_never_escape_as_other_errors(tiny_vxm, data):
    buf = bytearray(tiny_vxm)
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    try:
        model = read_vxm(bytes(buf))
    except VxmError:
        return
    assert model.layers[-1].kind == "blur" or model.layers[-1].weights.shape[0] == 1


@pytest.mark.shared
def test_real_file_fuzzed_in_a_child_process(shared):
    """Truncated and corrupted copies of Twitter's file: only VxmError, and the interpreter never dies."""
    code = f"""
import random
from converters.vxm import VxmError, read_vxm
data = open({str(shared / VXM_IN_SHARED)!r}, "rb").read()
m = read_vxm(data)
assert len(m.layers) == 19, len(m.layers)
rng = random.Random(0)
errors = 0
for n in range(400):
    if n % 2:
        copy = data[: rng.randrange(len(data))]
    else:
        copy = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            copy[rng.randrange(4096) if rng.random() < 0.7 else rng.randrange(len(copy))] = rng.randrange(256)
        copy = bytes(copy)
    try:
        read_vxm(copy)
    except VxmError:
        errors += 1
print("ok", errors)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok") and int(run.stdout.split()[1]) >= 200


@pytest.mark.shared
def test_real_file_layout(shared):
    model = read_vxm(shared / VXM_IN_SHARED)
    convs = [layer for layer in model.layers if layer.kind == "conv" and layer.weights.shape[2] == 3]
    assert [c.weights.shape[0] for c in convs] == [43, 44, 49, 56, 44, 38, 31, 20, 18, 10]
    assert [layer.kind for layer in model.layers].count("pool") == 4
    assert model.layers[-1].kernel_size == 19 and model.layers[-1].std == 3


def reference_forward(layers: list[Layer], x: np.ndarray, act4: str) -> np.ndarray:
    """An independent NumPy forward pass (HxWxC, 'same' zero padding, max pooling, leaky ReLU for code 4)."""
    for layer in layers:
        if layer.kind == "conv":
            w, k = layer.weights, layer.weights.shape[2]
            pad = k // 2
            xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
            out = np.zeros((x.shape[0], x.shape[1], w.shape[0]))
            for dy in range(k):
                for dx in range(k):
                    out += xp[dy : dy + x.shape[0], dx : dx + x.shape[1]] @ w[:, :, dy, dx].T
            x = out + layer.bias
            x = np.maximum(x, 0) if layer.act == 1 else np.where(x > 0, x, layer.alpha * x)
        elif layer.kind == "pool":
            h, w_ = x.shape[0] // 2, x.shape[1] // 2
            x = x[: 2 * h, : 2 * w_].reshape(h, 2, w_, 2, -1).max(axis=(1, 3))
        else:
            r = np.arange(layer.kernel_size) - layer.kernel_size // 2
            g = np.exp(-(r**2) / (2 * layer.std**2))
            g /= g.sum()
            pad = layer.kernel_size // 2
            xp = np.pad(x[..., 0], pad)
            x = sum(g[i] * xp[i : i + x.shape[0], pad : pad + x.shape[1]] for i in range(len(g)))
            xp = np.pad(x, pad)
            x = sum(g[j] * xp[pad : pad + x.shape[0], j : j + x.shape[1]] for j in range(len(g)))[..., None]
    return x


@pytest.mark.convert
def test_keras_network_matches_numpy_reference(tiny_vxm):
    from converters.fastgaze import Variant, build_keras

    vxm = read_vxm(tiny_vxm)
    x = np.random.default_rng(1).normal(size=(32, 32, 3)).astype(np.float32)
    keras_out = build_keras(vxm, Variant(normalisation="unit", act4="prelu", pool="max"), 32)(x[None]).numpy()[0]
    np.testing.assert_allclose(keras_out, reference_forward(vxm.layers, x, "prelu"), rtol=1e-4, atol=1e-5)


@pytest.mark.convert
def test_convert_cli_float32_works_in_cropper(tmp_path, tiny_vxm, sample_path):
    from converters.cli import main
    from edgecrop import Cropper, Policy, SearchOptions

    vxm = tmp_path / "tiny.vxm"
    vxm.write_bytes(tiny_vxm)
    out = tmp_path / "tiny.tflite"
    args = [
        "fastgaze",
        str(vxm),
        "-o",
        str(out),
        "--kind",
        "float32",
        "--size",
        "64",
        "--calibration",
        str(sample_path.parent),
        "--check",
        str(sample_path.parent),
    ]
    assert main(args) == 0
    assert main(args) == 2  # never over an existing file
    with Cropper.from_model(out) as cropper:
        assert cropper.model.info.spec.map_width == 32  # one 2x2 pooling
        assert cropper.model.info.card.recommended_policy is Policy.TWITTER
        result = cropper.crop(sample_path, ["1:1", "16:9"], SearchOptions(policy="twitter"))
    assert [c.aspect.label for c in result.crops] == ["1:1", "16:9"]
    vxm.write_bytes(tiny_vxm[:100])
    assert main(["fastgaze", str(vxm), "-o", str(tmp_path / "x.tflite"), "--kind", "float32"]) == 2


@pytest.mark.convert
@pytest.mark.shared
def test_real_fastgaze_int8_keeps_the_float_map(tmp_path, shared):
    """Full-integer int8 of Twitter's network, calibrated on corpus photos: CC >= 0.98 against float32."""
    from dataclasses import replace

    from converters.fastgaze import DEFAULT_VARIANT, convert_fastgaze, default_photos
    from converters.tflite_edit import operators

    calib, check = default_photos(shared, 24, 10)
    blobs = convert_fastgaze(shared / VXM_IN_SHARED, ("int8",), calib, check, replace(DEFAULT_VARIANT, size=192))
    from edgecrop.model import SaliencyModel

    with SaliencyModel(blobs["int8"]) as m:
        assert m.info.card.checks["int8_vs_float32_cc"] >= 0.98
        assert m.info.input_quant.quantized
    assert {name for name, *_ in operators(blobs["int8"])} <= {
        "CONV_2D",
        "MAX_POOL_2D",
        "LEAKY_RELU",
        "AVERAGE_POOL_2D",
        "ELU",
        "RELU",
        "QUANTIZE",
    }
