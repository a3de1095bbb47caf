"""Hostile HTTP backends: a misbehaving server on 127.0.0.1 that drips, floods, redirects to
another origin and echoes secrets in its error bodies. The client must keep its deadline and
its size cap, never carry a credential to another server, and never let a secret reach a
failure detail, a reject row, a lineage record or a card."""

import base64
import json
import pickle
import socketserver
import threading
import time
import tracemalloc

import numpy as np
import pytest

from datagen.backends import http_client
from datagen.backends.http_client import HTTPFailure, credential_headers
from datagen.backends.urls import origin, redact, scrub
from datagen.images import encode_png
from datagen.rng import sample_rng
from datagen.storyboard.config import StoryboardConfig
from datagen.storyboard.from_generator import storyboard_from_generator
from datagen.storyboard.generators import GenerationFailed, HTTPGenerator, generator_kind

TOKEN = "sk-live-0123456789abcdef"  # what the client sends and must never write down
SERVER_SECRET = "db-password-hunter2-XYZ"  # what the server blurts out in its error bodies
MiB = 1 << 20


class Hostile(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent: dict[str, int] = {}  # path -> bytes written before the client hung up
        self.redirect_to = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode("latin-1").split()
        if len(line) < 2:
            return
        headers = {}
        while (h := self.rfile.readline().decode("latin-1").strip()):
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = self.rfile.read(int(headers.get("content-length", 0)))
        path = line[1].split("?")[0]
        self.server.requests.append((path, headers))
        try:
            getattr(self, "do_" + path.strip("/").replace("-", "_"), self.do_ok)(body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _head(self, status: str, fields: dict[str, str]) -> None:
        text = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.wfile.write(text.encode())

    def _count(self, n: int) -> None:
        path = self.server.requests[-1][0]
        self.server.sent[path] = self.server.sent.get(path, 0) + n

    def do_ok(self, body, headers):
        req = json.loads(body or b"{}")
        png = encode_png(np.full((req.get("height", 8), req.get("width", 8), 3), 77, np.uint8))
        data = json.dumps({"image": base64.b64encode(png).decode()}).encode()
        self._head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(data))})
        self.wfile.write(data)

    def do_drip_body(self, body, headers):
        self._head("200 OK", {"Content-Type": "image/png", "Content-Length": "1000"})
        for _ in range(1000):  # one byte every 0.25 s: a 1 s per-read timeout never fires
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.25)

    def do_drip_head(self, body, headers):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Slow: " + b"y" * 1000:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.25)

    def _flood(self, fields):
        self._head("200 OK", {"Content-Type": "image/png", **fields})
        chunk = b"\0" * MiB
        for _ in range(400):  # 400 MiB
            self.wfile.write(chunk)
            self._count(len(chunk))

    def do_huge_declared(self, body, headers):
        self._flood({"Content-Length": str(400 * MiB)})

    def do_huge_stream(self, body, headers):
        self._flood({"Connection": "close"})  # no length: the body ends when the server closes

    def do_redirect(self, body, headers):
        self._head("307 Temporary Redirect", {"Location": self.server.redirect_to + "/steal?token=abc",
                                              "Content-Length": "0"})

    def do_error_echo(self, body, headers):
        # What real servers do: echo the request (key included) and leak their own state.
        data = f"bad request {headers} (internal: {SERVER_SECRET})".encode()
        self._head(f"500 {SERVER_SECRET}", {"Content-Type": "text/plain", "Content-Length": str(len(data))})
        self.wfile.write(data)

    def do_json_error(self, body, headers):
        data = json.dumps({"error": f"key {headers.get('authorization')} refused; {SERVER_SECRET}"}).encode()
        self._head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(data))})
        self.wfile.write(data)


@pytest.fixture
def hostile():
    servers = []

    def start() -> Hostile:
        srv = Hostile()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    """Credentials the way a deployment gives them: a file named by the environment, per origin."""

    def write(*origins: str):
        path = tmp_path / "headers.json"
        path.write_text(json.dumps({o: {"Authorization": f"Bearer {TOKEN}"} for o in origins}))
        monkeypatch.setenv(http_client.HEADERS_FILE_ENV, str(path))
        monkeypatch.delenv(http_client.HEADERS_ENV, raising=False)
        return path

    return write


