"""The crop search against an independent brute force, plus its documented rules."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgecrop import OptionError
from edgecrop.geometry import AspectRatio, largest_window
from edgecrop.search import (
    COMPILE_AFTER,
    Boost,
    Engine,
    Policy,
    SearchOptions,
    _Ledger,
    boosted_map,
    centred_window,
    find_crops,
    parse_aspects,
    search,
    summed_area,
)

SQUARE = [AspectRatio(1, 1)]

TOL = 1e-9


def exact_mass(m, width, height, x, y, cw, ch):
    """Window mass by explicit cell coverage (independent of the summed-area interpolation)."""
    h, w = m.shape
    u0, u1 = x * w / width, (x + cw) * w / width
    v0, v1 = y * h / height, (y + ch) * h / height
    k = np.arange(w)
    cover_x = np.clip(np.minimum(u1, k + 1) - np.maximum(u0, k), 0, None)
    k = np.arange(h)
    cover_y = np.clip(np.minimum(v1, k + 1) - np.maximum(v0, k), 0, None)
    return float(cover_y @ m @ cover_x)


def brute_force(m, width, height, sizes, area_cost=0.0):
    """Every integer position of every window size; ties: nearest the centre, then y, then x."""
    rows = []
    for cw, ch in sizes:
        penalty = area_cost * cw * ch / (width * height)
        for y in range(height - ch + 1):
            for x in range(width - cw + 1):
                s = exact_mass(m, width, height, x, y, cw, ch) - penalty
                dist = (2 * x + cw - width) ** 2 + (2 * y + ch - height) ** 2
                rows.append((s, dist, y, x, cw, ch))
    top = max(r[0] for r in rows)
    tied = [r for r in rows if r[0] >= top - 1e-7]
    # larger windows first among ties across sizes (the search tries scale 1 first)
    return top, tied


maps = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda hw: arrays(np.float64, hw, elements=st.integers(0, 4).map(float))
)


def normalise(m):
    return m / m.sum() if m.sum() > 0 else np.full(m.shape, 1 / m.size)


TOP_1_ENGINES = pytest.mark.parametrize("engine", [Engine.NUMBA, Engine.NUMPY])


@TOP_1_ENGINES
@settings(max_examples=150, deadline=None)
@given(maps, st.integers(8, 90), st.integers(8, 90), st.sampled_from([16 / 9, 1.0, 0.8, 9 / 16, 2.4]))
def test_largest_window_matches_brute_force(engine, m, width, height, ratio):
    m = normalise(m)
    sat = summed_area(m)
    (best,) = search(sat, width, height, ratio, engine=engine)
    cw, ch = largest_window(width, height, ratio)
    top, tied = brute_force(m, width, height, [(cw, ch)])
    assert (best.box.width, best.box.height) == (cw, ch)
    assert best.score == pytest.approx(top, abs=1e-7)
    expected = min(tied, key=lambda r: (r[1], r[2], r[3]))
    assert (best.box.x, best.box.y) == (expected[3], expected[2])


@TOP_1_ENGINES
@settings(max_examples=60, deadline=None)
@given(maps, st.integers(8, 48), st.integers(8, 48), st.sampled_from([16 / 9, 1.0, 0.8]), st.floats(0.0, 0.9))
def test_zoom_search_matches_brute_force(engine, m, width, height, ratio, area_cost):
    m = normalise(m)
    sat = summed_area(m)
    (best,) = search(sat, width, height, ratio, min_scale=0.5, scale_steps=3, area_cost=area_cost, engine=engine)
    sizes = [largest_window(width, height, ratio, s) for s in np.linspace(1.0, 0.5, 3)]
    top, _ = brute_force(m, width, height, sizes, area_cost)
    assert best.score == pytest.approx(top, abs=1e-7)
    penalty = area_cost * best.box.area / (width * height)
    assert exact_mass(m, width, height, *best.box.as_tuple()) - penalty == pytest.approx(best.score, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(maps, st.integers(16, 120), st.integers(16, 120), st.integers(2, 5), st.floats(0.2, 0.8))
def test_top_k_distinct_and_ordered(m, width, height, k, iou):
    sat = summed_area(normalise(m))
    found = search(sat, width, height, 1.0, min_scale=0.6, scale_steps=3, top_k=k, nms_iou=iou)
    (first,) = search(sat, width, height, 1.0, min_scale=0.6, scale_steps=3)
    assert found[0] == first
    assert 1 <= len(found) <= k
    for i, a in enumerate(found):
        assert 0 <= a.box.x and a.box.x + a.box.width <= width
        assert 0 <= a.box.y and a.box.y + a.box.height <= height
        for b in found[i + 1 :]:
            assert a.box.iou(b.box) < iou
    assert all(found[i].score >= found[i + 1].score - TOL for i in range(len(found) - 1))


big_maps = st.tuples(st.integers(1, 70), st.integers(1, 70)).flatmap(
    lambda hw: arrays(np.float64, hw, elements=st.sampled_from([0.0, 1.0, 1.0 + 1e-12, 3.0, 1e-9, 0.37]))
)


@settings(max_examples=300, deadline=None)
@given(
    big_maps,
    st.integers(1, 6000),
    st.integers(1, 6000),
    st.sampled_from([16 / 9, 1.0, 0.8, 9 / 16, 3.0, 0.2]),
    st.sampled_from([1.0, 0.6, 0.25]),
    st.integers(1, 5),
    st.sampled_from([0.0, 0.5, 1.2]),
)
def test_numpy_engine_is_the_kernels_bit_for_bit(m, width, height, ratio, min_scale, steps, area_cost):
    """Maps of ties, near-ties (1e-12 apart, far below the tolerance) and empty cells, at any size."""
    sat = summed_area(normalise(m))
    kw = {"min_scale": min_scale, "scale_steps": steps, "area_cost": area_cost}
    assert search(sat, width, height, ratio, engine=Engine.NUMPY, **kw) == search(
        sat, width, height, ratio, engine=Engine.NUMBA, **kw
    )


def test_auto_rents_numpy_until_it_has_cost_a_compile():
    ledger = _Ledger()
    assert ledger.choose(Engine.AUTO, 1) is Engine.NUMPY
    assert ledger.choose(Engine.AUTO, 3) is Engine.NUMBA  # top-k only the kernels do
    assert ledger.choose(Engine.NUMBA, 1) is Engine.NUMBA
    ledger.paid(COMPILE_AFTER / 2, Engine.AUTO)
    ledger.paid(COMPILE_AFTER, Engine.NUMPY)  # a caller's own choice is not AUTO's rent
    assert ledger.choose(Engine.AUTO, 1) is Engine.NUMPY
    ledger.paid(COMPILE_AFTER / 2, Engine.AUTO)
    assert ledger.choose(Engine.AUTO, 1) is Engine.NUMBA  # this caller compiles ...
    assert ledger.choose(Engine.AUTO, 1) is Engine.NUMPY  # ... while the others keep renting
    ledger.compiled = True
    assert ledger.choose(Engine.AUTO, 1) is Engine.NUMBA
    assert ledger.choose(Engine.NUMPY, 1) is Engine.NUMPY


def test_the_numpy_engine_refuses_top_k():
    with pytest.raises(OptionError, match="numpy engine"):
        SearchOptions(top_k=2, engine="numpy")
    with pytest.raises(OptionError, match="engine must be one of"):
        SearchOptions(engine="cuda")
    assert SearchOptions(engine="numba").engine is Engine.NUMBA


def test_uniform_map_gives_centred_crop():
    m = np.ones((8, 8))
    (best,) = search(summed_area(normalise(m)), 1000, 600, 1.0)
    assert best.box.as_tuple() == (200, 0, 600, 600)


def test_crop_follows_salient_region():
    m = np.zeros((6, 10))
    m[2:4, 8] = 1.0
    (best,) = search(summed_area(normalise(m)), 1000, 600, 1.0)
    assert best.box.x == 300  # of the windows holding the peak (x 300..400), the most central
    assert best.score == pytest.approx(1.0)


def test_boost_overrides_model():
    m = np.zeros((6, 10))
    m[3, 0] = 1.0  # the model looks left
    opts = SearchOptions(boosts=[Boost(950, 300, weight=5.0)])  # the user taps the right edge
    (c,) = find_crops(m, 1000, 600, SQUARE, opts)
    assert c.x + c.width > 950
    assert c.score == pytest.approx(c.model_mass + c.boost_mass - c.area_cost)
    assert c.boost_mass == pytest.approx(5 / 6)  # the whole boost is inside, the model's peak is not
    assert c.model_mass == pytest.approx(0.0)
    (plain,) = find_crops(m, 1000, 600, SQUARE, SearchOptions())
    assert plain.x == 0 and plain.boost_mass == 0 and plain.model_mass == pytest.approx(plain.score)


def test_box_boost_spreads_weight():
    m = np.full((4, 4), 1 / 16)
    boosted, model = boosted_map(m, 400, 400, (Boost(0, 0, 200, 200, weight=1.0),))
    assert boosted.sum() == pytest.approx(1.0)
    assert boosted[:2, :2].sum() == pytest.approx((0.25 + 1) / 2)
    assert model.sum() == pytest.approx(0.5)


def test_twitter_policy_centres_on_peak_and_stays_inside():
    m = np.zeros((10, 10))
    m[1, 8] = 1.0
    (c,) = find_crops(m, 1000, 1000, [AspectRatio(9, 16)], SearchOptions(policy=Policy.TWITTER))
    assert (c.width, c.height) == largest_window(1000, 1000, 9 / 16)
    assert c.x == 1000 - c.width  # would be centred at x=850, shifted inside
    box = centred_window(500, 500, 1000, 1000, 1.0)
    assert box.as_tuple() == (0, 0, 1000, 1000)


def test_centre_policy():
    m = np.zeros((4, 4))
    m[0, 0] = 1
    (c,) = find_crops(m, 800, 600, SQUARE, SearchOptions(policy="center"))  # the American spelling too
    assert c.as_dict() == {"aspect": "1:1", "x": 100, "y": 0, "width": 600, "height": 600, "score": 0.5, "rank": 0}
    assert SearchOptions(policy="centre").policy is Policy.CENTRE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"policy": "nope"},
        {"min_scale": 0},
        {"min_scale": float("nan")},
        {"top_k": 0},
        {"top_k": 10**6},
        {"scale_steps": 10**6},
        {"scale_steps": 2.5},
        {"area_cost": -1},
        {"area_cost": float("inf")},
        {"nms_iou": 0},
        {"boosts": ["not a boost"]},
        {"policy": "twitter", "top_k": 3},
        {"policy": "twitter", "min_scale": 0.5},
        {"policy": "centre", "area_cost": 0.5},
        {"policy": "centre", "boosts": [Boost(1, 1)]},
    ],
)
def test_options_are_validated(kwargs):
    with pytest.raises(OptionError):
        SearchOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"x": float("nan"), "y": 0},
        {"x": 0, "y": float("inf")},
        {"x": 0, "y": 0, "weight": -1},
        {"x": 0, "y": 0, "weight": 0},
        {"x": 0, "y": 0, "weight": float("nan")},
        {"x": 0, "y": 0, "width": -5},
    ],
)
def test_boosts_are_validated(kwargs):
    with pytest.raises(OptionError):
        Boost(**kwargs)


def test_focus_outside_the_photo_is_refused():
    with pytest.raises(OptionError, match="outside the 800x600 photo"):
        find_crops(np.ones((3, 4)), 800, 600, SQUARE, SearchOptions(boosts=[Boost(900, 100)]))


def test_aspects_one_or_many():
    assert parse_aspects("16:9") == [AspectRatio(16, 9)]
    assert parse_aspects(AspectRatio(4, 5)) == [AspectRatio(4, 5)]
    assert [a.label for a in parse_aspects(["16x9", 1.5, AspectRatio(9, 16)])] == ["16:9", "3:2", "9:16"]
    with pytest.raises(OptionError):
        parse_aspects("1" * 400 + ":0")
    with pytest.raises(OptionError):
        parse_aspects([])


KERNEL_RUN = """
import json, numpy as np
from edgecrop.search import find_crops, SearchOptions, AspectRatio
from edgecrop._search_numba import candidates, score_windows, alternatives
m = np.random.default_rng(0).random((48, 64))
find_crops(m, 4000, 3000, [AspectRatio(16, 9)], SearchOptions(top_k=2, min_scale=0.8))
print(json.dumps({f.__name__: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
                  for f in (candidates, score_windows, alternatives)}))
