"""Markdown pieces every card uses: escaped tables, inline images, artifact keys.

Prefect renders artifacts as GitHub-flavoured markdown with inline `data:` images; text that
comes from data (reject details, file names, instructions) is escaped so it can never break
a table or inject markup into the card.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Any


def escape(value: Any) -> str:
    """Cell text: HTML-escaped, pipes escaped, newlines flattened."""
    text = html.escape(str(value), quote=False)
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def table(header: list[str], rows: list[list[Any]], *, raw: bool = False) -> str:
    """A markdown table; cells are escaped unless `raw` (cells the caller already formatted)."""
    cell = (lambda v: str(v).replace("|", "\\|").replace("\n", " ")) if raw else escape
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def data_uri(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def artifact_key(prefix: str, name: str, location: str | None = None) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes. With `location`, a
    short hash of it keeps two things of the same name in different places apart."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "unnamed"
    if location is None:
        return f"{prefix}-{slug}"
    return f"{prefix}-{slug}-{hashlib.sha256(location.encode()).hexdigest()[:8]}"
