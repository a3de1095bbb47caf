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
from prefect import flow

from datagen.schema import from_row
from datagen.store import lance_io
from datagen.store.lineage import MAX_LISTED_SOURCES
from datagen.report import contact_sheet, lineage_picture, markdown

CARD_BUDGET_BYTES = 900_000
IMAGE_COLUMNS = ["sample_id", "index", "task", "instruction", "inputs", "outputs", "regions", "scores",
                 "scorer", "weight", "meta", "source_ids", "seed", "generator", "run_id"]


def artifact_key(uri: str) -> str:
    """`dataset-<name>-<hash of the location>`: one card history per dataset location, the
    same key for every version of it (two `collage.lance` in two folders get two keys)."""
    base = lance_io.normalise_uri(lance_io.split_version(uri)[0])
    return markdown.artifact_key("dataset", lance_io.dataset_name(base), base)


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
        rows.append([markdown.code(name), len(v), f"{v.min():.4g}", f"{np.median(v):.4g}", f"{v.mean():.4g}",
                     f"{v.max():.4g}"])
    return rows


class RejectsMissing(Exception):
    """The lineage records rejects, but their table (or that version of it) is gone."""


def _rejects(node: dict[str, Any]) -> tuple[list[list[Any]], list[str]]:
    """(table rows: stage, reason, count; one example line per reason), most frequent first."""
    rej = node.get("rejects") or {}
    if not rej.get("uri"):
        return [], []
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
        example.setdefault((stage, reason), f"{source}: {detail}"[:200])
    ranked = counts.most_common()
    rows = [[markdown.escape(s), markdown.code(r), n] for (s, r), n in ranked]
    lines = [f"- {markdown.code(r)} ({markdown.escape(s)}): {markdown.breakable(example[(s, r)])}" for (s, r), _ in ranked]
    return rows, lines


def example_caption(sample) -> str:
    """The instruction, and where its free text came from (template or a named captioner, a
    style look), so a reviewer can tell VLM-written captions from templated ones."""
    text = sample.instruction or "(no instruction)"
    meta = sample.meta or {}
    extra = [f"captions: {meta['caption_source']}"] if meta.get("caption_source") else []
    if meta.get("look_words"):
        extra.append(f"look: {meta['look_words']}")
    return f"{text}  [{'; '.join(extra)}]" if extra else text


def _examples_section(ds, tasks: dict[str, int], per_task: int) -> list[str]:
    """One thumbnail grid per task (the first samples by plan index), the instruction under each row."""
    examples = examples_per_task(ds, per_task=per_task)
    out = [f"## Examples ({per_task} per task: inputs in blue -> outputs in green, the instruction under each row)", ""]
    for task in sorted(tasks):
        rows = [e for e in examples if e.task == task]
        if not rows:
            continue
        sheet = contact_sheet.render(rows, tile=96, label_px=12, captions=[example_caption(e) for e in rows], min_tiles=4)
        jpeg = contact_sheet.to_jpeg(sheet, quality=72)
        out += [f"### {markdown.code(task)} ({tasks[task]:,} samples)", "",
                f"![{markdown.escape(task)} examples]({markdown.data_uri(jpeg, 'image/jpeg')})", ""]
    return out


def _scores_section(ds, total: int) -> list[str]:
    values = score_values(ds) if total else {}
    if not values:
        return ["## Scores", "", "No scores recorded in this version (its product writes none, or none of its "
                "scorers ran).", ""]
    return ["## Scores", "", markdown.table(["score", "n", "min", "median", "mean", "max"], _score_rows(values), raw=True),
            "", f"![score histograms]({markdown.data_uri(score_histograms(values), 'image/png')})", ""]


def _schema_section(ds) -> list[str]:
    # A list, not a table or a code block: the long nested types wrap instead of running off the card.
    return ["## Schema (shared by every UniMontage dataset)", "",
            *[f"- {markdown.code(f.name)}: {markdown.escape(f.type)}" for f in ds.schema], ""]