"""


def test_kernels_compile_once_then_load_from_the_disk_cache(tmp_path):
    """A later process compiles nothing: every kernel comes from Numba's on-disk cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", KERNEL_RUN], capture_output=True, text=True, env=env, check=True, timeout=300
            ).stdout
        )
        for _ in range(2)
    ]
    assert all(hits == 0 and misses == 1 for hits, misses in runs[0].values()), runs[0]
    assert all(hits == 1 and misses == 0 for hits, misses in runs[1].values()), runs[1]


ONE_PHOTO = """
import contextlib, io, json, sys
from edgecrop.apps.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["crop", sys.argv[1], "--json"])
print(json.dumps([code, json.loads(out.getvalue())["crops"][0]["width"], sorted(
    m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite"))]))
"""


def test_one_photo_is_cropped_without_importing_numba(sample_path, tmp_path):
    """A process that crops one photo searches with NumPy: nothing to import, compile or cache for it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", ONE_PHOTO, str(sample_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    code, width, jit_modules = json.loads(proc.stdout)
    assert code == 0 and width > 0 and jit_modules == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "given, message",
    [
        (b"16:9", "not bytes"),
        (None, "not NoneType"),
        (10**400, "between 1:10000 and 10000:1"),
        (float("nan"), "between 1:10000 and 10000:1"),
        ([object()], "not object"),
        (["1:1"] * 65, "at most 64 aspect ratios"),
    ],
)
def test_odd_aspect_arguments_are_one_option_error(given, message):
    with pytest.raises(OptionError, match=message):
        parse_aspects(given)


def test_a_tiny_ratio_is_not_rounded_to_nothing():
    (r,) = parse_aspects(0.00011)
    assert r.value == pytest.approx(0.00011) and r.width > 0
