"""The bundled model through the public API: results, model files of each dtype, threads, errors."""

import io
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edgecrop import (
    Boost,
    Cropper,
    CropperOptions,
    ImageError,
    ModelError,
    OptionError,
    OutputKind,
    Resize,
    SearchOptions,
    crop,
)
from edgecrop._backend import DelegateError, get_backend
from edgecrop.geometry import largest_window
from edgecrop.model import SaliencyModel
from edgecrop.modelfile.registry import DEFAULT_MODEL, list_models, resolve_model
from edgecrop.preprocess import mirrored


@pytest.fixture(scope="module")
def cropper():
    with Cropper() as c:
        yield c


def test_bundled_models_have_cards():
    names = {m.name for m in list_models()}
    assert DEFAULT_MODEL in names
    for m in list_models():
        card = m.card()
        assert card.name == m.name
        assert card.input.resize is Resize.LETTERBOX
        assert card.output.kind is OutputKind.LOGITS
        assert card.parameters and card.flops and card.quantization in m.name


def test_default_model_is_full_integer():
    with SaliencyModel(resolve_model("default")) as model:
        assert model.info.input_quant.dtype == np.int8
        assert model.info.output_quant.dtype == np.int8
        assert model.info.input_quant.scale > 0


def test_crop_result(cropper, sample_path):
    result = cropper.crop(sample_path, ["16:9", "1:1", "4:5", "9:16"])
    assert (result.width, result.height) == (512, 600)
    assert [c.aspect.label for c in result.crops] == ["16:9", "1:1", "4:5", "9:16"]
    for c, r in zip(result.crops, [16 / 9, 1, 4 / 5, 9 / 16]):
        assert (c.width, c.height) == largest_window(512, 600, r)
        assert 0 <= c.x <= 512 - c.width and 0 <= c.y <= 600 - c.height
        assert 0 < c.score <= 1 + 1e-6
    assert result.saliency.dtype == np.float32
    assert result.saliency.sum() == pytest.approx(1.0, abs=1e-4)
    t = result.timings
    assert 0 < t.decode + t.preprocess + t.inference + t.postprocess + t.search <= t.total
    assert list(result.by_aspect()) == ["16:9", "1:1", "4:5", "9:16"] == [str(c.aspect) for c in result.crops]
    assert result.by_aspect()["1:1"] == [result.best("1:1")] == [result.best(1.0)]
    with pytest.raises(OptionError, match="no crop of ratio 3:2"):
        result.best("3:2")
    # letterbox padding is cut: the map has the photo's aspect ratio
    h, w = result.saliency.shape
    assert abs(w / h - 512 / 600) < 0.1


