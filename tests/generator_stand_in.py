"""A stand-in image model behind the HTTP protocol of `datagen.storyboard.generators`, for tests.

`serve()` starts it on 127.0.0.1 (a real `http.server`, stopped on exit) and yields its base URL:
- `/` answers an image that depends on the prompt and seed and, when references are sent,
  keeps the first one's structure with new colours (a toy stylist: edges stay, colours change);
- `/echo/<k>` answers reference k unchanged (a model that copies its input);
- `/fail` answers HTTP 500.
Every request is recorded in `requests` as (path, JSON body).
"""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from datagen.images import decode, encode_png

requests: list[tuple[str, dict]] = []


def _toy_stylist(ref: np.ndarray, w: int, h: int, shade: int) -> np.ndarray:
    img = cv2.resize(ref[:, :, :3], (w, h), interpolation=cv2.INTER_AREA)
    levels = (img // 64) * 64 + 32  # posterised: the structure stays, the colours change
    tint = np.array([shade, 255 - shade, (shade * 3) % 256], np.uint16)
    return ((levels.astype(np.uint16) * 3 + tint) // 4).astype(np.uint8)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers whole bodies with their length."""

    def log_message(self, *args):
        pass

    def _send(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Handler(QuietHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        requests.append((self.path, body))
        w, h = body["width"], body["height"]
        refs = [decode(base64.b64decode(r)) for r in body["references"]]
        if self.path == "/fail":
            return self._send(500, "text/plain", b"model crashed")
        if self.path.startswith("/echo/"):
            img = refs[int(self.path.rsplit("/", 1)[1])]
        else:
            shade = (sum(map(ord, body["prompt"])) * 7 + body["seed"]) % 256
            if refs:
                img = _toy_stylist(refs[0], w, h, shade)
            else:
                yy, xx = np.mgrid[0:h, 0:w]
                img = np.dstack([(xx * 255 // max(1, w - 1) + shade) % 256, (yy * 255 // max(1, h - 1)) % 256,
                                 np.full((h, w), shade)]).astype(np.uint8)
        png = encode_png(np.ascontiguousarray(img))
        self._send(200, "application/json", json.dumps({"image": base64.b64encode(png).decode()}).encode())


@contextmanager
def serve():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
