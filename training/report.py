"""The training-run card: what a reviewer needs to trust a run, as markdown.

Built only from the run folder (lineage.json, metrics.jsonl, events.jsonl, checkpoints):
datasets@versions, the loss curve overall and per task, throughput and data wait,
attempts (start / resume), rows left out by reason, and a few generations of the
latest checkpoint beside their targets. Images are inline PNG `data:` URIs.
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


def loss_curve_png(history: list[dict[str, Any]]) -> bytes | None:
    """Loss per step (thin) with a running mean (thick), and one running mean per task."""
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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


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
    from training.buckets import fit_to_bucket
    from training.inference import load_for_sampling, pick_bucket

    loaded = load_for_sampling(checkpoint)
    tc = loaded.config
    encoder = TextEncoder(tc.text_encoder or None)
    space = load_image_space(None if tc.image_space == "pixels" else tc.image_space)
    strips: list[np.ndarray] = []
    seen: dict[str, int] = {}
    for ref in tc.datasets:
        if len(strips) >= max_rows:
            break
        ds = lance_io.open_dataset(ref)
        for pos, task in enumerate(ds.to_table(columns=["task"]).column("task").to_pylist()):
            if len(strips) >= max_rows:
                break
            if seen.get(task, 0) >= per_task:
                continue
            row = ds.take([pos], columns=["instruction", "inputs", "outputs"]).to_pylist()[0]
            if not row["outputs"] or len(row["inputs"] or []) > loaded.model.config.max_inputs:
                continue
            seen[task] = seen.get(task, 0) + 1
            target = decode(row["outputs"][0]["data"])
            bucket = pick_bucket(loaded.buckets, target.shape[1], target.shape[0])
            inputs = [fit_to_bucket(decode(p["data"]), bucket, p["role"]) for p in row["inputs"] or []]
            generated = sample(loaded.model, inputs, row["instruction"] or "", steps=steps, cfg=2.0, seed=0,
                               size=(bucket.height, bucket.width), text_encoder=encoder, image_space=space)[0]
            tiles = [_tile(im, tile, INPUT) for im in inputs]
            tiles += [_tile(generated, tile, GENERATED), _tile(fit_to_bucket(target, bucket), tile, TARGET)]
            strips.append(np.concatenate(tiles, axis=1))
    if not strips:
        return None
    width = max(s.shape[1] for s in strips)
    rows = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    return encode_png(np.concatenate(rows, axis=0))


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
    out = [f"# Training run `{node['name']}`", "",
           f"Status **{node.get('status')}**, step {node.get('step')} of {node.get('max_steps')}; "
           f"model `{cfg.get('model')}` {cfg.get('model_overrides') or ''}, global batch {cfg.get('batch_size')}, "
           f"lr {cfg.get('lr')}, seed {cfg.get('seed')}; config `{node.get('config_hash', '')[:16]}`.", ""]
    out += ["## Datasets (pinned versions)", _table(
        ["dataset@version", "rows", "content hash"],
        [[f"`{ref}`", (node.get("dataset_facts", {}).get(ref) or {}).get("rows"),
          f"`{str((node.get('dataset_facts', {}).get(ref) or {}).get('content_hash'))[:16]}`"]
         for ref in node.get("datasets", [])]), ""]
    index = node.get("index", {})
    out += ["## Rows indexed", _table(["task", "rows"], [[t, n] for t, n in index.get("tasks", {}).items()]), ""]
    if index.get("skipped"):
        out += ["Rows left out (the model cannot take them): " +
                ", ".join(f"{k}: {v}" for k, v in index["skipped"].items()), ""]
    if history:
        png = loss_curve_png(history)
        wall = sum(r["step_s"] for r in history)
        wait = sum(r["data_wait_s"] for r in history)
        later = history[1:] or history
        later_wait = sum(r["data_wait_s"] for r in later) / max(1e-9, sum(r["step_s"] for r in later))
        last = history[-max(1, len(history) // 10):]
        per_task: dict[str, list[float]] = {}
        for r in last:
            for t, v in r.get("tasks", {}).items():
                per_task.setdefault(t, []).append(v)
        out += ["## Loss", f"![loss]({_png_uri(png)})" if png else "", "",
                _table(["task", "loss (last 10% of steps)"], [[t, f"{np.mean(v):.4f}"] for t, v in sorted(per_task.items())]),
                "", f"Throughput {len(history) / wall:.2f} steps/s. Time waiting for data: {100 * later_wait:.1f}% of "
                f"step time after the first step ({100 * wait / wall:.1f}% with it: the first wait includes starting "
                f"the decode pipeline). Decode errors: {sum(r['decode_errors'] for r in history)}.", ""]
    if events:
        out += ["## Attempts", _table(["event", "from step", "checkpoint", "workers"],
                                      [[e["event"], e["step"], e.get("checkpoint") or "", e.get("world_size")]
                                       for e in events]), ""]
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
