"""`edgecrop demo`: a local page to see the heatmap, steer the crop and compare policies.

One static page (demo_page.html) and one JSON endpoint, served by the standard library's HTTP server: the photo is
posted, cropped in memory and answered with the upright photo, the heatmap, the boxes and the stage
timings. Nothing is stored: no upload, map or crop is ever written to disk, and nothing outlives the
request. Binds to 127.0.0.1 unless told otherwise.

What a request may cost is bounded, and the server stays up whatever visitors do: uploads over MAX_UPLOAD
bytes are refused unread (413); a request must arrive whole within ``read_timeout`` seconds (408); at most
MAX_CONNECTIONS are served at once and the next are answered 503 at once rather than queued or dropped (a
listen backlog of BACKLOG holds a burst); one photo is decoded and cropped at a time, within the Cropper's
pixel and memory limits; a visitor who goes away mid-answer is not an error.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import sys
import threading
import time
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
MAX_CONNECTIONS = 16  # served at once (each holds at most one upload in memory: 16 x 25 MB)
BACKLOG = 128  # connections the kernel holds while all of those are busy
READ_TIMEOUT = 20.0  # seconds for a whole request to arrive


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


def make_handler(cropper: Cropper, lock: threading.Lock, read_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgecrop-demo"
        timeout = read_timeout  # each read of the request line, headers and body (the total is checked too)

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

        def _body(self, length: int) -> bytes | None:
            """The request's body, or None (answered 408) when it does not arrive whole within the timeout."""
            deadline, chunks, got = time.monotonic() + read_timeout, [], 0
            try:
                while got < length and time.monotonic() < deadline:
                    chunk = self.rfile.read1(min(length - got, 1 << 16))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
            except TimeoutError:
                pass
            if got < length:
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": "the photo did not arrive in time"})
                return None
            return b"".join(chunks)

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
            data = self._body(length)
            if data is None:
                return
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


_BUSY_BODY = b'{"error": "busy: please try again in a moment"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them; the next are answered 503 at once (by up to
    BACKLOG short threads, which read what the visitor sent for a moment so that the answer is seen, not
    reset: a burst the backlog held is answered even when the machine is too loaded to finish those
    threads quickly); past both, a connection is closed."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address, handler) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._busy_slots = threading.BoundedSemaphore(BACKLOG)

    def process_request(self, request, client_address) -> None:
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
        elif self._busy_slots.acquire(blocking=False):
            threading.Thread(target=self._busy, args=(request,), daemon=True).start()
        else:
            self.shutdown_request(request)

    def _busy(self, request) -> None:
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and request.recv(1 << 16):
                pass
        except OSError:
            pass
        finally:
            request.close()
            self._busy_slots.release()

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A visitor who went away (a closed tab, a reset) is not an error; anything else is one line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        print(f"edgecrop: demo: a request failed ({type(exc).__name__}: {exc})", file=sys.stderr)


def serve(
    cropper: Cropper, host: str = "127.0.0.1", port: int = 7860, ready=None, read_timeout: float = READ_TIMEOUT
) -> None:
    """Serve until interrupted; ``ready(server)`` is called once it listens (tests, port 0)."""
    server = _Server((host, port), make_handler(cropper, threading.Lock(), read_timeout))
    if ready is not None:
        ready(server)
    else:
        print(f"edgecrop demo on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