def _review_section(uri: str, version: int) -> list[str]:
    from datagen.store import reviews

    done = reviews.reviews_of(uri, version)
    if not done:
        return ["## Review", "", "Not reviewed yet. Review it here (the run pauses for your decision) or in a terminal:",
                "```", f"unimontage review {uri}@{version}", "```", ""]
    out = ["## Review", ""]
    for r in done:
        flags = r.get("flags") or {}
        flagged = (f", {flags.get('rows')} sample(s) flagged (in {markdown.breakable(flags.get('uri'))} "
                   f"version {flags.get('version')})") if flags else ", nothing flagged"
        comment = f": {markdown.escape(r['comment'])}" if r.get("comment") else ""
        out.append(f"- **{markdown.escape(r.get('decision'))}** by {markdown.escape(r.get('reviewer'))} at "
                   f"{markdown.escape(r.get('decided_at'))}{flagged}{comment}")
    if done[-1].get("decision") == "approved":
        out += ["", "Training pins this version through the tag (flagged rows can be left out):", "```",
                f"unimontage train --dataset {uri}@reviewed ...", "```"]
    return out + [""]


def _load_section(uri: str, version: int) -> list[str]:
    return ["## Load it", "```python", "import lance", f'uri = "{uri}"', f"ds = lance.dataset(uri, version={version})",
            "from datagen.schema import from_row  # decoded pixels, masks, meta",
            "sample = from_row(ds.take([0]).to_pylist()[0])", "# or with Ray Data:", "import ray.data",
            f"rows = ray.data.read_lance(uri, version={version})", "```",
            "Where it came from, as text: `unimontage lineage URI@VERSION`.", ""]


