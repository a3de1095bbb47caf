"""The Ray Train job: pin datasets -> row index -> TorchTrainer -> checkpoints + lineage.

    result = run_training(load_config("training/configs/tiny.yaml"), out="runs")

Resume is Ray Train's own: the same `RunConfig(storage_path=out, name=...)` finds the
run's latest committed checkpoint, and the loop continues from its step. The default run
name is derived from the config hash, so re-running the same command resumes (or, for a
finished run, returns at once). Worker failures inside a run restart the worker group
from the last checkpoint up to `max_failures` times (`FailureConfig`).

Everything that can be wrong with a run (missing dataset or version, missing text encoder,
no trainable rows, too few CPUs left for Ray Data) raises before any worker starts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.store import lance_io
from datagen.store import lineage as graph
from training import lineage
from training.buckets import make_buckets
from training.config import TrainConfig
from training.index import RowIndex, build_index, pin
from training.loop import EVENTS_FILE, METRICS_FILE, train_loop_per_worker
from training.mixing import StepPlan

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    name: str
    run_dir: str
    checkpoint: str | None  # the latest checkpoint folder
    step: int
    metrics: dict[str, Any]  # last reported (rank 0)
    datasets: list[str]  # pinned URI@VERSION refs
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per step
    events: list[dict[str, Any]] = field(default_factory=list)  # start / resume of each attempt
    lineage: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "run_dir": self.run_dir, "checkpoint": self.checkpoint, "step": self.step,
                "metrics": self.metrics, "datasets": self.datasets,
                "attempts": [(e["event"], e["step"]) for e in self.events]}


# --------------------------------------------------------------------------- preflight
def bucket_multiple(cfg: TrainConfig) -> int:
    """Bucket sides must split into whole patches of the image space."""
    if cfg.bucket_multiple:
        return cfg.bucket_multiple
    patch = cfg.model_config().patch_size
    return patch if cfg.image_space == "pixels" else patch * 8  # diffusers VAEs downsample by 8


def check_text_encoder(cfg: TrainConfig) -> None:
    from models.text_encoder import check_hf_folder, default_text_encoder_path

    path = Path(cfg.text_encoder) if cfg.text_encoder else default_text_encoder_path()
    conf = check_hf_folder(path)
    dim = int(conf.get("hidden_size") or conf.get("d_model") or 0)
    want = cfg.model_config().text_dim
    if dim and dim != want:
        raise ValueError(f"text encoder {path} gives {dim}-d features but the model expects text_dim={want}; "
                         f"--set model_overrides.text_dim={dim}")


def check_resources(cfg: TrainConfig) -> None:
    """Train workers must leave CPU to Ray Data, or the first batch never arrives."""
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    train = cfg.num_workers * cfg.cpus_per_worker
    if total - train < cfg.data_cpus:
        raise ValueError(f"Ray has {total:g} CPUs; {cfg.num_workers} workers x {cfg.cpus_per_worker:g} CPU leave "
                         f"{total - train:g}, less than one Ray Data decode task ({cfg.data_cpus:g}), so the first batch would "
                         "never arrive: lower cpus_per_worker or num_workers, or start Ray with more CPUs")
    if cfg.use_gpu and ray.cluster_resources().get("GPU", 0.0) < cfg.num_workers:
        raise ValueError(f"use_gpu=True needs {cfg.num_workers} GPUs; the cluster has "
                         f"{ray.cluster_resources().get('GPU', 0.0):g}")


def run_name(cfg: TrainConfig, datasets: list[str]) -> str:
    return cfg.name or f"train-{graph.config_hash({'config': cfg.hash, 'datasets': datasets})[:12]}"


def prepare(cfg: TrainConfig) -> tuple[list[str], RowIndex, StepPlan]:
    """Pin dataset versions, index their rows (Ray Data), build the step plan."""
    datasets = pin(cfg.datasets)
    model = cfg.model_config()
    buckets = make_buckets(cfg.resolution, cfg.aspect_ratios, bucket_multiple(cfg))
    index = build_index(datasets, buckets, max_inputs=model.max_inputs, max_outputs=model.max_outputs,
                        drawable_zero_weight=cfg.weight_mode != "sample")
    return datasets, index, StepPlan(index, cfg)


# --------------------------------------------------------------------------- the job
def run_training(cfg: TrainConfig, *, out: str = "runs", flow_run: dict[str, Any] | None = None) -> TrainResult:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from compute.ray_adapter import ensure_ray

    cfg.validate()
    check_text_encoder(cfg)
    if cfg.init_from and not (Path(cfg.init_from) / "config.json").is_file():
        raise FileNotFoundError(f"init_from: missing config.json in checkpoint folder {cfg.init_from}")
    ensure_ray(cfg.num_workers)
    check_resources(cfg)
    datasets, index, plan = prepare(cfg)
    pinned = cfg.replace(datasets=datasets)  # the run records exact versions, whatever was asked
    storage = lance_io.normalise_uri(out)
    name = run_name(pinned, datasets)
    run_dir = f"{storage}/{name}"
    fingerprint = plan.fingerprint()

    node = lineage.read_node(run_dir)
    if node and node.get("config_hash") != pinned.hash:
        raise ValueError(f"{run_dir} holds a run with another config ({node.get('config_hash', '')[:12]}); "
                         "choose another --set name=... or --out")
    if node and node.get("plan") != fingerprint and list_checkpoints(run_dir):
        raise ValueError(f"{run_dir} has checkpoints of another data plan (the indexed rows changed); "
                         "choose another --set name=... or --out")
    if node is None or node.get("plan") != fingerprint:
        node = lineage.run_node(name=name, run_dir=run_dir, cfg=pinned, datasets=datasets,
                                index_summary=index.summary(), plan=fingerprint, flow_run=flow_run)
    node.update(status="running", updated_at=graph.now())
    if flow_run and flow_run not in node.setdefault("flow_runs", []):
        node["flow_runs"].append(flow_run)
    lineage.write_node(run_dir, node)

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": pinned.to_dict(), "run_dir": run_dir, "plan": ray.put(plan),
                           "plan_fingerprint": fingerprint, "code": node["code"]},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})}),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints)),
    )
    error = None
    try:
        result = trainer.fit()
        error = str(result.error) if result.error else None
    except Exception as exc:  # TrainingFailedError after max_failures: record, then re-raise
        error = f"{type(exc).__name__}: {exc}"
        _finish(node, run_dir, "failed", error)
        raise
    res = _finish(node, run_dir, "failed" if error else "finished", error)
    if error:
        raise RuntimeError(f"training run {run_dir} failed: {error}")
    return res


def _finish(node: dict[str, Any], run_dir: str, status: str, error: str | None) -> TrainResult:
    checkpoints = list_checkpoints(run_dir)
    history, events = read_history(run_dir), read_events(run_dir)
    latest = checkpoints[-1] if checkpoints else None
    last = (lineage.read_node(latest) or {}) if latest else {}
    metrics, step = last.get("metrics", {}), int(last.get("step", 0))
    node = lineage.finish_run_node(node, status=status, step=step, checkpoints=checkpoints, metrics=metrics,
                                   error=error)
    lineage.write_node(run_dir, node)
    return TrainResult(name=node["name"], run_dir=run_dir, checkpoint=latest, step=step, metrics=metrics,
                       datasets=node["datasets"], history=history, events=events, lineage=node)


# --------------------------------------------------------------------------- reading a run back
def list_checkpoints(run_dir: str) -> list[str]:
    """Committed checkpoint folders of a run, oldest first (a folder without lineage.json is partial)."""
    root = Path(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("checkpoint_*") if (p / lineage.RUN_FILE).is_file() and (p / "config.json").is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.name)]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_history(run_dir: str) -> list[dict[str, Any]]:
    return _jsonl(Path(run_dir) / METRICS_FILE)


def read_events(run_dir: str) -> list[dict[str, Any]]:
    return _jsonl(Path(run_dir) / EVENTS_FILE)


def latest_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder -> its latest checkpoint."""
    p = Path(path)
    if (p / "config.json").is_file():
        return p
    found = list_checkpoints(str(p))
    if not found:
        raise FileNotFoundError(f"no checkpoint in {p}: expected config.json + model.safetensors there, "
                                "or checkpoint_* folders of a training run")
    return Path(found[-1])
