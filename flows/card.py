"""Dataset cards: what a reviewer needs to trust a dataset version, as markdown.

Built only from the stored dataset and its lineage (so `unimontage card URI@V` gives the
same card as the flow that made V): counts per task, rejects by reason with examples,
thumbnails of real samples, score histograms, schema, how to load it, lineage. Images are
inline `data:` URIs (Prefect's UI renders them); the whole card stays well under 1 MB.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc

from datagen.schema import from_row
from datagen.store import lance_io
from datagen.report import contact_sheet, markdown

CARD_BUDGET_BYTES = 900_000
IMAGE_COLUMNS = ["sample_id", "index", "task", "instruction", "inputs", "outputs", "regions", "scores",
                 "scorer", "weight", "meta", "source_ids", "seed", "generator", "run_id"]


def artifact_key(uri: str) -> str:
    return markdown.artifact_key("dataset", lance_io.dataset_name(uri))


def examples_per_task(ds, per_task: int = 1) -> list[Any]:
    """The first `per_task` samples (by plan index) of every task, decoded."""
    meta = ds.to_table(columns=["task", "index"])
    tasks = meta.column("task").to_pylist()
    order = np.argsort(np.asarray(meta.column("index").to_pylist()), kind="stable")
    picked: dict[str, list[int]] = {}
    for pos in order:
        t = tasks[pos]
        if len(picked.setdefault(t, [])) < per_task:
            picked[t].append(int(pos))
    positions = [p for t in sorted(picked) for p in picked[t]]
    if not positions:
        return []
    rows = ds.take(positions, columns=IMAGE_COLUMNS).to_pylist()
    return [from_row(r) for r in rows]


def score_values(ds, max_rows: int = 200_000) -> dict[str, list[float]]:
    col = ds.to_table(columns=["scores"], limit=max_rows).column("scores")
    values: dict[str, list[float]] = {}
    for entry in col.to_pylist():
        for k, v in entry or []:
            values.setdefault(k, []).append(v)
    return values


def score_histograms(values: dict[str, list[float]]) -> bytes:
    """One small histogram per score name, as a PNG (callers pass at least one name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(values)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        ax.hist(values[name], bins=30, color="#3a6fd8")
        ax.set_title(f"{name} (n={len(values[name])})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return buf.getvalue()


def _score_rows(values: dict[str, list[float]]) -> list[list[Any]]:
    rows = []
    for name in sorted(values):
        v = np.asarray(values[name], np.float64)
        rows.append([f"`{name}`", len(v), f"{v.min():.4g}", f"{np.median(v):.4g}", f"{v.mean():.4g}", f"{v.max():.4g}"])
    return rows


class RejectsMissing(Exception):
    """The lineage records rejects, but their table (or that version of it) is gone."""


def _reject_rows(node: dict[str, Any]) -> list[list[Any]]:
    rej = node.get("rejects") or {}
    if not rej.get("uri"):
        return []
    try:
        table = lance_io.open_dataset(f"{rej['uri']}@{rej['version']}").to_table(
            columns=["stage", "reason", "detail", "source"])
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise RejectsMissing(f"{rej.get('rows', '?')} reject row(s) were recorded in {rej['uri']}@{rej.get('version')}, "
                             f"but it cannot be read ({type(exc).__name__}); `unimontage doctor` says more") from exc
    counts: Counter = Counter()
    example: dict[tuple[str, str], str] = {}
    for stage, reason, detail, source in zip(*(table.column(c).to_pylist() for c in ("stage", "reason", "detail", "source"))):
        counts[(stage, reason)] += 1
        example.setdefault((stage, reason), markdown.escape(f"{source}: {detail}"[:140]))
    return [[markdown.escape(s), f"`{markdown.escape(r)}`", n, example[(s, r)]] for (s, r), n in counts.most_common()]


def render_card(ref: str, *, thumbnails: bool = True) -> str:
    """The card of `URI[@VERSION]` as markdown (with inline images when `thumbnails`)."""
    ds = lance_io.open_dataset(ref)
    uri = lance_io.normalise_uri(lance_io.split_version(ref)[0])
    node = lance_io.read_lineage(ds) or {}
    counts = pc.value_counts(ds.to_table(columns=["task"]).column("task")).to_pylist()
    tasks = {d["values"]: d["counts"] for d in counts}
    total = sum(tasks.values())
    acc = node.get("accounting", {})
    runs = node.get("flow_runs") or []
    made_by = ", ".join(f"flow run `{r.get('name', '')}` ({r.get('id')})" for r in runs) or "outside a flow run"
    lines = [
        f"# Dataset `{node.get('name', lance_io.dataset_name(uri))}` @ version {ds.version}",
        "",
        f"**{total:,} samples** in {len(tasks)} task(s); **{acc.get('rejects', 0):,} rejects**; "
        f"content hash `{str(node.get('content_hash', '?'))[:16]}`; made by {made_by} "
        f"at {node.get('created_at', '?')}.",
        "",
        "## Load it",
        "```python",
        "import lance",
        f'ds = lance.dataset("{uri}", version={ds.version})',
        "from datagen.schema import from_row  # decoded pixels, masks, meta",
        "sample = from_row(ds.take([0]).to_pylist()[0])",
        "# or with Ray Data:",
        "import ray.data",
        f'rows = ray.data.read_lance("{uri}", version={ds.version})',
        "```",
        f"`unimontage lineage {uri}@{ds.version}` prints where it came from.",
        "",
        "## Accounting (inputs = kept + rejected)",
        markdown.table(["inputs planned", "inputs with samples", "inputs rejected", "rejected before planning",
                "sample rows", "reject rows"],
               [[acc.get("items", "?"), acc.get("items_with_samples", "?"), acc.get("items_rejected", "?"),
                 acc.get("pre_rejects", "?"), acc.get("samples", total), acc.get("rejects", "?")]]),
        "",
        "## Samples per task",
        markdown.table(["task", "samples", "share"],
               [[f"`{t}`", n, f"{100 * n / max(total, 1):.1f}%"] for t, n in sorted(tasks.items())]),
        "",
        "## Rejects by reason",
    ]
    try:
        rej_rows = _reject_rows(node)
    except RejectsMissing as exc:
        rej_rows, missing = [], str(exc)
    else:
        missing = ""
    if missing:
        lines.append(f"**Rejects table missing:** {markdown.escape(missing)}")
    else:
        lines.append(markdown.table(["stage", "reason", "count", "example"], rej_rows, raw=True) if rej_rows
                     else "No rejects.")
    lines.append("")
    if thumbnails and total:
        examples = examples_per_task(ds, per_task=1)
        tile = 96 if len(examples) <= 20 else 64
        sheet = contact_sheet.render(examples, tile=tile, label_px=11)
        jpeg = contact_sheet.to_jpeg(sheet, quality=75)
        lines += ["## Examples (one per task: inputs in blue -> outputs in green)", "",
                  f"![examples]({markdown.data_uri(jpeg, 'image/jpeg')})", ""]
    values = score_values(ds) if total else {}
    if values:
        lines += ["## Scores", "", markdown.table(["score", "n", "min", "median", "mean", "max"], _score_rows(values)), ""]
        hist = score_histograms(values)
        lines += [f"![score histograms]({markdown.data_uri(hist, 'image/png')})", ""]
    lines += ["## Schema (shared by every UniMontage dataset)", "```"]
    lines += [f"{f.name}: {f.type}" for f in ds.schema] + ["```", ""]
    lines += _lineage_section(node)
    card = "\n".join(lines)
    if len(card.encode()) > CARD_BUDGET_BYTES and thumbnails:
        return render_card(ref, thumbnails=False)  # numbers beat pictures when space runs out
    return card


def _lineage_section(node: dict[str, Any]) -> list[str]:
    if not node:
        return ["## Lineage", "No UniMontage lineage recorded for this version."]
    code = node.get("code", {})
    srcs = [[s.get("kind", ""), f"`{s.get('ref') or s.get('uri')}`", f"`{str(s.get('content_hash', ''))[:16]}`"]
            for s in node.get("sources", [])]
    out = [
        "## Lineage",
        f"- code: {code.get('package')} git `{str(code.get('git'))[:12]}`{' (local changes)' if code.get('dirty') else ''}",
        f"- generator: `{node.get('generator', '')}`; seed {node.get('seed')}; config hash `{str(node.get('config_hash'))[:16]}`",
        f"- rejects table: `{(node.get('rejects') or {}).get('uri')}@{(node.get('rejects') or {}).get('version')}`",
        f"- shards: {json.dumps(node.get('shards', {}))}",
        "",
        markdown.table(["source kind", "source", "content hash"], srcs) if srcs else "No external sources.",
        "",
        "### Parameters",
        "",
        *_parameter_table(node),
    ]
    return out


def _parameter_table(node: dict[str, Any]) -> list[str]:
    """The run's parameters with their help, derived from the product's declared config."""
    from datagen import products

    params = dict(node.get("parameters") or {})
    try:
        declared = products.get(node.get("product", "")).config.params()
    except ValueError:  # a product this installation does not know: show what was recorded
        declared = []
    rows = []
    for p in declared:
        if p.name in params:
            value = params.pop(p.name)
            default = "(required)" if p.required else p.default
            rows.append([f"`{p.flag}`", f"`{markdown.escape(json.dumps(value, default=str))}`",
                         f"`{markdown.escape(json.dumps(default, default=str))}`", markdown.escape(p.help)])
    for name, value in sorted(params.items()):
        rows.append([f"`{markdown.escape(name)}`", f"`{markdown.escape(json.dumps(value, default=str))}`", "", ""])
    return [markdown.table(["parameter", "value", "default", "meaning"], rows, raw=True)] if rows else ["None recorded."]


def strip_images(markdown: str) -> str:
    """The card for a terminal: inline images replaced by a note."""
    return re.sub(r"!\[([^\]]*)\]\(data:[^)]+\)", r"[\1: inline image, see the Prefect artifact or --out FILE]", markdown)
