"""The training-run card: what a reviewer needs to trust a run, as markdown.

Built only from the run folder (lineage.json, metrics.jsonl, events.jsonl, checkpoints), top to
bottom: the datasets@versions; the stages (steps, LR schedule, batch, resolution, mix, rows kept
and left out by reason, each stage's datasets and row filter); the planned task shares over
steps; the text length and how many instructions it cut (a warning line when any); the loss
(curve, small multiples per task family, and a table listing EVERY task any stage indexed with
its rows, samples drawn, steps, mean and last loss over the whole run); routing loss,
throughput, attempts; generations of the latest checkpoint in fixed columns; how to use it;
the lineage picture with the latest checkpoint highlighted.

Laid out for the Prefect UI as the dataset cards are (`datagen.report.markdown`): tables hold
short values only, paths sit in lists with break points, commands are split over short lines.
The plots are `training.report_plots`, the generations `training.report_samples`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from datagen.report import markdown as md
from training.job import latest_checkpoint, list_checkpoints, read_events, read_history
from training.lineage import read_node
from training.report_plots import family, loss_curve_png, share_plot_png, task_loss_png
from training.report_samples import preview_png

CARD_BUDGET_BYTES = 900_000
__all__ = ["artifact_key", "render_run_card", "task_rows", "stages_section", "text_section", "share_plot_png"]


def artifact_key(name: str) -> str:
    return md.artifact_key("training-run", name)


def _img(alt: str, png: bytes | None) -> list[str]:
    return [f"![{alt}]({md.data_uri(png, 'image/png')})", ""] if png else []


# --------------------------------------------------------------------------- stages
def _rule(st: dict[str, Any]) -> str:
    parts = []
    if st.get("where"):
        parts.append(f"{md.code(st['where'])} (a row without the score: {st.get('where_missing', 'drop')})")
    if st.get("drop_flagged"):
        parts.append("rows flagged in review left out")
    return " and ".join(parts) or "none (all rows)"


def stages_section(node: dict[str, Any]) -> list[str]:
    """A table of short values per stage, then per stage its datasets, row filter and rows left out."""
    stages = node.get("stages") or []
    if not stages:
        return []
    rows, details = [], []
    for st in stages:
        index = st.get("index") or {}
        skipped = index.get("skipped") or {}
        left_out = sum(skipped.values())
        steps = f"{st['start']}-{st['start'] + st['steps'] - 1}"
        batch = f"{st['batch_tokens']} tok" if st.get("batch_tokens") else f"{st.get('batch_size')}"
        rows.append([f"**{md.escape(st['name'])}**", steps, md.escape(f"{st['lr']:g} {st['lr_schedule']}"),
                     batch, md.escape(st.get("mix", "volume")), index.get("rows", "?"), left_out])
        asked = {p: a for a, p in zip(st.get("datasets_asked") or [], st.get("datasets") or []) if a != p}
        refs = ", ".join(md.breakable(d) + (f" (asked {md.breakable(asked[d])})" if d in asked else "")
                         for d in st.get("datasets") or [])
        why = ("; left out: " + ", ".join(f"{md.code(k)} {v}" for k, v in sorted(skipped.items()))) if skipped else ""
        curriculum = (f"; curriculum {md.escape(' -> '.join(st['curriculum']))}" if st.get("curriculum") else "")
        weights = (f"; task weights {md.escape(', '.join(f'{k}: {v:g}' for k, v in st['task_weights'].items()))}"
                   if st.get("task_weights") else "")
        batch_text = (f"up to {st['batch_tokens']} image tokens (&lt;= {st['batch_size']} samples)"
                      if st.get("batch_tokens") else f"{st.get('batch_size')} samples")
        details.append(f"- **{md.escape(st['name'])}**, steps {steps} ({st['steps']}): reads {refs}; row filter: "
                       f"{_rule(st)}; {index.get('rows', '?')} rows kept, {left_out} left out{why}; resolution "
                       f"{st.get('resolution')}; batch {batch_text}; LR {st['lr']:g} {md.escape(st['lr_schedule'])}"
                       f" with {st.get('warmup_steps') or 0} warm-up step(s){curriculum}{weights}.")
    # Seven short columns: the Prefect UI never wraps a cell and its card column is ~700 px wide.
    table = md.table(["stage", "steps", "lr", "batch", "mix", "rows kept", "left out"], rows, raw=True)
    return ["## Stages", "", table, "", *details, ""]


def text_section(node: dict[str, Any]) -> list[str]:
    """The text length, how many instructions it cut (a warning line when any), the longest."""
    text = node.get("text") or {}
    if not text:
        return []
    line = (f"Instructions: {text.get('texts', 0)} distinct, longest {text.get('longest', 0)} tokens; "
            f"text_max_tokens {text.get('max_tokens')}"
            + ("; prefixed with \"Output M images.\"" if text.get("prefix_outputs") else "") + ".")
    out = ["## Text", "", line, ""]
    if text.get("truncated"):
        example = str((text.get("examples") or [""])[0])[:200]
        out += [f"**Warning: {text['truncated']} truncated instruction(s)** ({text.get('truncated_rows', 0)} rows) are "
                f"longer than {text.get('max_tokens')} tokens and were cut; their ends never reach the model. Raise "
                f"text_max_tokens or use a longer-context encoder (`--set text_encoder=DIR`). E.g.: "
                f"{md.breakable(example)}", ""]
    else:
        out += ["Truncated instructions: 0 (none was cut).", ""]
    return out


# --------------------------------------------------------------------------- loss
def task_rows(node: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per task any stage indexed or any step trained: rows indexed (largest stage),
    samples drawn, steps that drew it, mean loss (sample-weighted) and last loss over the WHOLE run."""
    indexed: dict[str, int] = {}
    for st in node.get("stages") or []:
        for t, n in ((st.get("index") or {}).get("tasks") or {}).items():
            indexed[t] = max(indexed.get(t, 0), n)
    seen = {t for r in history for t in r.get("tasks", {})}
    counted = all("task_samples" in r for r in history)  # runs before the counts were logged have none
    out = []
    for task in sorted(set(indexed) | seen, key=lambda t: (family(t), t)):
        steps = [r for r in history if task in r.get("tasks", {})]
        weights = [r["task_samples"].get(task, 0) if counted else 1 for r in steps]
        losses = [r["tasks"][task] for r in steps]
        out.append({"task": task, "rows": indexed.get(task), "samples": sum(weights) if counted else None,
                    "steps": len(steps),
                    "mean": float(np.average(losses, weights=weights)) if steps and sum(weights) else None,
                    "last": losses[-1] if steps else None, "last_step": steps[-1]["step"] if steps else None,
                    "last_stage": steps[-1].get("stage", "") if steps else ""})
    return out


