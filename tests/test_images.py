"""Every way a photo can arrive, every Pillow mode, EXIF orientation, and broken inputs."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from edgecrop.images import ImageError, load_image


def _marked(w=60, h=40) -> Image.Image:
    """An RGB image whose top-left quadrant is red, so orientation can be checked."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    return Image.fromarray(a)


# What EXIF orientation n does to the stored picture; exif_transpose must undo it.
_STORE = {
    1: [],
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation):
    stored = _marked()
    for op in _STORE[orientation]:
        stored = stored.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    loaded = load_image(buf.getvalue())
    assert (loaded.width, loaded.height) == (60, 40)
    assert loaded.rgb.size == (60, 40)
    r, g, b = loaded.rgb.getpixel((5, 5))
    assert r > 200 and g < 60  # top-left is red again


def _roundtrip(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgba_composited_on_background():
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    loaded = load_image(_roundtrip(img), background=(0, 0, 255))
    assert loaded.rgb.mode == "RGB" and loaded.rgb.getpixel((0, 0)) == (0, 0, 255)


def test_la_and_palette_transparency():
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(_roundtrip(la)).rgb.getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 1
    assert load_image(_roundtrip(p)).rgb.getpixel((0, 0)) == (255, 255, 255)
    p.info.pop("transparency")
    assert load_image(_roundtrip(p)).rgb.getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    "img,expected",
    [
        (Image.new("L", (4, 4), 100), (100, 100, 100)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.fromarray(np.full((4, 4), 65535, np.uint16)), (255, 255, 255)),
        (Image.fromarray(np.full((4, 4), 32768, np.uint16)), (128, 128, 128)),
        (Image.new("I", (4, 4), 200), (200, 200, 200)),
        (Image.new("F", (4, 4), 0.5), (128, 128, 128)),
    ],
)
def test_modes(img, expected):
    loaded = load_image(img)
    assert loaded.rgb.mode == "RGB"
    assert loaded.rgb.getpixel((1, 1)) == expected


def test_sixteen_bit_png_file():
    data = _roundtrip(Image.fromarray(np.full((4, 4), 65535, np.uint16)))
    assert load_image(data).rgb.getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, _ = load_image(buf.getvalue()).rgb.getpixel((2, 2))
    assert r > 200 and g < 50


def test_large_jpeg_decoded_reduced_but_full_size_reported():
    big = Image.new("RGB", (4000, 3000), (10, 20, 30))
    loaded = load_image(_roundtrip(big, "JPEG"), min_size=(256, 256))
    assert (loaded.width, loaded.height) == (4000, 3000)
    assert loaded.rgb.size == (500, 375)  # DCT scaling by 1/8, still >= 256 on both sides


def test_sources(tmp_path, sample_path):
    data = sample_path.read_bytes()
    sizes = {
        load_image(sample_path).rgb.size,
        load_image(str(sample_path)).rgb.size,
        load_image(data).rgb.size,
        load_image(io.BytesIO(data)).rgb.size,
        load_image(Image.open(sample_path)).rgb.size,
        load_image(np.asarray(Image.open(sample_path))).rgb.size,
    }
    assert sizes == {(512, 600)}


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((5, 6), np.uint8),
        np.zeros((5, 6, 1), np.uint8),
        np.zeros((5, 6, 4), np.uint8),
        np.zeros((5, 6, 3), np.uint16),
        np.zeros((5, 6, 3), np.float32),
        np.zeros((5, 6), bool),
    ],
)
def test_arrays(array):
    loaded = load_image(array)
    assert loaded.rgb.mode == "RGB" and (loaded.width, loaded.height) == (6, 5)


@pytest.mark.parametrize(
    "array", [np.zeros((5,)), np.zeros((5, 6, 2)), np.zeros((0, 6, 3)), np.zeros((4, 4), np.int64)]
)
def test_bad_arrays(array):
    with pytest.raises(ImageError):
        load_image(array)


def test_infinite_and_missing_values_are_extremes_and_silent():
    """inf is the brightest value, -inf and NaN the darkest; no overflow warning reaches the caller."""
    values = [np.inf, -np.inf, np.nan, 0.5, 1e300, -1e300]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        floats = np.asarray(load_image(np.array([values])).rgb)[0, :, 0]
        grey = Image.fromarray(np.array([[np.inf, -np.inf, np.nan, 100.0, 1000.0, 0.0]], np.float32))
        scaled = np.asarray(load_image(grey).rgb)[0, :, 0]
    assert floats.tolist() == [255, 0, 0, 128, 255, 0]
    assert scaled.tolist() == [255, 0, 0, 26, 255, 0]  # by the largest finite value


@pytest.mark.parametrize("source", [5, None, memoryview(b"ab"), object()])
def test_what_is_no_image_source_is_named_by_its_type(source):
    with pytest.raises(ImageError, match=f"<{type(source).__name__}>: not an image source"):
        load_image(source)


def test_bad_inputs_name_the_file(tmp_path, sample_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not an image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(sample_path.read_bytes()[:3000])
    for path, words in [
        (empty, "empty"),
        (text, "not an image"),
        (truncated, "cannot decode"),
        (tmp_path / "missing.jpg", "no such file"),
        (tmp_path, "not a regular file"),
    ]:
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert str(path) in str(info.value) and words in str(info.value)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_corrupt_bytes_inside_jpeg(sample_path):
    data = bytearray(sample_path.read_bytes())
    data[200:4000] = b"\x00" * 3800
    try:  # Pillow may decode garbage pixels: then a whole, upright picture; else this image's error
        loaded = load_image(bytes(data))
    except ImageError as exc:
        assert "cannot decode" in str(exc) or "not an image" in str(exc)
    else:
        assert loaded.rgb.mode == "RGB" and (loaded.width, loaded.height) == (512, 600)
    with pytest.raises(ImageError, match="cannot decode"):  # cut in the middle of the scan
        load_image(sample_path.read_bytes()[: len(data) // 2])


def test_decompression_bomb_refused():
    big = _roundtrip(Image.new("L", (2000, 2000)))
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(big, max_pixels=1_000_000)


def test_callers_pil_image_not_drafted():
    big = Image.open(io.BytesIO(_roundtrip(Image.new("RGB", (2000, 1500)), "JPEG")))
    loaded = load_image(big, min_size=(256, 256))
    assert big.size == (2000, 1500) and loaded.rgb.size == (2000, 1500)


def test_a_size_rule_sees_the_upright_photo():
    # a portrait photo stored landscape with EXIF orientation 6: the rule is asked about 768x1024
    img = Image.new("RGB", (1024, 768), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    asked = []

    def rule(width, height):
        asked.append((width, height))
        return width // 4, height // 4

    loaded = load_image(buf.getvalue(), min_size=rule)
    assert asked == [(768, 1024)] and loaded.rgb.size == (192, 256) and (loaded.width, loaded.height) == (768, 1024)


def test_pixel_limit_is_decided_the_same_beside_other_threads(tmp_path):
    """The limit is edgecrop's own check of the declared size, not a process-wide warning filter: two threads
    loading a 169-megapixel picture (under the 179 MP limit) meet the same outcome every time."""
    import struct
    import threading
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 13000, 13000, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b"")
    )
    path = tmp_path / "declares_169mp.png"
    path.write_bytes(png)
    outcomes: list[str] = []

    def job() -> None:
        for _ in range(5):
            try:
                load_image(path, min_size=(256, 256))
                outcomes.append("loaded")
            except ImageError as exc:
                outcomes.append("too many pixels" if "too many pixels" in str(exc) else "truncated")

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["truncated"] * 10  # accepted by the limit, then found truncated: never refused by chance
