"""Lineage nodes of a training run and of each of its checkpoints.

Both live as `lineage.json` in their folder (`<out>/<name>/` and
`<out>/<name>/checkpoint_<step>/`) and point at the exact dataset versions they read
(`datasets`: "URI@VERSION"), so `unimontage lineage <checkpoint>` walks back through the
run to the dataset versions, their flow runs and sources (datagen/store/lineage.py). Keys
`datasets`, `parents` and `training_run` are the graph's edges; the rest describes the node.
"""

from __future__ import annotations

import json
from typing import Any

from datagen.store import lance_io
from datagen.store import lineage as graph
from training.config import TrainConfig

RUN_FILE = "lineage.json"


def dataset_facts(refs: list[str]) -> dict[str, dict[str, Any]]:
    """Content hash and rows of each pinned dataset version, as its own lineage records them."""
    facts = {}
    for ref in refs:
        node = graph.dataset_node(ref)
        facts[ref] = {"name": node.get("name"), "rows": node.get("rows"), "content_hash": node.get("content_hash"),
                      "product": node.get("product")}
    return facts


def run_node(*, name: str, run_dir: str, cfg: TrainConfig, datasets: list[str], stages: list[dict[str, Any]],
             plan: str, flow_run: dict[str, Any] | None, text: dict[str, Any] | None = None,
             mix: dict[str, Any] | None = None, status: str = "running") -> dict[str, Any]:
    """The run's node. `datasets` is every dataset version any stage reads (the graph's edges);
    `stages` records each stage's own inputs: pinned datasets (and the refs asked for, e.g. a
    `@reviewed` tag), row filter, flags, rows kept and left out by reason."""
    return {
        "kind": "training_run",
        "name": name,
        "path": run_dir,
        "uri": run_dir,
        "status": status,  # running | finished | failed
        "datasets": list(datasets),
        "dataset_facts": dataset_facts(datasets),
        "parents": [cfg.init_from] if cfg.init_from else [],
        "config": cfg.to_dict(),
        "config_hash": cfg.hash,
        "plan": plan,
        "stages": stages,
        "text": text or {},
        "mix_schedule": mix or {},
        "seed": cfg.seed,
        "step": 0,
        "max_steps": cfg.max_steps,
        "checkpoints": [],
        "metrics": {},
        "flow_run": flow_run,
        "code": graph.code_version(),
        "created_at": graph.now(),
        "updated_at": graph.now(),
        "env": graph.env_summary(),
    }


def checkpoint_node(*, path: str, run_dir: str, step: int, datasets: list[str], config_hash: str, plan: str,
                    metrics: dict[str, Any], code: dict[str, Any], parents: list[str] | None = None,
                    stage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A checkpoint's node: `datasets` are the versions its weights have seen (this stage and earlier)."""
    return {
        "kind": "checkpoint",
        "path": path,
        "uri": path,
        "step": step,
        "training_run": run_dir,
        "datasets": list(datasets),
        "parents": list(parents or []),
        "config_hash": config_hash,
        "data_position": {"next_step": step, "plan": plan},
        "stage": stage or {},
        "metrics": metrics,
        "code": code,
        "created_at": graph.now(),
        "host": graph.host(),
    }


def write_node(folder: str, node: dict[str, Any]) -> None:
    lance_io.write_text(f"{folder.rstrip('/')}/{RUN_FILE}", json.dumps(node, indent=1, sort_keys=True, default=str))


def read_node(folder: str) -> dict[str, Any] | None:
    text = lance_io.read_text(f"{folder.rstrip('/')}/{RUN_FILE}")
    return json.loads(text) if text else None


def finish_run_node(node: dict[str, Any], *, status: str, step: int, checkpoints: list[str],
                    metrics: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    node = dict(node)
    node.update(status=status, step=step, checkpoints=checkpoints, metrics=metrics, updated_at=graph.now())
    if error:
        node["error"] = error[:2000]
    return node