def _fails(reason: str, call, *args, **kwargs) -> HTTPFailure:
    with pytest.raises(HTTPFailure) as err:
        call(*args, **kwargs)
    assert err.value.reason == reason, err.value
    return err.value


# --------------------------------------------------------------------------- deadline
@pytest.mark.parametrize("path", ["/drip-body", "/drip-head"])
def test_a_dripping_server_cannot_stretch_the_deadline(hostile, path):
    srv = hostile()
    t0 = time.monotonic()
    err = _fails("timeout", http_client.post, srv.url + path, b"{}", deadline_s=1.0)
    elapsed = time.monotonic() - t0
    # The whole answer would take 250 s at this rate; every read got only what was left of 1 s.
    assert 0.9 <= elapsed < 2.5, elapsed
    assert "within 1 s" in err.detail


def test_the_generator_deadline_is_total(hostile):
    srv = hostile()
    gen = HTTPGenerator(srv.url + "/drip-body", timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(GenerationFailed) as err:
        gen.generate("x", seed=0, width=8, height=8, references=[])
    assert err.value.reason == "generator_timeout" and time.monotonic() - t0 < 2.5


# --------------------------------------------------------------------------- size cap
@pytest.mark.parametrize("path", ["/huge-declared", "/huge-stream"])
def test_a_huge_answer_is_refused_while_it_streams(hostile, path):
    srv = hostile()
    tracemalloc.start()
    try:
        err = _fails("too_large", http_client.post, srv.url + path, b"{}", max_bytes=2 * MiB, deadline_s=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{2 * MiB:,}" in err.detail
    # 400 MiB offered; the client held about the cap, never the body.
    assert peak < 6 * MiB, peak


def test_the_generator_caps_the_answer(hostile):
    srv = hostile()
    with pytest.raises(GenerationFailed) as err:
        HTTPGenerator(srv.url + "/huge-stream", max_bytes=MiB).generate("x", seed=0, width=8, height=8, references=[])
    assert err.value.reason == "generator_too_large"


# --------------------------------------------------------------------------- redirects and credentials
def test_no_redirect_is_followed_and_the_key_stays_home(hostile, key_file):
    home, elsewhere = hostile(), hostile()
    home.redirect_to = elsewhere.url
    key_file(home.url)
    gen = HTTPGenerator(home.url + "/redirect")
    with pytest.raises(GenerationFailed) as err:
        gen.generate("x", seed=0, width=8, height=8, references=[])
    assert err.value.reason == "generator_redirect"
    assert elsewhere.requests == []  # the other origin never heard from us, key or not
    assert home.requests[0][1]["authorization"] == f"Bearer {TOKEN}"  # the key did go to its own origin
    assert origin(elsewhere.url) in err.value.detail and "token" not in err.value.detail
    assert TOKEN not in str(err.value)


def test_keys_are_sent_only_to_the_origin_they_are_keyed_to(hostile, key_file, monkeypatch):
    mine, other = hostile(), hostile()
    key_file(mine.url)
    for srv in (mine, other):
        img = HTTPGenerator(srv.url + "/ok").generate("x", seed=0, width=32, height=24, references=[])
        assert img.shape == (24, 32, 3) and img[0, 0, 0] == 77
    assert mine.requests[0][1]["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in other.requests[0][1]
    gen = HTTPGenerator(mine.url + "/ok")
    gen.setup()
    assert TOKEN.encode() not in pickle.dumps(gen)  # a generator shipped to a worker carries no key
    # The environment form, and a header given in code wins over both.
    monkeypatch.setenv(http_client.HEADERS_ENV, json.dumps({other.url + "/": {"X-Api-Key": "k-env-123"}}))
    assert credential_headers(other.url + "/ok") == {"X-Api-Key": "k-env-123"}
    HTTPGenerator(other.url + "/ok", headers={"X-Api-Key": "k-code"}).generate("x", seed=0, width=32, height=32,
                                                                                 references=[])
    assert other.requests[-1][1]["x-api-key"] == "k-code"


def test_bad_credential_sources_fail_without_showing_a_value(tmp_path, monkeypatch):
    monkeypatch.setenv(http_client.HEADERS_ENV, '{"https://h": {"Authorization": "Bearer sk-1\\r\\nX: y"}}')
    with pytest.raises(ValueError, match="line break") as err:
        credential_headers("https://h/x")
    assert "sk-1" not in str(err.value)
    monkeypatch.setenv(http_client.HEADERS_ENV, "Authorization: Bearer sk-2")
    with pytest.raises(ValueError, match="not JSON") as err:
        credential_headers("https://h/x")
    assert "sk-2" not in str(err.value)
    with pytest.raises(ValueError, match="cannot read"):
        credential_headers("https://h/x", headers_file=tmp_path / "missing.json")


# --------------------------------------------------------------------------- no secret in any record
@pytest.mark.parametrize("path, reason", [("/error-echo", "generator_http_error"),
                                          ("/json-error", "generator_bad_response")])
def test_error_bodies_never_reach_a_reject(hostile, key_file, path, reason):
    srv = hostile()
    key_file(srv.url)
    config = StoryboardConfig(generator=srv.url + path, width=16, height=16)
    samples, rejects = storyboard_from_generator(config, sample_rng(0, 0), HTTPGenerator(srv.url + path))
    assert samples == [] and [r.reason for r in rejects] == [reason]
    text = json.dumps([rejects[0].detail, rejects[0].source, rejects[0].meta])
    assert TOKEN not in text and SERVER_SECRET not in text and "hunter2" not in text
    if reason == "generator_http_error":
        assert "HTTP 500 Internal Server Error" in rejects[0].detail  # the standard phrase, not the server's


def test_credentials_in_the_url_are_refused_and_never_echoed():
    secret_urls = ["http://bob:hunter2@127.0.0.1:9/x", "https://127.0.0.1:9/x?api_key=hunter2",
                   "https://127.0.0.1:9/x#hunter2"]
    for url in secret_urls:
        with pytest.raises(ValueError) as err:
            StoryboardConfig(generator=url)
        assert "hunter2" not in str(err.value) and http_client.HEADERS_FILE_ENV in str(err.value)
        with pytest.raises(ValueError):
            generator_kind(url)
    with pytest.raises(ValueError) as err:
        generator_kind("htp://bob:hunter2@host/x")  # a typo'd scheme is echoed redacted too
    assert "hunter2" not in str(err.value)
    # Built directly (another product's code): the tag names host and port only, setup refuses.
    gen = HTTPGenerator("http://bob:hunter2@127.0.0.1:9/x?key=hunter2")
    assert gen.tag == "http@1+127.0.0.1:9"
    with pytest.raises(ValueError) as err:
        gen.setup()
    assert "hunter2" not in str(err.value)


def test_redact_and_scrub():
    assert redact("https://bob:pw@Gen.example:8443/v1/run?key=abc#x") == "https://gen.example:8443/v1/run"
    assert redact("s3://AKIA:secret@bucket/clips?region=x") == "s3://bucket/clips"
    assert redact("bob:pw@host:8000") == "host:8000" and redact("/data/videos") == "/data/videos"
    assert origin("https://gen.example/v1") == "https://gen.example:443" == origin("HTTPS://GEN.example:443")
    text = scrub(f"GET http://u:p@h/x?token=t1 failed, header was Bearer {TOKEN}", [f"Bearer {TOKEN}", TOKEN])
    assert text == "GET http://h/x failed, header was ***"


def test_an_unreachable_backend_is_a_clean_failure():
    err = _fails("unreachable", http_client.post, "http://127.0.0.1:1/x", b"{}", deadline_s=5)
    assert "127.0.0.1:1" in err.detail


def test_a_run_against_a_leaky_backend_stores_no_secret(ray_local, hostile, tmp_path):
    """The whole path: Ray workers, reject rows in Lance, the lineage record and the card."""
    import lance

    from compute import harness
    from datagen.store import lineage
    from flows.card import render_card

    srv = hostile()
    spec = harness.plan_run("storyboard", out=str(tmp_path / "gen.lance"), seed=0, generator=srv.url + "/error-echo",
                            num=2, faces=False, width=16, height=16)
    res = harness.execute(spec, workers=1, progress=False)
    assert res.rows == 0 and res.rejects == 2
    rows = lance.dataset(res.rejects_uri).to_table().to_pylist()
    assert {r["reason"] for r in rows} == {"generator_http_error"}
    stored = json.dumps(rows, default=str) + json.dumps(lineage.dataset_node(res.uri), default=str)
    stored += render_card(f"{res.uri}@{res.version}", thumbnails=False)
    assert "HTTP 500" in stored and SERVER_SECRET not in stored and "hunter2" not in stored