def render_card(ref: str, *, thumbnails: bool = True, per_task: int | None = None) -> str:
    """The card of `URI[@VERSION|@TAG]` as markdown (with inline images when `thumbnails`)."""
    ds = lance_io.open_dataset(ref)
    uri = lance_io.normalise_uri(lance_io.split_version(ref)[0])
    node = lance_io.read_lineage(ds) or {}
    counts = pc.value_counts(ds.to_table(columns=["task"]).column("task")).to_pylist()
    tasks = {d["values"]: d["counts"] for d in counts}
    total = sum(tasks.values())
    acc = node.get("accounting", {})
    runs = node.get("flow_runs") or []
    made_by = ("made by " + ", ".join(f"flow run {markdown.code(r.get('name', ''))} ({r.get('id')})" for r in runs)
               if runs else "made outside a flow run")
    name = node.get("name", lance_io.dataset_name(uri))
    lines = [
        f"# Dataset {markdown.code(name)} @ version {ds.version} in {markdown.breakable(uri)}",
        "",
        f"**{total:,} samples** in {len(tasks)} task(s); **{acc.get('rejects', 0):,} rejects**; "
        f"content hash {markdown.code(str(node.get('content_hash', '?'))[:16])}; {made_by} "
        f"at {node.get('created_at', '?')}.",
        "",
        *_review_section(uri, ds.version),
        "## Accounting (inputs = kept + rejected)",
        markdown.table(["", "count"], [
            ["inputs planned", acc.get("items", "?")], ["inputs with samples", acc.get("items_with_samples", "?")],
            ["inputs rejected", acc.get("items_rejected", "?")], ["rejected before planning", acc.get("pre_rejects", "?")],
            ["sample rows", acc.get("samples", total)], ["reject rows", acc.get("rejects", "?")]]),
        "",
        "## Samples per task",
        markdown.table(["task", "samples", "share"],
                       [[markdown.code(t), n, f"{100 * n / max(total, 1):.1f}%"] for t, n in sorted(tasks.items())],
                       raw=True),
        "",
        "## Rejects by reason",
    ]
    try:
        rej_rows, rej_examples = _rejects(node)
    except RejectsMissing as exc:
        lines.append(f"**Rejects table missing:** {markdown.breakable(exc)}")
    else:
        if rej_rows:
            lines += [markdown.table(["stage", "reason", "count"], rej_rows, raw=True), "", "One example per reason:", "",
                      *rej_examples]
        else:
            lines.append("No rejects.")
    lines.append("")
    per_task = per_task or min(3, max(1, 36 // max(1, len(tasks))))
    if thumbnails and total:
        lines += _examples_section(ds, tasks, per_task)
    lines += _scores_section(ds, total)
    lines += _lineage_section(node, f"{uri}@{ds.version}", pictures=thumbnails)
    lines += _load_section(uri, ds.version)
    lines += _schema_section(ds)
    card = "\n".join(lines)
    if len(card.encode()) > CARD_BUDGET_BYTES and thumbnails:
        # numbers beat pictures when space runs out: fewer examples first, then none
        return render_card(ref, per_task=per_task - 1) if per_task > 1 else render_card(ref, thumbnails=False)
    return card


def _shards_line(shards: dict[str, Any]) -> str:
    if not shards:
        return "- shards: not recorded"
    nodes = len(shards.get("placement") or {})
    return (f"- shards: {shards.get('total', '?')} of up to {shards.get('size', '?')} inputs ({shards.get('ran', 0)} run, "
            f"{shards.get('resumed', 0)} resumed, {shards.get('split', 0)} split after a crash) on {nodes} node(s); "
            f"{shards.get('worker_seconds', '?')} s of worker time")


def _lineage_section(node: dict[str, Any], ref: str, *, pictures: bool = True) -> list[str]:
    if not node:
        return ["## Lineage", "No UniMontage lineage recorded for this version."]
    code = node.get("code", {})
    out = ["## Lineage", ""]
    if pictures:
        out += ["Sources -> flow runs -> this version (highlighted) -> reviews; `unimontage lineage URI@VERSION "
                "--format svg` draws the same picture.", "",
                f"![lineage]({markdown.data_uri(lineage_picture.png_of(ref), 'image/png')})", ""]
    rej = node.get("rejects") or {}
    sources = node.get("sources", [])
    srcs = [f"- source {markdown.escape(s.get('kind', ''))}: {markdown.breakable(s.get('ref') or s.get('uri'))}, "
            f"content hash {markdown.code(str(s.get('content_hash', ''))[:16])}" for s in sources[:MAX_LISTED_SOURCES]]
    if len(sources) > MAX_LISTED_SOURCES:
        srcs.append(f"- ... and {len(sources) - MAX_LISTED_SOURCES} more sources (`unimontage lineage URI@VERSION "
                    "--format json` lists them all)")
    out += [
        f"- code: {markdown.escape(code.get('package'))} git {markdown.code(str(code.get('git'))[:12])}"
        f"{' (local changes)' if code.get('dirty') else ''}",
        f"- generator: {markdown.code(node.get('generator', ''))}; seed {node.get('seed')}; config hash "
        f"{markdown.code(str(node.get('config_hash'))[:16])}",
        f"- rejects table: {markdown.breakable(rej.get('uri'))} version {rej.get('version')}",
        _shards_line(node.get("shards") or {}),
        *(srcs or ["- no external sources"]),
        "",
        "### Parameters",
        "",
        *_parameter_list(node),
    ]
    return out


def _value(value: Any) -> str:
    """A parameter value: a code span, or wrapping text when it is one long unbreakable token (a path)."""
    text = json.dumps(value, default=str)
    if len(text) > 40 and " " not in text:
        return markdown.breakable(text)
    return markdown.code(text)


def _parameter_list(node: dict[str, Any]) -> list[str]:
    """The run's parameters with their defaults and help, derived from the product's declared config."""
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
            default = "required" if p.required else f"default {_value(p.default)}"
            rows.append(f"- {markdown.code(p.flag)} = {_value(value)} ({default}): {markdown.escape(p.help)}")
    rows += [f"- {markdown.code(name)} = {_value(value)}" for name, value in sorted(params.items())]
    return rows or ["None recorded."]


def strip_images(markdown: str) -> str:
    """The card for a terminal: inline images replaced by a note, no line-break hints."""
    text = re.sub(r"!\[([^\]]*)\]\(data:[^)]+\)", r"[\1: inline image, see the Prefect artifact or --out FILE]", markdown)
    return text.replace("<wbr>", "")


@flow(name="publish-dataset-card", description="Publish the card of a dataset version as its keyed Prefect artifact.")
def publish_card_flow(ref: str) -> str:
    """`unimontage card URI --publish`: the artifact gets a flow run (and its link in the UI)
    and a description, as the dataset flows' own cards do."""
    from flows.tasks import publish_card

    uri, version = lance_io.resolve_ref(ref)
    return publish_card(lance_io.normalise_uri(uri), lance_io.open_dataset(ref).version if version is None else version)