def _loss_table(rows: list[dict[str, Any]]) -> str:
    def f(v):
        return "-" if v is None else f"{v:.4f}"

    cells = [[md.code(r["task"]), "?" if r["rows"] is None else r["rows"],
              "?" if r["samples"] is None else r["samples"], r["steps"], f(r["mean"]),
              "never drawn" if r["last"] is None else f"{f(r['last'])} @ {r['last_step']}"] for r in rows]
    return md.table(["task", "rows", "samples", "steps", "mean loss", "last loss @ step"], cells, raw=True)


def loss_section(node: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    if not history:
        return ["## Loss", "", "No step was logged yet.", ""]
    stages = (node.get("mix_schedule") or {}).get("stages")
    rows = task_rows(node, history)
    never = [r["task"] for r in rows if not r["steps"]]
    wall = sum(r["step_s"] for r in history)
    wait = sum(r["data_wait_s"] for r in history)
    later = history[1:] or history
    later_wait = sum(r["data_wait_s"] for r in later) / max(1e-9, sum(r["step_s"] for r in later))
    padding = [r["padding"] for r in history if "padding" in r]
    counts = ("samples = rows of the task drawn over the whole run" if rows and rows[0]["samples"] is not None
              else "samples: not logged by this run's trainer (steps = steps that drew the task)")
    out = ["## Loss", "", *_img("loss", loss_curve_png(history, stages)), *_img("loss per task family",
                                                                                 task_loss_png(history, stages)),
           f"Every task of the run ({len(rows)}), over all {len(history)} steps; rows = indexed (largest stage); "
           f"{counts}; mean loss weighted by samples.", "", _loss_table(rows), ""]
    if never:
        out += [f"**Never drawn:** {', '.join(md.code(t) for t in never)} (indexed, but weighted 0 or ramped in "
                "after the last step).", ""]
    out += [routing_line(history), "",
            f"Throughput {len(history) / max(wall, 1e-9):.2f} steps/s. Time waiting for data: {100 * later_wait:.1f}% "
            f"of step time after the first step ({100 * wait / max(wall, 1e-9):.1f}% with it: the first wait includes "
            f"starting the decode pipeline). Decode errors: {sum(r['decode_errors'] for r in history)}."
            + (f" Padding: {100 * np.mean(padding):.1f}% of image tokens." if padding else ""), ""]
    return out


def routing_line(history: list[dict[str, Any]]) -> str:
    """One sentence on the routing loss over the last tenth of the steps that had pairs."""
    routed = [r for r in history if "routing" in r]
    if not routed:
        return "Routing loss: no step had reference -> instance pairs."
    last = routed[-max(1, len(routed) // 10):]
    return (f"Routing loss (reference -> instance attention, {len(routed)} steps with pairs): "
            f"{np.mean([r['routing'] for r in last]):.3f}, attention mass inside the instance "
            f"{np.mean([r['routing_mass'] for r in last]):.3f} over the last tenth of them.")


# --------------------------------------------------------------------------- the rest
CODE_LINE = 68  # characters of a code line that fit the UI's card column without scrolling


def _shell_word(text: str, indent: int) -> list[str]:
    """`text` single-quoted for a shell, split at '/' into lines of at most CODE_LINE characters
    joined by `'\\` continuations (the next piece starts at column 0, so the shell glues the
    pieces into one word); the first line is to follow `indent` characters."""
    quoted = "'" + text.replace("'", "'\\''") + "'"
    if indent + len(quoted) + 2 <= CODE_LINE:
        return [quoted]
    parts = re.split(r"(?<=/)", text.replace("'", "'\\''"))
    lines, cur, room = [], "'", CODE_LINE - indent - 3
    for part in parts:
        if len(cur) > 1 and len(cur) + len(part) > room:
            lines.append(cur + "'\\")
            cur, room = "'", CODE_LINE - 3
        cur += part
    return lines + [cur + "'"]


def _command(head: str, args: list[tuple[str, str]]) -> list[str]:
    """`head` then one `    --flag value` per line, long values split by `_shell_word`."""
    out = [head + " \\"]
    for i, (flag, value) in enumerate(args):
        prefix = f"    {flag} " if flag else "    "
        words = _shell_word(value, len(prefix)) if value.startswith("/") else [value]
        words[0] = prefix + words[0]
        out += words[:-1] + [words[-1] + (" \\" if i < len(args) - 1 else "")]
    return out


def _use_it(checkpoint: str, datasets: list[str]) -> list[str]:
    """Commands split over short lines: a code block scrolls, and a reviewer should not have to."""
    cards = [x for ref in datasets for x in _command("unimontage card", [("", ref)])]
    return ["## Use it", "", "```",
            *_command("unimontage sample", [("--checkpoint", checkpoint), ("--inputs", "IMG.png"),
                                            ("--instruction", "'Edit <image 1> ...'"), ("--out", "samples/")]), "",
            *_command("unimontage lineage", [("", checkpoint)]), "",
            "# the card of each dataset version it read:", *cards, "```", ""]


def lineage_section(node: dict[str, Any], focus: str | None) -> list[str]:
    from datagen.report import lineage_picture

    out = ["## Lineage", "",
            "Sources -> flow runs -> datasets@version -> this run -> its checkpoints (the latest highlighted); "
            "`unimontage lineage CHECKPOINT --format svg` draws the same picture.", "",
            *_img("lineage", lineage_picture.png_of(focus or node["path"]))]
    code = node.get("code") or {}
    runs = node.get("flow_runs") or ([node["flow_run"]] if node.get("flow_run") else [])
    out += [*[f"- flow run {md.code(fr.get('flow'))} {md.code(fr.get('name', ''))} ({md.escape(fr.get('id'))})"
              for fr in runs if fr],
            f"- code: {md.escape(code.get('package'))} git {md.code(str(code.get('git'))[:12])}"
            f"{' (local changes)' if code.get('dirty') else ''}",
            f"- config hash {md.code(str(node.get('config_hash', ''))[:16])}; data plan "
            f"{md.code(str(node.get('plan', ''))[:16])}",
            *[f"- parent: {md.breakable(p)}" for p in node.get("parents") or []], ""]
    return out


def render_run_card(run_dir: str, *, previews: bool = True) -> str:
    node = read_node(run_dir)
    if node is None:
        raise FileNotFoundError(f"no lineage.json in {run_dir}: not a training run folder")
    node.setdefault("path", run_dir)
    history, events = read_history(run_dir), read_events(run_dir)
    checkpoints = list_checkpoints(run_dir)
    cfg = node.get("config", {})
    stages = node.get("stages") or []
    overrides = cfg.get("model_overrides") or {}
    facts = node.get("dataset_facts") or {}
    out = [f"# Training run {md.code(node['name'])} in {md.breakable(run_dir)}", "",
           f"Status **{md.escape(node.get('status'))}**, step {node.get('step')} of {node.get('max_steps')} in "
           f"{len(stages) or 1} stage(s); model {md.code(cfg.get('model'))}"
           + (f" with {md.escape(', '.join(f'{k}={v}' for k, v in overrides.items()))}" if overrides else "")
           + f"; seed {cfg.get('seed')}; routing weight {cfg.get('routing_weight')}; config "
           f"{md.code(str(node.get('config_hash', ''))[:16])}.", "",
           "## Datasets (pinned versions)", "",
           *[f"- {md.breakable(ref)}: {(facts.get(ref) or {}).get('rows', '?')} rows, content hash "
             f"{md.code(str((facts.get(ref) or {}).get('content_hash'))[:16])}" for ref in node.get("datasets", [])], ""]
    out += stages_section(node)
    share = share_plot_png(node.get("mix_schedule") or {})
    if share:
        out += ["## Task mix", "", "The planned share of each task over the steps (the mix and cocktail schedule "
                "of every stage; tasks of one family in shades of one colour).", "", *_img("task shares", share)]
    out += text_section(node)
    out += loss_section(node, history)
    if events:
        out += ["## Attempts", "", md.table(["event", "from step", "stage", "workers", "checkpoint"],
                                           [[e["event"], e["step"], e.get("stage", ""), e.get("world_size"),
                                             (e.get("checkpoint") or "").rsplit("/", 1)[-1] or "-"] for e in events]),
                ""]
    latest = str(latest_checkpoint(run_dir)) if checkpoints else None
    if checkpoints:
        out += ["## Checkpoints", "", *[f"- {md.breakable(c)}" for c in checkpoints], ""]
        png = preview_png(latest) if previews else None
        if png:
            out += ["## Generations of the latest checkpoint", "",
                    "Fixed columns: the inputs (grey frames; \"none\" where a task has fewer), generated (blue), "
                    "target (green); the task and instruction under each row.", "", *_img("generations", png)]
        out += _use_it(latest, node.get("datasets") or [])
    out += lineage_section(node, latest)
    card = "\n".join(out)
    if len(card.encode()) > CARD_BUDGET_BYTES and previews:  # numbers beat generations when space runs out
        return render_run_card(run_dir, previews=False)
    return card
