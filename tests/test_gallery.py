"""The contact sheets: the right photos in the right rows, nothing overwritten, the CLI on the real sets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from converters.evaluate import Photo
from converters.gallery import TILE, sheet, tiles, write_sheets

from .conftest import REPO


def _photo(tmp_path, name: str, fixations_x: float) -> Photo:
    path = tmp_path / f"{name}.png"
    Image.new("RGB", (400, 300), (90, 90, 90)).save(path)
    fix = np.array([[fixations_x, 150.0]] * 10)
    return Photo(name, path, None, 400, 300, fix, fix, np.zeros((0, 4)))


def _map_on(x_cells: slice) -> np.ndarray:
    m = np.full((30, 40), 1e-6)
    m[:, x_cells] = 1.0
    return m / m.sum()


def test_tiles_rank_photos_by_what_the_crop_gains_over_the_centre(tmp_path):
    photos = [_photo(tmp_path, "left", 20.0), _photo(tmp_path, "middle", 200.0), _photo(tmp_path, "right", 330.0)]
    maps = [_map_on(slice(0, 4)), _map_on(slice(18, 22)), _map_on(slice(0, 4))]  # "right" is sent left: a loss
    ranked = tiles(photos, maps, "1:1")
    assert [t.photo.name for t in ranked] == ["right", "middle", "left"]
    assert (ranked[0].model_kept, ranked[0].centre_kept) == (0.0, 1.0)  # the centre's 300 px window has x=330
    assert (ranked[-1].model_kept, ranked[-1].centre_kept) == (1.0, 0.0)
    assert ranked[1].model_kept == ranked[1].centre_kept == 1.0
    image = sheet(ranked, "1:1", "test", per_row=2)
    assert image.size == (2 * TILE[0], 28 + 2 * (TILE[1] + 18))


def test_sheets_never_overwrite(tmp_path):
    sets = {"s": [_photo(tmp_path, "a", 20.0)]}
    maps = {"s": [_map_on(slice(0, 4))]}
    written = write_sheets(sets, maps, tmp_path / "out", per_row=1)
    assert [p.name for p in written] == ["s_16x9.png", "s_1x1.png", "s_4x5.png", "s_9x16.png"]
    before = written[0].read_bytes()
    with pytest.raises(FileExistsError):
        write_sheets(sets, maps, tmp_path / "out", per_row=1)
    assert written[0].read_bytes() == before


@pytest.mark.shared
def test_gallery_command_on_the_validation_sets(tmp_path, shared):
    out = tmp_path / "gallery"
    command = [sys.executable, "-m", "converters.gallery", "--shared", str(shared), "--out", str(out)]
    proc = subprocess.run([*command, "--limit", "6", "--per-row", "2"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == f"wrote 12 sheets to {out}\n", proc.stderr
    assert Image.open(out / "eyecrowd_val_9x16.png").size == (2 * TILE[0], 28 + 2 * (TILE[1] + 18))
    again = subprocess.run([*command, "--limit", "6"], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 1
    assert (
        again.stderr == f"converters.gallery: error: {out / 'osie_val_16x9.png'} exists (kept): choose another --out\n"
    )
