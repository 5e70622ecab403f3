"""The crop evaluation (converters.evaluate) and calibration (converters.calibrate) on data made here."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from converters.calibrate import CONFIDENCES, cells, confidence_grid, grid, objective, pooled
from converters.evaluate import (
    Photo,
    best_placement,
    faces_kept,
    fixations_inside,
    normalised,
    photo_rows,
    recuts,
    set_summary,
)
from edgecrop.geometry import largest_window


def brute_best(fix, width, height, cw, ch):
    return max(fixations_inside(fix, x, y, cw, ch) for x in range(width - cw + 1) for y in range(height - ch + 1))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(8, 60),
    st.integers(8, 60),
    st.floats(0.3, 3.0),
    st.lists(st.tuples(st.floats(0, 59.99), st.floats(0, 59.99)), min_size=0, max_size=25),
)
def test_best_placement_matches_brute_force(width, height, ratio, points):
    fix = np.array([(x, y) for x, y in points if x < width and y < height]).reshape(-1, 2)
    cw, ch = largest_window(width, height, ratio)
    assert best_placement(fix, width, height, cw, ch) == brute_best(fix, width, height, cw, ch)


def test_best_placement_of_a_smaller_window():
    fix = np.array([[5.0, 5.0], [6.0, 6.0], [30.0, 30.0]])
    assert best_placement(fix, 40, 40, 10, 10) == brute_best(fix, 40, 40, 10, 10) == 2


def test_faces_kept_whole_means_nine_tenths_inside():
    faces = np.array([[0.0, 0.0, 10.0, 10.0], [95.0, 0.0, 10.0, 10.0], [50.0, 50.0, 10.0, 10.0]])
    # the first is inside, the second only half, the third 90% (its last column is cut)
    assert faces_kept(faces, 0, 0, 100, 59) == 2
    assert faces_kept(faces, 0, 0, 100, 58) == 1
    assert faces_kept(np.zeros((0, 4)), 0, 0, 10, 10) == 0


def test_normalised_score_scale():
    centre, best = np.array([0.5, 0.5]), np.array([1.0, 1.0])
    assert normalised(centre, centre, best) == 0
    assert normalised(best, centre, best) == 1
    assert normalised(np.array([0.25, 0.25]), centre, best) == -0.5


def _photo(tmp_path: Path, fixations: np.ndarray, faces=np.zeros((0, 4)), size=(200, 100)) -> Photo:
    path = tmp_path / "p.png"
    Image.new("RGB", size).save(path)
    return Photo("p", path, None, size[0], size[1], fixations, fixations, faces)


def test_recuts_reindex_fixations_and_keep_whole_faces(tmp_path):
    rng = np.random.default_rng(0)
    fix = np.column_stack([rng.uniform(0, 200, 400), rng.uniform(0, 100, 400)])
    faces = np.array([[10.0, 10.0, 8.0, 8.0], [150.0, 60.0, 8.0, 8.0]])
    cuts = recuts([_photo(tmp_path, fix, faces)])
    assert cuts and {c.name.split("@")[1].split("#")[0] for c in cuts} == {"1:1", "3:4", "9:16", "2:1"}
    for c in cuts:
        x, y, w, h = c.box
        assert (c.width, c.height) == (w, h)
        assert np.all((c.fixations >= 0) & (c.fixations < (w, h)))
        inside = fixations_inside(fix, x, y, w, h)
        assert len(c.fixations) == inside
        for f in c.faces:  # faces re-indexed, and only those the re-cut holds whole
            assert faces_kept(f[None], 0, 0, w, h) == 1
        assert c.image().size == (w, h)


def test_recuts_of_other_shapes_and_photos_shrunk_to_a_long_side(tmp_path):
    """What ``--recut-shapes`` and ``--long-side`` evaluate: panoramic re-cuts, and small photos whose
    fixations stay in the full-size frame (the cropper's map covers the picture whatever its size)."""
    rng = np.random.default_rng(1)
    photo = _photo(tmp_path, np.column_stack([rng.uniform(0, 200, 400), rng.uniform(0, 100, 400)]))
    cuts = recuts([photo], shapes=["4:1", "1:3"])
    assert {c.name.split("@")[1].split("#")[0] for c in cuts} == {"4:1", "1:3"}
    assert all(abs(c.width - c.height * (4 if "@4:1" in c.name else 1 / 3)) <= 2 for c in cuts)
    assert photo.source() == photo.path  # a file: the runtime decodes it
    small = replace(photo, long_side=50)
    assert small.source().size == (50, 25) and (small.width, small.height) == (200, 100)
    assert replace(cuts[0], long_side=20).source().size == (20, 5)
    assert replace(photo, long_side=500).source().size == (200, 100)  # never enlarged


def test_rows_and_summary_of_a_map_that_knows_where_people_look(tmp_path):
    fix = np.array([[190.0, 50.0]] * 10 + [[60.0, 50.0]] * 2)  # most people look at the right edge
    p = _photo(tmp_path, fix)
    right = np.zeros((10, 20))
    right[:, -2:] = 1.0
    flat = np.ones((10, 20))
    good = set_summary(photo_rows([right], [p]))["ratios"]["1:1"]
    centre = set_summary(photo_rows([flat], [p]))["ratios"]["1:1"]
    assert good["model"] == pytest.approx(10 / 12) and good["normalised"] == pytest.approx(1.0)
    assert centre["model"] == centre["centre"] and centre["normalised"] == 0
    assert good["best"] == pytest.approx(10 / 12) and good["ci95"][0] <= good["normalised"] <= good["ci95"][1]


def test_calibration_objective_prefers_no_weak_cell():
    params = grid()
    assert (1.0, 0.0, 0.15, 0.0) in params and len(params) == len(set(params))
    more = confidence_grid(2.0, 0.35)  # the second grid: every weight with every confidence
    assert len(more) == len(set(more)) and {c for *_, c in more} == set(CONFIDENCES)
    kept = np.array([[[9.0]], [[8.0]]])  # two parameter sets, one photo, one ratio
    baselines = {"n": np.array([10.0]), "centre": np.array([[5.0]]), "best": np.array([[10.0]])}
    c = cells(kept, baselines, {"a": np.array([0])})
    assert c[:, 0] == pytest.approx([0.8, 0.6])
    p = pooled(kept, baselines, {"a": np.array([0])})
    assert p[:, 0] == pytest.approx([0.8, 0.6]) and objective(p)[0] > objective(p)[1]


def test_pooled_score_weighs_ratios_by_what_they_can_gain():
    # two ratios: one where the centre is nearly perfect (room 0.01), one with room 0.5
    kept = np.array([[[4.0, 9.0]]])  # the model loses 0.01 on the first and gains 0.4 on the second
    baselines = {"n": np.array([10.0]), "centre": np.array([[4.1, 5.0]]), "best": np.array([[4.2, 10.0]])}
    (cell_a, cell_b) = cells(kept, baselines, {"a": np.array([0])})[0]
    assert cell_a == pytest.approx(-1.0) and cell_b == pytest.approx(0.8)  # the noisy cell says -1
    assert pooled(kept, baselines, {"a": np.array([0])})[0, 0] == pytest.approx((0.39) / 0.51)


def test_the_mean_over_ratios_has_a_joint_interval(tmp_path):
    # photos whose people look left or right: a map that always says right is perfect on half of them
    rng = np.random.default_rng(3)
    photos, maps = [], []
    for k in range(12):
        side = 190.0 if k % 2 else 10.0
        fix = np.column_stack([np.full(8, side) + rng.uniform(-5, 5, 8), rng.uniform(0, 100, 8)])
        photos.append(_photo(tmp_path, fix))
        right = np.ones((10, 20))
        right[:, -3:] = 50.0
        maps.append(right)
    s = set_summary(photo_rows(maps, photos))
    low, high = s["mean_ci95"]
    assert low < s["mean_normalised"] < high  # resampling which photos look where moves the score
    assert s == set_summary(photo_rows(maps, photos))  # seeded
    perfect = set_summary(photo_rows(maps[1::2], photos[1::2]))
    assert perfect["mean_normalised"] == 1.0 and perfect["mean_ci95"] == [1.0, 1.0]


def test_the_prior_weight_follows_how_unsure_the_map_is():
    from edgecrop.postprocess import MAX_PRIOR_WEIGHT, prior_weight

    flat, peaked = np.full((6, 8), 1 / 48), np.zeros((6, 8))
    peaked[2, 3] = 1.0
    assert prior_weight(flat, 0.3, 0.0) == prior_weight(peaked, 0.3, 0.0) == 0.3  # no confidence: fixed
    assert prior_weight(flat, 0.3, 0.4) == pytest.approx(0.5)  # unsureness 1: weight + 0.4 * 0.5
    assert prior_weight(peaked, 0.3, 0.4) == pytest.approx(0.1)  # unsureness 0: weight - 0.4 * 0.5
    assert prior_weight(flat, 0.9, 2.0) == MAX_PRIOR_WEIGHT and prior_weight(peaked, 0.1, 2.0) == 0.0
