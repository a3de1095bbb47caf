"""The one HTTP client of the data layer, for servers we do not trust to behave.

    answer = post(url, body, headers=credential_headers(url), deadline_s=120, max_bytes=64 << 20)

Every rule answers a way a server (or whoever sits in front of it) can hurt a long run:
- **one total deadline**: name lookup, connect, TLS handshake, sending and every read of
  the answer share it; each socket operation gets only what is left, so a server dripping
  a byte every half second cannot stretch a call past `deadline_s`;
- **a size cap**: an answer that declares more than `max_bytes`, or sends more, is refused
  while it streams, never read whole; nothing is decompressed (`Accept-Encoding: identity`);
- **no redirects**: a 3xx is a failure naming only the target's origin; credentials are
  never sent anywhere but the origin they are keyed to;
- **credentials from headers, never from the URL**: given in code or per origin in the
  environment (`UNIMONTAGE_HTTP_HEADERS`, JSON) or a file (`UNIMONTAGE_HTTP_HEADERS_FILE`):
      {"https://gen.example:443": {"Authorization": "Bearer ..."}}
  A URL with user:password@ is refused;
- **nothing secret in what it reports**: a failure carries the status and its standard
  phrase, never the body (error bodies echo requests, keys included); URLs in any text are
  redacted and header values scrubbed.
Failures raise `HTTPFailure(reason, detail)`; reasons: timeout, too_large, redirect,
http_error, unreachable, bad_response. Nothing is retried here: the caller owns retries.
"""

from __future__ import annotations

import http
import http.client
import io
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from datagen.backends.urls import origin, redact, refuse_credentials, scrub

HEADERS_ENV = "UNIMONTAGE_HTTP_HEADERS"
HEADERS_FILE_ENV = "UNIMONTAGE_HTTP_HEADERS_FILE"
DEFAULT_DEADLINE_S = 120.0
DEFAULT_MAX_BYTES = 64 << 20  # a 4096x4096 PNG in base64 JSON fits; a 400 MiB body does not
READ_CHUNK = 64 << 10
CREDENTIALS_HELP = (f"send keys as headers: per origin in ${HEADERS_FILE_ENV} (a JSON file) or ${HEADERS_ENV}, "
                    'e.g. {"https://host:443": {"Authorization": "Bearer ..."}}')


class HTTPFailure(Exception):
    """One request that gave no usable answer; `detail` is safe to store."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


# --------------------------------------------------------------------------- credentials
def credential_headers(url: str, *, headers_file: str | Path | None = None,
                       env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers for `url`'s origin from `headers_file` (or the file named by
    $UNIMONTAGE_HTTP_HEADERS_FILE), then $UNIMONTAGE_HTTP_HEADERS (later wins). Errors name
    the variable or file, never a value."""
    env = os.environ if env is None else env
    key = origin(url)
    found: dict[str, str] = {}
    path = headers_file or env.get(HEADERS_FILE_ENV)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"HTTP headers file {path}: cannot read it ({type(exc).__name__})") from None
        found.update(_headers_for(key, text, f"HTTP headers file {path}"))
    if env.get(HEADERS_ENV):
        found.update(_headers_for(key, env[HEADERS_ENV], f"${HEADERS_ENV}"))
    return found


def _headers_for(key: str, text: str, where: str) -> dict[str, str]:
    try:
        table = json.loads(text)
    except ValueError:
        raise ValueError(f"{where} is not JSON; expected {{origin: {{header: value}}}}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected {{origin: {{header: value}}}}")
    out: dict[str, str] = {}
    for raw_origin, headers in table.items():
        try:
            same = origin(str(raw_origin)) == key
        except ValueError:
            raise ValueError(f"{where}: {redact(str(raw_origin))!r} is not an origin like https://host:443") from None
        if not same:
            continue
        texts = isinstance(headers, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        if not texts:
            raise ValueError(f"{where}: the entry for {key} must map header names to text")
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"{where}: header {name.strip()!r} for {key} holds a line break")
            out[name] = value
    return out


def secrets_of(headers: Mapping[str, str]) -> list[str]:
    """Header values and their long words (the token of "Bearer <token>"): what `scrub` hides."""
    out = []
    for value in headers.values():
        out.append(value)
        out += [w for w in value.split() if len(w) >= 8]
    return out


