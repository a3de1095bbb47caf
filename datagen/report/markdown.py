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
    """Text from data, safe in a paragraph, list item or table cell: HTML-escaped (Prefect's
    renderer passes some HTML through), markdown punctuation and pipes backslash-escaped,
    newlines flattened."""
    text = html.escape(str(value), quote=False).replace("\n", " ").replace("\r", " ")
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def breakable(value: Any) -> str:
    """`escape`d text with a line-break opportunity after every '/': a long path wraps in the
    UI instead of running off the card (a `<wbr>` is invisible and copies as nothing)."""
    return escape(value).replace("/", "/<wbr>")


def code(value: Any) -> str:
    """An inline code span of `value`, verbatim (entities are not decoded inside code)."""
    text = str(value).replace("\n", " ").replace("\r", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table(header: list[str], rows: list[list[Any]], *, raw: bool = False) -> str:
    """A markdown table; cells are escaped unless `raw` (cells the caller already formatted:
    their pipes are escaped here, as GFM wants even inside code spans). Prefect's UI never
    wraps a table cell: keep tables to short values and put long text in lists."""
    cell = (lambda v: re.sub(r"(?<!\\)\|", r"\\|", str(v)).replace("\n", " ")) if raw else escape
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
