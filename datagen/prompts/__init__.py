"""Versioned prompt files for model-backed steps (VLM scorers, captioners, generators).

A prompt is a text file `<name>_v<N>.txt` in this folder. A prompt never changes once a
dataset was built with it: a new wording is a new file with a higher version, and the
scorer that uses it records the file name in its version string, so a score can always be
traced to the exact words that produced it.

File format: `#` lines at the top are comments; `[section]` lines start named sections
(`[user]`, `[assistant]`, `[levels]`, ...); a section's text is kept verbatim except for
leading/trailing blank lines. `{field}` placeholders are filled by `Prompt.render`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PROMPT_DIR = Path(__file__).resolve().parent
_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")
_NAME = re.compile(r"^[a-z0-9_]+_v\d+$")


@dataclass(frozen=True)
class Prompt:
    name: str  # file stem, e.g. "vlm_rubric_v1"; part of every score's provenance
    sections: dict[str, str]

    def section(self, key: str) -> str:
        if key not in self.sections:
            raise KeyError(f"prompt {self.name} has no [{key}] section (has {sorted(self.sections)})")
        return self.sections[key]

    def render(self, key: str, **fields: object) -> str:
        """Fill `{field}` placeholders; a placeholder without a value is a configuration error."""
        text = self.section(key)
        try:
            return text.format(**fields)
        except KeyError as exc:
            raise KeyError(f"prompt {self.name} [{key}] needs field {exc.args[0]!r}") from exc

    def lines(self, key: str) -> list[str]:
        return [ln.strip() for ln in self.section(key).splitlines() if ln.strip()]

    def json(self, key: str) -> object:
        return json.loads(self.section(key))


def parse_prompt(name: str, text: str) -> Prompt:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            current = sections.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"prompt {name}: text before the first [section]: {line!r}")
    return Prompt(name, {k: "\n".join(v).strip("\n") for k, v in sections.items()})


def load_prompt(name: str, folder: str | Path | None = None) -> Prompt:
    """Load `<folder>/<name>.txt` (default: the prompts shipped with UniMontage)."""
    if not _NAME.match(name):
        raise ValueError(f"prompt name {name!r} must look like 'something_v1' (versioned)")
    folder = Path(folder) if folder is not None else PROMPT_DIR
    path = folder / f"{name}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.txt"))
        raise FileNotFoundError(f"prompt file {path.name} not found in {folder} (available: {have})")
    return parse_prompt(name, path.read_text(encoding="utf-8"))