def check_url(url: str, what: str = "URL") -> None:
    """ValueError for anything but http(s)://host... without user:password@."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must start with http:// or https:// and name a host, got {redact(str(url))!r}")
    refuse_credentials(url, what, where=CREDENTIALS_HELP)


# --------------------------------------------------------------------------- request
def post(url: str, body: bytes, *, headers: Mapping[str, str] | None = None,
         deadline_s: float = DEFAULT_DEADLINE_S, max_bytes: int = DEFAULT_MAX_BYTES) -> Response:
    """POST `body` and return the 2xx answer, within `deadline_s` and `max_bytes`."""
    return request("POST", url, body, headers=headers, deadline_s=deadline_s, max_bytes=max_bytes)


def request(method: str, url: str, body: bytes | None = None, *, headers: Mapping[str, str] | None = None,
            deadline_s: float = DEFAULT_DEADLINE_S, max_bytes: int = DEFAULT_MAX_BYTES) -> Response:
    check_url(url)
    if not deadline_s > 0 or max_bytes < 0:
        raise ValueError(f"deadline_s must be > 0 and max_bytes >= 0, got {deadline_s}, {max_bytes}")
    headers = dict(headers or {})
    secrets = secrets_of(headers)
    deadline = time.monotonic() + deadline_s
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = _Connection(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                       parts.scheme == "https", deadline)
    resp = None
    try:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return _answer(resp, url, max_bytes)
    except HTTPFailure:
        raise
    except TimeoutError:
        raise HTTPFailure("timeout", f"no complete answer from {redact(url)} within {deadline_s:g} s") from None
    except (http.client.HTTPException, ValueError) as exc:
        raise HTTPFailure("bad_response", scrub(f"{redact(url)}: {type(exc).__name__}: {exc}", secrets)) from None
    except OSError as exc:
        raise HTTPFailure("unreachable", scrub(f"{redact(url)}: {type(exc).__name__}: {exc}", secrets)) from None
    finally:
        if resp is not None:
            resp.close()
        conn.close()


def _answer(resp: http.client.HTTPResponse, url: str, max_bytes: int) -> Response:
    status = resp.status
    phrase = _phrase(status)
    if 300 <= status < 400:
        location = resp.getheader("Location") or ""
        to = f" to {origin(urljoin(url, location))}" if location and _has_host(urljoin(url, location)) else ""
        raise HTTPFailure("redirect", f"HTTP {status} {phrase}{to}: redirects are not followed, so no credential "
                                      "reaches another server; give the final URL")
    if not 200 <= status < 300:
        raise HTTPFailure("http_error", f"HTTP {status} {phrase} (the body is not kept: error bodies can echo keys)")
    declared = resp.getheader("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise HTTPFailure("too_large", f"the answer declares {int(declared):,} bytes, above the cap of {max_bytes:,}")
    chunks, total = [], 0
    while chunk := resp.read(READ_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise HTTPFailure("too_large", f"the answer runs past the cap of {max_bytes:,} bytes")
        chunks.append(chunk)
    return Response(status, resp.getheader("Content-Type") or "", b"".join(chunks))


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase  # the standard words, never the server's own
    except ValueError:
        return ""


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False


# --------------------------------------------------------------------------- sockets under one deadline
def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _resolve(host: str, port: int, deadline: float) -> list:
    """getaddrinfo ignores socket timeouts: a slow resolver is waited for on a side thread,
    only until the deadline (the thread ends on its own when the resolver gives up)."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address literal
    box: dict = {}

    def lookup() -> None:
        try:
            box["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["error"] = exc

    worker = threading.Thread(target=lookup, name="http-resolve", daemon=True)
    worker.start()
    worker.join(_remaining(deadline))
    if worker.is_alive():
        raise TimeoutError("name lookup past the deadline")
    if "error" in box:
        raise box["error"]
    return box["addrs"]


def _open_socket(host: str, port: int, deadline: float) -> socket.socket:
    error: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}")


class _DeadlineSocket:
    """The parts of a socket http.client uses, each operation bounded by what is left."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline
        # Like socket.makefile: the response's reader keeps the socket open after the
        # connection lets go of it ("Connection: close" hands the socket to the response).
        self._readers, self._closed = 0, False

    def _arm(self) -> None:
        self._sock.settimeout(_remaining(self._deadline))

    def sendall(self, data) -> None:
        self._arm()
        self._sock.sendall(data)  # the timeout bounds the whole sendall (Python >= 3.5)

    def recv_into(self, buffer) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, tls: bool, deadline: float):
        super().__init__(host, port)
        self._tls, self._deadline = tls, deadline

    def connect(self) -> None:
        sock = _open_socket(self.host, self.port, self._deadline)
        if self._tls:
            try:
                sock.settimeout(_remaining(self._deadline))  # the handshake keeps its own deadline from this
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = _DeadlineSocket(sock, self._deadline)
