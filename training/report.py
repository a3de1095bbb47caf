"""The training-run card: what a reviewer needs to trust a run, as markdown.

Built only from the run folder (lineage.json, metrics.jsonl, events.jsonl, checkpoints):
datasets@versions, the stages (what each reads, its filter, rows kept and left out by
reason, LR and batch), the planned task shares over steps, instructions cut by the text
length, the loss curve overall and per task, the routing loss, throughput and data wait,
attempts (start / resume), and a few generations of the latest checkpoint beside their
targets. Images are inline PNG `data:` URIs. The stage, share and text sections are
functions of their own (`stages_section`, `share_plot_png`, `text_section`).
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import numpy as np

from training.job import latest_checkpoint, list_checkpoints, read_events, read_history
from training.lineage import read_node


def artifact_key(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"training-run-{slug or 'unnamed'}"


def _png_uri(raw: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(raw).decode()}"


def _stage_lines(ax, stages: list[dict[str, Any]]) -> None:
    """Dashed lines where each stage after the first starts, labelled with its name."""
    for st in stages[1:]:
        ax.axvline(st["start"], color="#888888", lw=0.8, ls="--")
    for st in stages:
        ax.text(st["start"], 1.0, f" {st['name']}", transform=ax.get_xaxis_transform(), fontsize=6, va="top",
                color="#555555")


def loss_curve_png(history: list[dict[str, Any]], stages: list[dict[str, Any]] | None = None) -> bytes | None:
    """Loss per step (thin) with a running mean (thick), and one running mean per task; stage starts marked."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in history])
    loss = np.array([r["loss"] for r in history])
    k = max(1, len(loss) // 20)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 2.8))
    axes[0].plot(steps, loss, lw=0.6, color="#9bb5e8")
    axes[0].plot(steps[k - 1:], smooth, lw=1.8, color="#2452b5")
    axes[0].set_title("loss", fontsize=9)
    tasks = sorted({t for r in history for t in r.get("tasks", {})})
    for task in tasks:
        pts = [(r["step"], r["tasks"][task]) for r in history if task in r.get("tasks", {})]
        xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        kk = max(1, len(ys) // 10)
        axes[1].plot(xs[kk - 1:], np.convolve(ys, np.ones(kk) / kk, mode="valid"), lw=1.2, label=task)
    axes[1].set_title("loss per task (running mean)", fontsize=9)
    if tasks:
        axes[1].legend(fontsize=6, ncol=2)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if stages:
            _stage_lines(ax, stages)
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def share_plot_png(schedule: dict[str, Any]) -> bytes | None:
    """The planned share of each task over the run's steps (stacked), stage starts marked."""
    if not schedule or not schedule.get("steps"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array(schedule["steps"])
    shares = np.array(schedule["shares"]).T  # (tasks, points)
    n = len(schedule["tasks"])
    cols = 1 + (n - 1) // 14  # a legend column per 14 tasks, tall enough for them
    fig, ax = plt.subplots(figsize=(7.4 + 1.1 * cols, max(2.6, 0.6 + 0.16 * min(n, 14))))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(2, len(schedule["tasks"]))))
    ax.stackplot(steps, shares, labels=schedule["tasks"], colors=colours, step="post")
    ax.set_ylim(0, 1)
    ax.set_xlim(steps[0], steps[-1])
    ax.set_title("task share of samples (planned)", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, ncol=cols, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _stage_lines(ax, schedule.get("stages") or [])
    return _png(fig)


def stages_section(node: dict[str, Any]) -> list[str]:
    """Markdown: one row per stage (steps, datasets, filter, rows, LR, batch), rows left out per stage."""
    stages = node.get("stages") or []
    if not stages:
        return []
    rows = []
    for st in stages:
        index = st.get("index") or {}
        picked = ", ".join(f"`{d}`" for d in st.get("datasets", []))
        asked = [a for a in st.get("datasets_asked", []) if "@" in a and not a.rsplit("@", 1)[1].isdigit()]
        if asked:
            picked += " (asked: " + ", ".join(f"`{a}`" for a in asked) + ")"
        rule = " and ".join(x for x in [f"`{st['where']}` (missing score: {st.get('where_missing', 'drop')})"
                                        if st.get("where") else "", "flags dropped" if st.get("drop_flagged") else ""]
                            if x) or "all rows"
        batch = (f"{st['batch_tokens']} tokens (<= {st['batch_size']})" if st.get("batch_tokens")
                 else f"{st.get('batch_size')} samples")
        lr = f"{st['lr']:g} {st['lr_schedule']}" + (f", warm-up {st['warmup_steps']}" if st.get("warmup_steps") else "")
        rows.append([f"**{st['name']}**", f"{st['start']}-{st['start'] + st['steps'] - 1}", picked, rule,
                     index.get("rows", "?"), st.get("resolution"), batch, lr, st.get("mix", "volume")])
    out = ["## Stages", _table(["stage", "steps", "datasets@version", "rows kept", "trainable rows", "resolution",
                                "batch", "lr", "mix"], rows), ""]
    for st in stages:
        skipped = (st.get("index") or {}).get("skipped") or {}
        if skipped:
            out += [f"Rows left out in `{st['name']}`: " + ", ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
    return out


def text_section(node: dict[str, Any]) -> list[str]:
    """Markdown: the text length, how many instructions it cuts (a warning when any), the longest."""
    text = node.get("text") or {}
    if not text:
        return []
    line = (f"Instructions: {text.get('texts', 0)} distinct, longest {text.get('longest', 0)} tokens; "
            f"text_max_tokens {text.get('max_tokens')}"
            + ("; prefixed with \"Output M images.\"" if text.get("prefix_outputs") else "") + ".")
    if text.get("truncated"):
        line += (f" **Warning: {text['truncated']} instructions ({text.get('truncated_rows', 0)} rows) are longer and "
                 "were cut**, e.g. `" + str((text.get("examples") or [""])[0])[:160] + "`.")
    else:
        line += " None was cut."
    return ["## Text", line, ""]


def routing_line(history: list[dict[str, Any]]) -> str:
    """One sentence on the routing loss over the last tenth of the steps that had pairs."""
    routed = [r for r in history if "routing" in r]
    if not routed:
        return ""
    last = routed[-max(1, len(routed) // 10):]
    return (f"Routing loss (reference -> instance attention, {len(routed)} steps with pairs): "
            f"{np.mean([r['routing'] for r in last]):.3f}, attention mass inside the instance "
            f"{np.mean([r['routing_mass'] for r in last]):.3f} over the last tenth of them.")


def _tile(pixels: np.ndarray, tile: int, border: tuple[int, int, int]) -> np.ndarray:
    """A square tile with a coloured frame; small images are enlarged with visible pixels."""
    import cv2

    h, w = pixels.shape[:2]
    s = (tile - 4) / max(h, w)
    img = cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))),
                     interpolation=cv2.INTER_NEAREST if s > 1 else cv2.INTER_AREA)
    out = np.full((tile, tile, 3), 245, np.uint8)
    out[:2, :], out[-2:, :], out[:, :2], out[:, -2:] = border, border, border, border
    y0, x0 = (tile - img.shape[0]) // 2, (tile - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


INPUT, GENERATED, TARGET = (170, 170, 170), (60, 110, 220), (50, 170, 70)


def preview_png(checkpoint: str, per_task: int = 1, steps: int = 20, max_rows: int = 6, tile: int = 96) -> bytes | None:
    """Rows of [inputs | generated | target] for the first sample of each task the run trained on."""
    from datagen.images import decode, encode_png
    from datagen.store import lance_io
    from models.image_space import load_image_space
    from models.sampling import sample
    from models.text_encoder import TextEncoder
    from training.inference import load_for_sampling
    from training.text_cache import final_text

    loaded = load_for_sampling(checkpoint)
    tc = loaded.config
    encoder = TextEncoder(tc.text_encoder or None, max_length=tc.text_max_tokens)
    space = load_image_space(None if tc.image_space == "pixels" else tc.image_space)
    strips: list[np.ndarray] = []
    seen: dict[str, int] = {}
    for ref in _trained_refs(tc):
        if len(strips) >= max_rows:
            break
        ds = lance_io.open_dataset(ref)
        for pos, task in enumerate(ds.to_table(columns=["task"]).column("task").to_pylist()):
            if len(strips) >= max_rows:
                break
            if seen.get(task, 0) >= per_task:
                continue
            row = ds.take([pos], columns=["instruction", "inputs", "outputs"]).to_pylist()[0]
            c = loaded.model.config
            if not row["outputs"] or len(row["inputs"] or []) > c.max_inputs or len(row["outputs"]) > c.max_outputs:
                continue
            seen[task] = seen.get(task, 0) + 1
            target = loaded.fit(decode(row["outputs"][0]["data"]), row["outputs"][0]["role"] or "")
            inputs = [loaded.fit(decode(p["data"]), p["role"] or "") for p in row["inputs"] or []]
            text = final_text(row["instruction"], len(row["outputs"]), tc.text_prefix_outputs)
            # As many outputs as the row has (the instruction may say how many), the first one shown.
            generated = sample(loaded.model, inputs, text, steps=steps, cfg=2.0, seed=0, size=target.shape[:2],
                               n_outputs=len(row["outputs"]), text_encoder=encoder, image_space=space)[0]
            tiles = [_tile(im, tile, INPUT) for im in inputs]
            tiles += [_tile(generated, tile, GENERATED), _tile(target, tile, TARGET)]
            strips.append(np.concatenate(tiles, axis=1))
    if not strips:
        return None
    width = max(s.shape[1] for s in strips)
    rows = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    return encode_png(np.concatenate(rows, axis=0))


def _trained_refs(tc) -> list[str]:
    """Every dataset version the run read, stage by stage, first use first."""
    refs = list(tc.datasets) + [d for st in tc.stages for d in st.get("datasets", [])]
    return list(dict.fromkeys(refs))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_run_card(run_dir: str, *, previews: bool = True) -> str:
    node = read_node(run_dir)
    if node is None:
        raise FileNotFoundError(f"no lineage.json in {run_dir}: not a training run folder")
    history, events = read_history(run_dir), read_events(run_dir)
    checkpoints = list_checkpoints(run_dir)
    cfg = node.get("config", {})
    stages = node.get("stages") or []
    out = [f"# Training run `{node['name']}`", "",
           f"Status **{node.get('status')}**, step {node.get('step')} of {node.get('max_steps')} in "
           f"{len(stages) or 1} stage(s); model `{cfg.get('model')}` {cfg.get('model_overrides') or ''}, seed "
           f"{cfg.get('seed')}, routing weight {cfg.get('routing_weight')}; config `{node.get('config_hash', '')[:16]}`.",
           ""]
    out += ["## Datasets (pinned versions)", _table(
        ["dataset@version", "rows", "content hash"],
        [[f"`{ref}`", (node.get("dataset_facts", {}).get(ref) or {}).get("rows"),
          f"`{str((node.get('dataset_facts', {}).get(ref) or {}).get('content_hash'))[:16]}`"]
         for ref in node.get("datasets", [])]), ""]
    out += stages_section(node)
    tasks: dict[str, int] = {}
    for st in stages:
        for t, n in ((st.get("index") or {}).get("tasks") or {}).items():
            tasks[t] = max(tasks.get(t, 0), n)
    if tasks:
        out += ["## Rows indexed (largest stage)", _table(["task", "rows"], [[t, n] for t, n in sorted(tasks.items())]), ""]
    share = share_plot_png(node.get("mix_schedule") or {})
    if share:
        out += ["## Task mix", f"![task shares]({_png_uri(share)})", ""]
    out += text_section(node)
    if history:
        png = loss_curve_png(history, (node.get("mix_schedule") or {}).get("stages"))
        wall = sum(r["step_s"] for r in history)
        wait = sum(r["data_wait_s"] for r in history)
        later = history[1:] or history
        later_wait = sum(r["data_wait_s"] for r in later) / max(1e-9, sum(r["step_s"] for r in later))
        last = history[-max(1, len(history) // 10):]
        per_task: dict[str, list[float]] = {}
        for r in last:
            for t, v in r.get("tasks", {}).items():
                per_task.setdefault(t, []).append(v)
        padding = [r["padding"] for r in history if "padding" in r]
        out += ["## Loss", f"![loss]({_png_uri(png)})" if png else "", "",
                _table(["task", "loss (last 10% of steps)"], [[t, f"{np.mean(v):.4f}"] for t, v in sorted(per_task.items())]),
                "", routing_line(history), "",
                f"Throughput {len(history) / wall:.2f} steps/s. Time waiting for data: {100 * later_wait:.1f}% of "
                f"step time after the first step ({100 * wait / wall:.1f}% with it: the first wait includes starting "
                f"the decode pipeline). Decode errors: {sum(r['decode_errors'] for r in history)}."
                + (f" Padding: {100 * np.mean(padding):.1f}% of image tokens." if padding else ""), ""]
    if events:
        out += ["## Attempts", _table(["event", "from step", "stage", "checkpoint", "workers"],
                                      [[e["event"], e["step"], e.get("stage", ""), e.get("checkpoint") or "",
                                        e.get("world_size")] for e in events]), ""]
    if checkpoints:
        out += ["## Checkpoints", *[f"- `{c}`" for c in checkpoints], ""]
        if previews:
            png = preview_png(str(latest_checkpoint(run_dir)))
            if png:
                out += ["## Generations of the latest checkpoint",
                        "Each row: inputs (grey frame), generated (blue), target (green).", "",
                        f"![samples]({_png_uri(png)})", ""]
        out += ["## Use it", "```", f"unimontage sample --checkpoint {checkpoints[-1]} --inputs IMG "
                "--instruction '...' --out samples/", f"unimontage lineage {checkpoints[-1]}", "```"]
    runs = [{k: fr.get(k) for k in ("flow", "id", "name")} for fr in node.get("flow_runs") or []]
    out += ["", "## Lineage", "```json", json.dumps({"datasets": node.get("datasets"), "parents": node.get("parents"),
                                                    "flow_runs": runs, "code": node.get("code"),
                                                    "plan": node.get("plan")}, indent=1), "```"]
    return "\n".join(out)
