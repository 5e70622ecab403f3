"""Converters: flatbuffer edits, the student, pruning bookkeeping, int8 checks, metrics, smoke pipeline."""

import numpy as np
import pytest

from edgecrop import read_card
from edgecrop._backend import get_backend
from edgecrop.errors import ModelError
from edgecrop.modelfile.verify import verify_model


def test_card_reader_verifies_first():
    with pytest.raises(ModelError, match="outside the file"):
        read_card(b"1234TFL3" + b"\xff" * 8, "junk")
    with pytest.raises(ModelError, match="TFL3"):
        read_card(b"not a model at all", "junk")


@pytest.mark.convert
def test_embed_card_round_trip(tiny_models):
    from converters.tflite_edit import embed_card
    from edgecrop import CentrePrior, ModelCard, OutputCard
    from edgecrop.modelfile.card import CARD_METADATA_NAME

    data = tiny_models["int8"].read_bytes()
    card = ModelCard(name="second", output=OutputCard(kind="logits", centre_prior=CentrePrior(0.3, 0.25)))
    again = embed_card(data, card)
    assert list(verify_model(again, "x").metadata_spans).count(CARD_METADATA_NAME) == 1
    assert read_card(again, "x") == card  # written into the .tflite metadata and read back, equal
    twice = embed_card(embed_card(again, ModelCard(name="third")), card)
    assert len(twice) == len(again)  # a replaced card leaves no orphan behind
    outputs = []
    for blob in (data, twice):  # and the weights are where the graph looks for them
        it = get_backend().interpreter_class(model_content=blob)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.arange(np.prod(d["shape"])).reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        outputs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert np.array_equal(*outputs)


@pytest.mark.convert
def test_int8_check_and_operators(tiny_models):
    from converters.tflite_edit import check_int8, operators

    assert check_int8(tiny_models["int8"].read_bytes()) == []
    problems = check_int8(tiny_models["float32"].read_bytes())
    assert problems and all("not all int8" in p for p in problems)
    names = {op[0] for op in operators(tiny_models["int8"].read_bytes())}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR", "CONCATENATION"} <= names


@pytest.mark.convert
def test_slim_removes_masked_maps_exactly():
    import tensorflow as tf

    from converters.student import Architecture, active_widths, build_student, flops, mask_layers, slim

    tf.keras.utils.set_random_seed(1)
    arch = Architecture(input_size=64, stem=6, blocks=((2, 6), (2, 8), (2, 8), (2, 8)), taps=(1, 2, 3), readout=5)
    model = build_student(arch)
    for w in model.trainable_weights:  # non-zero biases, so a wrong slice would show
        w.assign(tf.random.normal(w.shape, stddev=0.3))
    masks = mask_layers(model)
    for unit, channel in [("stem", 2), ("b0", 0), ("b1", 5), ("b2", 1), ("b3", 7), ("readout", 3)]:
        m = masks[unit].mask
        m.assign(tf.tensor_scatter_nd_update(m, [[channel]], [0.0]))
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    slim_model, slim_arch = slim(model, arch)
    np.testing.assert_allclose(slim_model(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    assert slim_arch.unit_widths() == active_widths(model)
    assert flops(slim_arch) < flops(arch)


@pytest.mark.convert
def test_removal_savings_positive():
    from converters.prune import removal_savings
    from converters.student import Architecture

    arch = Architecture()
    savings = removal_savings(arch, arch.unit_widths())
    assert all(v > 0 for v in savings.values())
    assert savings["stem"] > savings["b7"]  # high resolution maps cost more


@pytest.mark.convert
def test_recipe_is_the_one_record():
    from converters.recipe import SHIPPED, LossWeights, Recipe
    from converters.student import flops
    from converters.train import architecture

    assert Recipe.from_json(SHIPPED.to_json()) == SHIPPED
    assert SHIPPED.loss == LossWeights(0.5, 0.5)
    start = flops(architecture(SHIPPED)) / 1e6
    assert 3 * SHIPPED.target_mflops <= start <= 6 * SHIPPED.target_mflops  # prune a 3-6x larger student
    smoke = SHIPPED.smoke()
    assert smoke.limit and smoke.epochs == 1 and smoke.loss == SHIPPED.loss
    with pytest.raises(ValueError):
        Recipe(epochs=0)


def test_metrics_sanity():
    from converters import metrics

    rng = np.random.default_rng(0)
    fix = np.column_stack([rng.normal(150, 10, 50), rng.normal(60, 10, 50)])
    truth = metrics.GroundTruth(fix, 200, 120, other_fixations=rng.uniform([0, 0], [200, 120], (200, 2)))
    good = metrics.all_metrics(truth.density, truth)
    flat = metrics.all_metrics(np.ones((12, 20)), truth)
    assert good["NSS"] > 2 and good["CC"] == pytest.approx(1.0) and good["KL"] == pytest.approx(0, abs=1e-6)
    assert good["AUC-Judd"] > 0.9 and good["sAUC"] > 0.8 and good["SIM"] == pytest.approx(1.0)
    assert flat["NSS"] == pytest.approx(0, abs=1e-6) and flat["AUC-Judd"] == pytest.approx(0.5, abs=0.1)
    assert metrics.auc_ranks(np.array([1.0, 2.0]), np.array([0.0, 0.5])) == 1.0


@pytest.mark.convert
def test_augmentation_moves_maps_with_images():
    from PIL import Image

    from converters.data import Sample, make_example
    from edgecrop.preprocess import InputSpec

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, 60:] = 255  # bright right quarter
    teacher = np.full((15, 20), 1e-4, np.float32)  # a softmax map is never exactly zero
    teacher[:, 15:] = 1.0
    teacher /= teacher.sum()
    sample = Sample("x", Image.fromarray(rgb), teacher, np.array([[70.0, 30.0]]))
    spec = InputSpec(64, 64, 16, 16, "letterbox")
    for seed in range(20):
        ex = make_example(sample, spec, np.random.default_rng(seed))
        assert ex.teacher.sum() == pytest.approx(1.0, abs=1e-4)
        assert not ex.teacher[~ex.valid].any()
        # where the teacher map is, the image is bright (both moved together, flips included)
        brightness = ex.pixels.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3, 4))
        if brightness.max() > 100:  # the crop kept some of the bright part
            assert brightness[ex.teacher > ex.teacher.max() / 2].mean() > 100
        if ex.fix_counts.sum():
            assert brightness[ex.fix_counts > 0].mean() > 100


@pytest.mark.convert
@pytest.mark.shared
def test_pipeline_smoke(tmp_path, shared):
    """A few steps of every stage on a handful of photos: teacher, train, prune, export, evaluate."""
    from converters.pipeline import main
    from converters.recipe import SHIPPED
    from edgecrop import read_card

    report = main(["--smoke", "--work", str(tmp_path), "--shared", str(shared)])
    model = tmp_path / "models" / "edgecrop_int8.tflite"
    assert (tmp_path / "large" / "curve.csv").exists() and (tmp_path / "large" / "curve.png").exists()
    osie = report["sets"]["osie_val"]
    assert np.isfinite(osie["maps"]["NSS"]) and 0 <= osie["ratios"]["1:1"]["model"] <= 1
    card = read_card(model.read_bytes(), "smoke")
    assert card.training["recipe"] == SHIPPED.smoke().to_dict()  # the card says what ran
    assert set(card.training["pruned_vs_scratch"]) == {"fisher_pruned", "scratch"}
    assert card.metrics["eyecrowd_val"]["ratios"]["9:16"]["ci95"]