def test_saliency_follows_content(cropper, photo):
    sal = cropper.saliency(photo)
    h, w = sal.shape
    # the photo is a bright blob at 3/4 of the width: more mass on the right half
    assert sal[:, w // 2 :].sum() > sal[:, : w // 2].sum()


def test_one_call_and_options(sample_path):
    result = crop(sample_path, ["1:1"], options=SearchOptions(top_k=3, min_scale=0.6, nms_iou=0.3))
    assert 1 <= len(result.crops) <= 3
    assert [c.rank for c in result.crops] == list(range(len(result.crops)))


def test_focus_overrides_model(cropper, photo):
    plain = cropper.crop(photo, ["1:1"]).crops[0]
    assert plain.x > 5  # the model keeps the blob on the right
    left = cropper.crop(photo, ["1:1"], SearchOptions(boosts=[Boost(5, 60, weight=10)])).crops[0]
    assert left.x <= 5 < left.x + left.width


def test_results_do_not_alias_interpreter_memory(cropper, sample_path, photo):
    first = cropper.saliency(sample_path)
    kept = first.copy()
    cropper.saliency(photo)
    np.testing.assert_array_equal(first, kept)


def test_threads_match_sequential(cropper, sample_path, photo):
    inputs = [sample_path, photo] * 6
    expected = [cropper.crop(p).crops for p in inputs]
    got = [None] * len(inputs)

    def work(i):
        got[i] = cropper.crop(inputs[i]).crops

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_model_from_bytes(sample_path):
    data = resolve_model("default").read_bytes()
    with Cropper.from_model(data, num_threads=1) as c:
        assert c.crop(sample_path, ["1:1"]).crops[0].width == 512


def test_closed_cropper_refuses(sample_path):
    c = Cropper()
    c.close()
    with pytest.raises(ModelError, match="closed"):
        c.saliency(sample_path)


def test_bad_model_files(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(ModelError, match="junk.tflite"):
        Cropper.from_model(junk)
    with pytest.raises(ModelError, match="no such model"):
        SaliencyModel(tmp_path / "missing.tflite")
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(resolve_model("default").read_bytes()[:5000])
    with pytest.raises(ModelError):
        Cropper.from_model(truncated)
    with pytest.raises(ModelError, match="unknown model"):
        Cropper(CropperOptions(model="no_such_model"))


def test_missing_delegate_names_library():
    with pytest.raises(DelegateError, match="libedgetpu"):
        Cropper(CropperOptions(delegate="edgetpu"))
    with pytest.raises(DelegateError, match="/nonexistent/libfoo.so"):
        Cropper(CropperOptions(delegate="/nonexistent/libfoo.so", delegate_options={"a": "b"}))


def test_backend_named():
    assert get_backend().name in ("ai_edge_litert", "tflite_runtime", "tensorflow.lite")


@pytest.mark.parametrize("kind", ["float32", "int8", "uint8"])
def test_models_of_each_dtype(tiny_models, kind, sample_path):
    """Quantisation is read from the model: the three dtypes give nearly the same map."""
    with Cropper.from_model(tiny_models[kind], num_threads=1) as c:
        sal = c.saliency(sample_path)
        expected_dtype = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8}[kind]
        assert c.model.info.input_quant.dtype == expected_dtype
    base = np.load(tiny_models["keras_map"])  # the Keras model's map, computed without TFLite
    assert sal.shape == base.shape
    assert np.corrcoef(sal.ravel(), base.ravel())[0, 1] > (0.999 if kind == "float32" else 0.9)


def test_crop_many_keeps_order_and_puts_errors_in_place(sample_path, photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a photo")
    inputs = [sample_path, broken, photo, sample_path, photo]
    with Cropper() as c:
        one_by_one = list(c.crop_many(inputs, ["1:1"], jobs=1))
        threaded = list(c.crop_many(inputs, ["1:1"], jobs=3))
    assert isinstance(threaded[1], ImageError) and "broken.jpg" in str(threaded[1])
    for a, b in zip(one_by_one, threaded):
        if isinstance(a, ImageError):
            assert type(b) is type(a)
            continue
        assert a.image == b.image and [x.box for x in a.crops] == [y.box for y in b.crops]
        np.testing.assert_array_equal(a.saliency, b.saliency)  # each thread's own interpreter, same map


@pytest.mark.parametrize("jobs", [0, -1, 10**6, 1.5, True])
def test_crop_many_refuses_bad_jobs(jobs, sample_path):
    with Cropper() as c, pytest.raises(OptionError):
        list(c.crop_many([sample_path], jobs=jobs))


@pytest.mark.convert
def test_flip_average_is_the_mean_of_the_photo_and_its_mirror(tiny_models):
    from dataclasses import replace

    from converters.tflite_edit import embed_card
    from edgecrop import read_card

    data = tiny_models["int8"].read_bytes()
    card = read_card(data, "tiny")
    both = embed_card(data, replace(card, output=replace(card.output, flip_average=True)))
    x = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with SaliencyModel(data) as plain, SaliencyModel(both) as averaged:
        a, of_mirror = plain.run(x), plain.run(np.ascontiguousarray(x[:, ::-1]))[:, ::-1]
        assert not np.allclose(a, of_mirror)  # the tiny model is not symmetric, so a missing flip would show
        np.testing.assert_allclose(averaged.run(x), (a + of_mirror) / 2, rtol=1e-6)
        np.testing.assert_allclose(averaged.run(np.ascontiguousarray(x[:, ::-1]))[:, ::-1], averaged.run(x), atol=1e-6)


def test_int8_input_by_sign_flip_equals_the_table(tiny_models):
    """The int8 fast path (pixel - 128 as a flip of the sign bit) must give the table's tensor exactly."""
    x = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with SaliencyModel(tiny_models["int8"]) as fast, SaliencyModel(tiny_models["int8"]) as table:
        assert fast._sign_flip
        table._sign_flip = False
        np.testing.assert_array_equal(fast.run(x), table.run(x))


def test_float_input_of_the_same_values_keeps_its_table(tiny_models):
    """A float model whose table also holds -128..127 (mean 128, std 1) must not get an int8 tensor."""
    from dataclasses import replace

    from converters.tflite_edit import embed_card
    from edgecrop import read_card

    data = tiny_models["float32"].read_bytes()
    card = read_card(data, "tiny")
    shifted = embed_card(data, replace(card, input=replace(card.input, mean=(128.0,) * 3, std=(1.0,) * 3)))
    x = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with SaliencyModel(shifted) as model:
        assert not model._sign_flip
        assert np.isfinite(model.run(x)).all()


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.sampled_from([np.uint8, np.int8, np.float32]))
def test_mirrored_is_a_left_right_flip(h, w, c, dtype):
    a = np.arange(h * w * c).reshape(h, w, c).astype(dtype)
    m = mirrored(a)
    assert m.flags.c_contiguous and m.dtype == a.dtype
    np.testing.assert_array_equal(m, a[:, ::-1])


@pytest.mark.parametrize(
    ("size", "decoded"), [((1024, 768), (256, 192)), ((800, 600), (200, 150)), ((768, 1024), (192, 256))]
)
def test_jpegs_decode_to_what_the_input_layout_needs(cropper, size, decoded):
    # a letterboxed 192x192 input holds a 4:3 photo as 192x144: a 1024x768 JPEG decodes at 1/4 (256x192),
    # the smallest DCT scale that covers it, an 800x600 one at 1/4 too (200x150)
    assert cropper.model.info.spec.width == 192
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 40)).save(buf, "JPEG")
    assert cropper.load(buf.getvalue()).rgb.size == decoded
