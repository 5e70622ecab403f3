"""`edgecrop demo`: a local page to see the heatmap, steer the crop and compare policies.

One static page (demo_page.html) and one JSON endpoint, served by the standard library's HTTP server: the photo is
posted, cropped in memory and answered with the upright photo, the heatmap, the boxes and the stage
timings. Nothing is stored: no upload, map or crop is ever written to disk, and nothing outlives the
request. Binds to 127.0.0.1 unless told otherwise. Uploads over MAX_UPLOAD bytes, and anything that is
not an image, get a clear message; the server survives every bad request.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from .._resources import sample_photo
from ..cropper import DEFAULT_ASPECTS, Cropper
from ..errors import EdgecropError, ImageError, OptionError
from ..search import Boost, SearchOptions, parse_aspects, shortfalls
from .render import colourise, ratio_colours

MAX_UPLOAD = 25 * 1024 * 1024
SHOWN_SIDE = 1200  # the photo is sent back at most this large: a page, not an archive


def _data_url(image: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def crop_request(cropper: Cropper, data: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
    """What the page shows for one photo and one set of choices (all in memory)."""
    aspects = parse_aspects([a for a in query.get("aspect", list(DEFAULT_ASPECTS)) if a])
    boosts = []
    if query.get("focus"):
        x, y = (float(v) for v in query["focus"][0].split(","))
        boosts = [Boost(x, y, weight=4.0)]
    top_k = int(query.get("top_k", ["1"])[0])
    # the page keeps its controls as they are: what the policy does not take is dropped with SearchOptions' reason
    options, notes = SearchOptions.relaxed(policy=query.get("policy", ["saliency"])[0], top_k=top_k, boosts=boosts)
    loaded = cropper.load(data)
    result = cropper.crop(loaded, aspects, options)
    notes += shortfalls(result.crops, options)
    shown = cropper.picture(data, loaded, SHOWN_SIDE)
    heat = Image.fromarray(colourise(result.saliency), "RGB")
    colours = ratio_colours(result.crops)
    return {
        "width": loaded.width,
        "height": loaded.height,
        "photo": _data_url(shown, "JPEG"),
        "heatmap": _data_url(heat, "PNG"),
        "crops": [
            {**c.as_dict(), "colour": "#{:02x}{:02x}{:02x}".format(*colours[c.aspect.label])} for c in result.crops
        ],
        "timings_ms": {k: round(v * 1e3, 2) for k, v in result.timings.as_dict().items()},
        "model": cropper.model.info.name,
        "notes": notes,
    }


def make_handler(cropper: Cropper, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgecrop-demo"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # no access log: the demo keeps nothing about its visitors

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urlsplit(self.path).path
            if path == "/":
                page = resources.files("edgecrop.apps").joinpath("demo_page.html").read_bytes()
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif path == "/sample.jpg":
                self._send(HTTPStatus.OK, sample_photo().read_bytes(), "image/jpeg")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != "/api/crop":
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "no photo was sent"})
                return
            if length > MAX_UPLOAD:
                self.close_connection = True  # do not read what was refused
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"photos up to {MAX_UPLOAD >> 20} MB"})
                return
            data = self.rfile.read(length)
            try:
                with lock:  # one model, one photo at a time: memory stays bounded
                    payload = crop_request(cropper, data, parse_qs(url.query))
            except ImageError as exc:
                self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": f"That photo cannot be used: {exc.reason}"})
                return
            except (OptionError, ValueError, KeyError) as exc:  # a choice on the page the search refuses
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"That choice cannot be used: {exc}"})
                return
            except EdgecropError as exc:
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"The model failed: {exc}"})
                return
            self._json(HTTPStatus.OK, payload)

    return Handler


def serve(cropper: Cropper, host: str = "127.0.0.1", port: int = 7860, ready=None) -> None:
    """Serve until interrupted; ``ready(server)`` is called once it listens (tests, port 0)."""
    server = ThreadingHTTPServer((host, port), make_handler(cropper, threading.Lock()))
    server.daemon_threads = True
    if ready is not None:
        ready(server)
    else:
        print(f"edgecrop demo on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
