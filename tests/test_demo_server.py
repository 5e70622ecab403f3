"""A real `edgecrop demo` process on 127.0.0.1 against real HTTP clients: bursts, visitors who leave, slow
uploads, oversized ones; it answers every connection, stays up and keeps its stderr to one line of its own."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgecrop.apps.demo import MAX_CONNECTIONS, MAX_UPLOAD


@pytest.fixture()
def demo():
    """``edgecrop demo --port 0 --read-timeout 2`` in its own process: yields (port, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecrop", "demo", "--port", "0", "--read-timeout", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    line = proc.stderr.readline()
    match = re.fullmatch(r"edgecrop demo on http://127\.0\.0\.1:(\d+)/ \(Ctrl-C to stop\)\n", line)
    assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
    yield int(match[1]), proc
    proc.terminate()
    proc.wait(30)


def _post(port: int, body: bytes, timeout: float = 120) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/api/crop?aspect=1:1", body=body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _rest_of_stderr(proc) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return err


def test_a_burst_of_requests_is_answered_not_dropped(demo, sample_path):
    port, proc = demo
    photo = sample_path.read_bytes()
    with ThreadPoolExecutor(50) as pool:
        statuses = [s for s, _ in pool.map(lambda _: _post(port, photo), range(50))]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= MAX_CONNECTIONS // 2, statuses
    assert _post(port, photo)[0] == 200  # and it is still up
    assert _rest_of_stderr(proc) == "edgecrop: terminated\n"


def test_visitors_who_leave_and_slow_uploads_are_not_errors(demo, sample_path):
    port, proc = demo
    photo = sample_path.read_bytes()
    for _ in range(5):  # leaves before the answer: the server's write meets a closed connection
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /api/crop HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(photo) + photo)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /api/crop HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + photo[:100])
    start = time.monotonic()
    answer = slow.recv(1 << 16)
    assert answer.startswith(b"HTTP/1.0 408") and time.monotonic() - start < 10  # not held open forever
    slow.close()
    big = socket.create_connection(("127.0.0.1", port))
    big.sendall(b"POST /api/crop HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_UPLOAD + 1))
    assert big.recv(1 << 16).startswith(b"HTTP/1.0 413")  # refused unread
    big.close()
    assert _post(port, photo)[0] == 200
    assert _rest_of_stderr(proc) == "edgecrop: terminated\n"  # no traceback for any of it


def png_declaring(width: int, height: int) -> bytes:
    """A small RGB PNG whose header declares ``width`` x ``height`` (its pixels are never reached)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's fields, then its CRC
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_a_photo_over_the_memory_limit_is_refused_quickly(demo):
    port, proc = demo
    start = time.monotonic()
    status, payload = _post(port, png_declaring(12000, 12000))  # 576 MB decoded
    assert status == 422 and "over the memory limit" in payload["error"] and time.monotonic() - start < 10
    assert _rest_of_stderr(proc) == "edgecrop: terminated\n"
