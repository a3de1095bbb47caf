"""What of an address may be written down: lineage, configs, cards, logs and reject details
hold `redact(url)`, never a password or a query string.

    redact("https://bob:pw@gen.example:8443/v1/run?key=abc#x")  ->  "https://gen.example:8443/v1/run"
    origin("https://gen.example/v1")                            ->  "https://gen.example:443"

Addresses that reach a record (a config field, a source URI) must not carry credentials at
all: `refuse_credentials` says where they go instead. Paths are kept as they are: a secret
in a path cannot be told from a name, so keys belong in headers (see `http_client`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL inside free text (an exception message): scheme://, then anything up to a space or quote.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
_LEADING_USERINFO = re.compile(r"^[^/@\s]*@")
_SHORTEST_SECRET = 4  # shorter values would blank out ordinary words


def _split(url: str):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        return parts
    except ValueError:
        return None


def redact(url: str) -> str:
    """`url` without user:password@, ?query and #fragment: safe to store and show."""
    url = str(url)
    if "://" not in url:  # a path, a "diffusers:..." spec, or a mistyped "user:pw@host"
        return _LEADING_USERINFO.sub("", url.split("?", 1)[0].split("#", 1)[0])
    parts = _split(url)
    if parts is None:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def origin(url: str) -> str:
    """scheme://host:port with the default port spelled out: what credentials are keyed by."""
    parts = _split(url)
    if parts is None or not parts.hostname:
        raise ValueError(f"{redact(url)} has no host")
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme)
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def has_credentials(url: str) -> bool:
    parts = _split(url)
    return parts is not None and (parts.username is not None or parts.password is not None)


def refuse_credentials(url: str, what: str, *, query: bool = False, where: str = "") -> None:
    """ValueError when `url` carries user:password@ (or, with `query=True`, a query string or
    fragment): `what` names the parameter, `where` says where credentials go instead. The
    message shows the redacted address only."""
    parts = _split(url)
    if parts is None:
        raise ValueError(f"{what}: not a valid URL")
    instead = f"; {where}" if where else ""
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} {redact(url)}: user:password@ in the address would be stored in lineage, cards "
                         f"and logs; remove it{instead}")
    if query and (parts.query or parts.fragment):
        raise ValueError(f"{what} {redact(url)}: a ?query or #fragment would be stored in lineage, cards and logs "
                         f"(and often holds a key); remove it{instead}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL redacted and every known secret value replaced by ***."""
    out = _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), str(text))
    for secret in sorted({s for s in secrets if s and len(s) >= _SHORTEST_SECRET}, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out
