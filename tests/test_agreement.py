"""The split-half reference (converters.agreement) on data made here."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.agreement import halves, people_map, split_half
from converters.data import load_fixations
from converters.evaluate import Photo

from .conftest import REPO


def test_fixations_keep_their_observer_and_lose_each_first_one(tmp_path: Path):
    fixations = [[400, 300, 200, 0], [10, 20, 150, 0], [30, 40, 150, 0], [400, 300, 200, 1], [900, 5, 100, 1]]
    fixations.append([50, 60, 120, 1])
    (tmp_path / "fixations.json").write_text(
        json.dumps({"a.jpg": {"width": 800, "height": 600, "fixations": fixations}})
    )
    with_observers = load_fixations(tmp_path, observers=True)["a.jpg"]
    # the two starts dropped, and (900, 5) is outside the 800-pixel-wide photo
    assert with_observers.tolist() == [[10, 20, 0], [30, 40, 0], [50, 60, 1]]
    assert load_fixations(tmp_path)["a.jpg"].tolist() == [[10, 20], [30, 40], [50, 60]]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=60), st.integers(0, 1000))
def test_halves_split_observers_not_fixations(observers, seed):
    fixations = np.array([[i, 2 * i, o] for i, o in enumerate(observers)], dtype=float)
    mine, theirs = halves(fixations, np.random.default_rng(seed))
    assert len(mine) + len(theirs) == len(fixations)
    owner = {int(x): o for x, _, o in fixations}
    mine_who, theirs_who = {owner[int(x)] for x in mine[:, 0]}, {owner[int(x)] for x in theirs[:, 0]}
    assert not mine_who & theirs_who
    assert len(mine_who) == len(set(observers)) // 2


def test_people_map_covers_the_photo_and_peaks_where_people_looked():
    m = people_map(np.array([[700.0, 100.0], [705.0, 110.0]]), 800, 600)
    assert m.shape == (150, 200) and np.isclose(m.sum(), 1)
    row, col = np.unravel_index(np.argmax(m), m.shape)
    assert abs(col - 176) <= 2 and abs(row - 26) <= 2
    assert np.allclose(people_map(np.zeros((0, 2)), 800, 600), 1 / (150 * 200))


def test_people_who_agree_score_one_and_a_flat_map_the_centre_crop():
    """Every observer looks at the bottom right corner: the other half's map finds it, a flat map keeps the
    centre crop (0), and a map that knows the spot is as good as the people."""
    rng = np.random.default_rng(0)
    photos, observers, flat, knowing = [], {}, [], []
    for k in range(6):
        fix = np.array([[rng.uniform(740, 790), rng.uniform(540, 590), o] for o in range(8) for _ in range(5)])
        name = f"set/{k}.jpg"
        photos.append(Photo(name, Path(name), None, 800, 600, fix[:, :2], fix[:, :2], np.zeros((0, 4))))
        observers[name] = fix
        flat.append(np.full((150, 200), 1 / 30000, np.float32))
        knowing.append(people_map(fix[:, :2], 800, 600))
    agreeing = split_half(knowing, photos, observers, splits=2)
    assert agreeing["people"] == agreeing["ratios"]["9:16"]["people"] == 1.0
    assert agreeing["model"] == 1.0
    assert split_half(flat, photos, observers, splits=2)["ratios"]["9:16"]["model"] == 0.0


@pytest.mark.shared
def test_agreement_command_on_the_validation_sets(shared):
    command = [sys.executable, "-m", "converters.agreement", "--shared", str(shared), "--limit", "4", "--splits", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == "osie_val (4 photos, 1 random splits of the observers)" and len(lines) == 21
    assert lines[14] == "nus_scene_val (4 photos, 1 random splits of the observers)"
    assert [line.split()[0] for line in lines[16:]] == ["16:9", "1:1", "4:5", "9:16", "mean"]
