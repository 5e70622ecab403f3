"""`edgecrop demo` in a real browser (Debian's chromium + chromium-driver, driven by Selenium; nothing is
downloaded), and the server's contract: nothing stored, clear messages, survives bad uploads."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edgecrop import Cropper
from edgecrop.apps.demo import MAX_UPLOAD, serve

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def server():
    """The demo on a free port of 127.0.0.1, in this process."""
    cropper = Cropper()
    ready = threading.Event()
    holder = {}

    def started(s):
        holder["server"] = s
        ready.set()

    thread = threading.Thread(target=serve, args=(cropper, "127.0.0.1", 0, started), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield f"http://127.0.0.1:{holder['server'].server_address[1]}"
    holder["server"].shutdown()
    cropper.close()


def post(url: str, data: bytes, query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/api/crop{query}", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_answers_and_refuses_clearly(server, sample_path):
    status, data = post(server, sample_path.read_bytes(), "?aspect=1:1&aspect=3:2&policy=twitter&top_k=3")
    assert status == 200 and (data["width"], data["height"]) == (512, 600)
    assert [c["aspect"] for c in data["crops"]] == ["1:1", "3:2"]
    assert data["notes"][0] == "top_k applies to the saliency policy only, not twitter"
    assert data["photo"].startswith("data:image/jpeg;base64,") and data["heatmap"].startswith("data:image/png")
    assert post(server, b"GIF89a not really")[0] == 422
    status, data = post(server, b"\xff" * 100)
    assert status == 422 and data["error"].startswith("That photo cannot be used")
    assert post(server, sample_path.read_bytes(), "?aspect=0:1")[0] == 400
    request = urllib.request.Request(f"{server}/api/crop", data=b"x", method="POST")
    request.add_header("Content-Length", str(MAX_UPLOAD + 1))
    with pytest.raises(urllib.error.HTTPError) as too_big:
        urllib.request.urlopen(request, timeout=30)
    assert too_big.value.code == 413
    assert post(server, sample_path.read_bytes())[0] == 200  # still serving after all that


def test_fewer_alternatives_are_explained_and_extreme_shapes_served(server):
    from PIL import Image

    for size in ((10000, 1), (1, 10000), (400, 300)):
        buf = io.BytesIO()
        Image.new("RGB", size, (30, 90, 200)).save(buf, "PNG")
        status, data = post(server, buf.getvalue(), "?aspect=1:1&aspect=16:9&top_k=3")
        assert status == 200, data
        counts = {a: sum(c["aspect"] == a for c in data["crops"]) for a in ("1:1", "16:9")}
        short = [f"{a}: {n} of 3 crops" for a, n in counts.items() if n < 3]
        assert [n.split(";")[0] for n in data["notes"]] == short, (size, data["notes"])
    assert short == ["1:1: 1 of 3 crops", "16:9: 1 of 3 crops"]  # 400 x 300: any other window overlaps by 0.5+


def test_exif_orientation_is_honoured(server, tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 300 wide, shown 200 wide
    path = tmp_path / "sideways.jpg"
    Image.new("RGB", (300, 200), (20, 200, 20)).save(path, exif=exif.tobytes())
    status, data = post(server, path.read_bytes())
    assert status == 200 and (data["width"], data["height"]) == (200, 300)


def _browser(profile: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1300,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _screenshot(driver, path: Path) -> None:
    """The page as a PNG of 192 colours (the README's picture: EDGECROP_SCREENSHOT=docs/demo.png)."""
    from PIL import Image

    png = io.BytesIO(driver.get_screenshot_as_png())
    Image.open(png).convert("RGB").quantize(colors=192).save(path, optimize=True)


def _listing(folder: Path) -> set[str]:
    """Every file below ``folder`` (not .git or .cache, which hold this project's tools' caches)."""
    out: set[str] = set()
    for root, dirs, files in os.walk(folder, onerror=lambda exc: None):
        dirs[:] = [d for d in dirs if d not in (".git", ".cache")]
        out.update(os.path.join(root, f) for f in files)
    return out


def test_page_in_a_real_browser(server, sample_path, tmp_path):
    pytest.importorskip("selenium", reason="needs selenium (the dev extra)")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = Path(tempfile.mkdtemp(prefix="edgecrop-chromium-"))
    driver = _browser(profile)
    watched = [Path(tempfile.gettempdir()), Path.cwd()]
    before = [{p for p in _listing(f) if not p.startswith(str(profile))} for f in watched]
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(server)
        # before the first photo: no empty picture frames (broken-image icons), only the controls
        assert not any(driver.find_element(By.ID, i).is_displayed() for i in ("photo", "heat"))
        driver.find_element(By.ID, "file").send_keys(str(sample_path))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stage .box")) == 4)
        wait.until(lambda d: d.find_element(By.ID, "heat").get_attribute("src").startswith("data:image/png"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#crops canvas")) == 4
        assert "inference" in driver.find_element(By.ID, "timings").text

        def square_box():
            return driver.execute_script(
                "const b = document.querySelector('.box[data-aspect=\"1:1\"]');"
                "const p = document.getElementById('photo').getBoundingClientRect(), r = b.getBoundingClientRect();"
                "return [r.left - p.left, r.top - p.top, r.width, r.height, p.width, p.height];"
            )

        x, y, w, h, pw, ph = square_box()
        # a point of the photo far from the current 1:1 crop: below it, or above it
        target = (pw / 2, (y + h + ph) / 2) if ph - (y + h) > y else (pw / 2, y / 2)
        photo = driver.find_element(By.ID, "photo")
        ActionChains(driver).move_to_element_with_offset(
            photo, target[0] - pw / 2, target[1] - ph / 2
        ).click().perform()
        wait.until(lambda d: d.find_element(By.ID, "focus").is_displayed())
        wait.until(lambda d: square_box()[:4] != [x, y, w, h])
        x2, y2, w2, h2, _, _ = square_box()
        assert x2 - 1 <= target[0] <= x2 + w2 + 1 and y2 - 1 <= target[1] <= y2 + h2 + 1  # the crop took the point in
        _screenshot(driver, Path(os.environ.get("EDGECROP_SCREENSHOT", tmp_path / "demo.png")))

        bad = tmp_path / "corrupt.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a photo")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        wait.until(lambda d: "cannot be used" in d.find_element(By.ID, "message").text)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    time.sleep(0.5)
    after = [{p for p in _listing(f) if not p.startswith(str(profile))} for f in watched]
    new = [a - b for a, b in zip(after, before)]
    # not the demo's: pytest's and Chromium's own, and TensorFlow's autograph files from any training
    # running beside the tests (the SDK never imports TensorFlow)
    others = ("pytest-of", ".org.chromium", "__autograph_generated_file")
    new[0] = {p for p in new[0] if not p.startswith(str(tmp_path)) and not any(o in p for o in others)}
    assert new == [set(), set()], f"the demo left files behind: {new}"
