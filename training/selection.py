"""Which rows of a pinned dataset version a stage trains on: a filter on `scores`, and the
review's flags.

    where: "vlm_rating >= 4 and motion > 1.5"     # clauses joined by `and`
    where_missing: drop | keep                    # a row without a named score
    drop_flagged: true                            # rows flagged for this version are left out

The filter is parsed, never evaluated as code. Flags live in `<name>_flags.lance` beside the
dataset (columns sample_id, version, reason; written by the review tool); a flag counts
only for the version it names, and a dataset without a flags table has nothing flagged.
Every row left out is counted by reason, so the card accounts for all of them.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from datagen.store import lance_io

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}
CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.:-]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
FLAG_COLUMNS = ("sample_id", "version", "reason")


@dataclass(frozen=True)
class Clause:
    score: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.score} {self.op} {self.value:g}"

    def test(self, value: float) -> bool:
        return OPS[self.op](value, self.value)


def parse_where(text: str) -> list[Clause]:
    """`"a >= 4 and b < 2"` -> clauses; "" -> []. A clause it cannot read is a ValueError naming it."""
    if not text.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = CLAUSE.match(part)
        if not m:
            raise ValueError(f"where: cannot read {part!r}; write clauses like `vlm_rating >= 4` joined by `and` "
                             f"(operators {', '.join(OPS)})")
        clauses.append(Clause(m.group(1), m.group(2), float(m.group(3))))
    return clauses


def _as_dict(scores: Any) -> dict[str, float]:
    """A stored `scores` map (Arrow gives a list of (key, value) pairs) -> dict."""
    if not scores:
        return {}
    return dict(scores.items() if isinstance(scores, dict) else scores)


def where_reasons(scores: list[Any], clauses: list[Clause], missing: str = "drop") -> np.ndarray:
    """(n,) object array: "" for rows the filter keeps, else why it leaves them out
    (`where:<clause>` failed, `no_score:<name>` when the row lacks it and missing="drop")."""
    reasons = np.full(len(scores), "", dtype=object)
    if not clauses:
        return reasons
    for i, raw in enumerate(scores):
        row = _as_dict(raw)
        for clause in clauses:
            if clause.score not in row:
                if missing == "drop":
                    reasons[i] = f"no_score:{clause.score}"
                    break
                continue
            value = row[clause.score]
            if value is None or not np.isfinite(value) or not clause.test(float(value)):
                reasons[i] = f"where:{clause}"
                break
    return reasons


def flagged_ids(ref: str) -> set[str]:
    """Sample ids flagged for the pinned version `URI@VERSION` (empty without a flags table)."""
    uri, version = lance_io.split_version(ref)
    if not isinstance(version, int):
        raise ValueError(f"flags are looked up for a pinned version, got {ref!r}")
    flags = lance_io.flags_uri(uri)
    if not lance_io.exists(flags):
        return set()
    ds = lance_io.open_dataset(flags)
    missing = [c for c in FLAG_COLUMNS if c not in ds.schema.names]
    if missing:
        raise ValueError(f"flags table {flags} lacks columns {missing} (wants {', '.join(FLAG_COLUMNS)})")
    table = ds.to_table(columns=["sample_id", "version"], filter=f"version = {int(version)}")
    return {s for s in table.column("sample_id").to_pylist() if s}
