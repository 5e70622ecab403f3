import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecrop.geometry import AspectRatio, Box, largest_window


@pytest.mark.parametrize(
    "text,value", [("16:9", 16 / 9), ("4x5", 0.8), ("9/16", 9 / 16), ("1.5", 1.5), (2.0, 2.0), ("1:1", 1.0)]
)
def test_parse(text, value):
    assert AspectRatio.parse(text).value == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "16:0", "0:9", "abc", "-1", "16:9:1", float("nan")])
def test_parse_rejects(bad):
    with pytest.raises(ValueError):
        AspectRatio.parse(bad)


def test_label_round_trip():
    assert AspectRatio.parse("16:9").label == "16:9"
    assert AspectRatio.parse("2.35:1").label == "2.35:1"


sizes = st.integers(1, 5000)
ratios = st.floats(0.05, 20)


@given(sizes, sizes, ratios)
def test_largest_window_fits_and_is_exact(w, h, r):
    cw, ch = largest_window(w, h, r)
    assert 1 <= cw <= w and 1 <= ch <= h
    # one side spans the image
    assert cw == w or ch == h
    # the computed side is within half a pixel of the exact one (unless clamped to 1 px or the image)
    if ch == h and 1 < cw < w:
        assert abs(cw - h * r) <= 0.5
    if cw == w and 1 < ch < h:
        assert abs(ch - w / r) <= 0.5


@given(sizes, sizes, ratios, st.floats(0.1, 1.0))
def test_scaled_window_not_larger(w, h, r, s):
    cw, ch = largest_window(w, h, r, s)
    fw, fh = largest_window(w, h, r)
    assert cw <= fw and ch <= fh


def test_box_iou():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == 1.0
    assert a.iou(Box(10, 0, 10, 10)) == 0.0
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
