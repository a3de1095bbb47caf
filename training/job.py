"""The Ray Train job: pin datasets -> text cache -> row index per stage -> TorchTrainer ->
checkpoints + lineage.

    result = run_training(load_config("training/configs/imontage.yaml"), out="runs")

Resume is Ray Train's own: the same `RunConfig(storage_path=out, name=...)` finds the
run's latest committed checkpoint, and the loop continues from its step. The default run
name is derived from the config hash, so re-running the same command resumes (or, for a
finished run, returns at once). Worker failures inside a run restart the worker group
from the last checkpoint up to `max_failures` times (`FailureConfig`).

Every stage's datasets are pinned when the run starts (a `@reviewed` tag resolves to the
version it names then), so the run hash, and therefore resume, is about exact versions.
Everything that can be wrong with a run (missing dataset, version or tag, missing text
encoder, a stage with no trainable rows, too few CPUs left for Ray Data) raises before any
worker starts.
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
from training import checkpointing, lineage, text_cache
from training.config import TrainConfig
from training.index import Geometry, build_index, pin, read_shapes
from training.loop import EVENTS_FILE, METRICS_FILE, train_loop_per_worker
from training.mixing import RunPlan, StepPlan
from training.stages import describe, resolve_stages

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
# Diffusers VAEs downsample by 8 (SD, SDXL, FLUX, TAESD); the factor of a loaded VAE is checked
# against this when the first batch is encoded.
VAE_DOWNSAMPLE = 8


def geometry(cfg: TrainConfig) -> Geometry:
    """Image sides are multiples of `multiple` pixels; one token covers token_px x token_px pixels."""
    model = cfg.model_config()
    token_px = model.patch_size * (1 if cfg.image_space == "pixels" else VAE_DOWNSAMPLE)
    multiple = cfg.size_multiple or token_px
    if multiple % token_px:
        raise ValueError(f"size_multiple {multiple} must be a multiple of a token's {token_px} pixels")
    return Geometry(multiple=multiple, token_px=token_px, max_inputs=model.max_inputs, max_outputs=model.max_outputs)


def text_encoder_path(cfg: TrainConfig) -> Path:
    from models.text_encoder import default_text_encoder_path

    return Path(cfg.text_encoder) if cfg.text_encoder else default_text_encoder_path()


def check_text_encoder(cfg: TrainConfig) -> None:
    from models.text_encoder import check_hf_folder

    path = text_encoder_path(cfg)
    conf = check_hf_folder(path)
    dim = int(conf.get("hidden_size") or conf.get("d_model") or 0)
    want = cfg.model_config().text_dim
    if dim and dim != want:
        raise ValueError(f"text encoder {path} gives {dim}-d features but the model expects text_dim={want}; "
                         f"--set model_overrides.text_dim={dim}")
    limit = conf.get("max_position_embeddings") if conf.get("model_type") not in ("t5", "mt5", "umt5") else None
    if limit and cfg.text_max_tokens > int(limit):
        raise ValueError(f"text_max_tokens {cfg.text_max_tokens} exceeds the {limit} positions of the text encoder "
                         f"{path}: --set text_max_tokens={limit}, or use a longer-context encoder (--set text_encoder=DIR)")


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


def check_init_from(uri: str) -> None:
    """The starting checkpoint exists and its files match its lineage node (when it has one)."""
    if lance_io.read_text(f"{lance_io.normalise_uri(uri)}/config.json") is None:
        raise FileNotFoundError(f"init_from: missing config.json in checkpoint folder {uri}")
    checkpointing.verify(uri, required=False)


RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of the checkpoints it committed


def ray_latest_checkpoint(run_dir: str) -> str | None:
    """The folder name of the checkpoint Ray Train resumes `run_dir` from (its snapshot's latest
    committed one; checkpoints still pending validation are not it), or None."""
    text = lance_io.read_text(f"{run_dir}/{RAY_SNAPSHOT}")
    try:
        latest = (json.loads(text) if text else {}).get("latest_checkpoint_result") or {}
    except json.JSONDecodeError:
        return None  # Ray reads its own snapshot and says what is wrong with it
    return latest.get("checkpoint_dir_name")


def check_resume_point(run_dir: str) -> str | None:
    """The checkpoint Ray Train will resume from (the newest it committed) must match its lineage
    node: a corrupted or cut one is refused here, before any worker starts, naming the file."""
    name = ray_latest_checkpoint(run_dir)
    if not name:
        return None
    folder = f"{run_dir}/{name}"
    try:
        checkpointing.verify(folder)
    except checkpointing.CheckpointError as exc:
        raise checkpointing.CheckpointError(
            f"cannot resume {run_dir}: {exc}. Start a new run (--set name=NEW) with --set init_from=<an earlier "
            "checkpoint that `unimontage lineage CKPT --verify` accepts>") from None
    return folder


def run_name(cfg: TrainConfig, datasets: list[str]) -> str:
    return cfg.name or f"train-{graph.config_hash({'config': cfg.hash, 'datasets': datasets})[:12]}"


def pin_config(cfg: TrainConfig) -> tuple[TrainConfig, list[dict[str, Any]]]:
    """The config with every dataset ref pinned to `URI@VERSION` (tags and "latest" resolved
    now, once), and per stage the refs it asked for and the versions they resolved to."""
    pins: dict[str, str] = {}

    def resolve(refs: list[str]) -> list[str]:
        missing = [r for r in refs if r not in pins]
        for ref, pinned in zip(missing, pin(missing) if missing else []):
            pins[ref] = pinned
        out = [pins[r] for r in refs]
        if len(set(out)) != len(out):
            raise ValueError(f"the same dataset version is listed twice: {out}")
        return out

    top = resolve(cfg.datasets) if cfg.datasets else []
    stages = [dict(st, datasets=resolve(st["datasets"])) if st.get("datasets") else dict(st) for st in cfg.stages]
    pinned = cfg.replace(datasets=top, stages=stages)
    asked = [{"asked": list(st.config.datasets), "pinned": pin_list} for st, pin_list in
             zip(resolve_stages(cfg), [s.config.datasets for s in resolve_stages(pinned)])]
    return pinned, asked


@dataclass
class Prepared:
    cfg: TrainConfig  # every dataset pinned
    plan: RunPlan
    geometry: Geometry
    stages: list[dict[str, Any]]  # per stage: what it reads and how (lineage node and card)
    text: dict[str, Any]  # text facts: max tokens, instructions cut, longest

    @property
    def datasets(self) -> list[str]:
        """Every dataset version any stage reads, in first-use order."""
        return list(dict.fromkeys(d for p in self.plan.plans for d in p.index.datasets))


def prepare(cfg: TrainConfig, storage: str) -> Prepared:
    """Pin dataset versions, index each stage's rows (Ray Data), encode instructions into the
    text cache under `storage`, build the run plan."""
    from models.text_encoder import TextEncoder

    pinned, asked = pin_config(cfg)
    stages = resolve_stages(pinned)
    for st in stages:
        if not st.config.datasets:
            raise ValueError(f"stage {st.name!r} has no datasets: pass --dataset URI[@VERSION] or set its datasets")
    geo = geometry(pinned)
    refs = list(dict.fromkeys(d for st in stages for d in st.config.datasets))
    shapes = {ref: read_shapes(ref) for ref in refs}
    encoder = TextEncoder(text_encoder_path(cfg), max_length=cfg.text_max_tokens)
    key = text_cache.encoder_key(encoder.path, cfg.text_max_tokens)
    texts, text_stats = {}, []
    for ref in refs:
        table = shapes[ref]
        rows = [text_cache.final_text(t, int(n), cfg.text_prefix_outputs) for t, n in
                zip(table.column("instruction").to_pylist(), table.column("n_out").to_pylist())] if table.num_rows else []
        cache_ref, positions, stats = text_cache.build(text_cache.cache_uri(storage, ref, key), rows, encoder)
        texts[ref] = (cache_ref, positions)
        text_stats.append(stats)
    text = text_cache.summary(text_stats, cfg.text_max_tokens) | {"encoder": str(encoder.path),
                                                                   "prefix_outputs": cfg.text_prefix_outputs}
    if text["truncated"]:
        log.warning("%d of %d distinct instructions (%d rows) are longer than text_max_tokens=%d (longest %d tokens) "
                    "and will be cut; raise text_max_tokens or use a longer-context encoder", text["truncated"],
                    text["texts"], text["truncated_rows"], cfg.text_max_tokens, text["longest"])
    plans, records = [], []
    for st, refs_asked in zip(stages, asked):
        index = build_index(list(st.config.datasets), st.config, geo, shapes, texts)
        plans.append(StepPlan(index, st, pinned.seed))
        records.append(describe(st) | {"datasets_asked": refs_asked["asked"], "index": index.summary()})
    return Prepared(pinned, RunPlan(plans), geo, records, text)


# --------------------------------------------------------------------------- the job
def run_training(cfg: TrainConfig, *, out: str = "runs", flow_run: dict[str, Any] | None = None) -> TrainResult:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from compute.ray_adapter import ensure_ray

    cfg.validate()
    check_text_encoder(cfg)
    if cfg.init_from:
        check_init_from(cfg.init_from)
    ensure_ray(cfg.num_workers)
    check_resources(cfg)
    storage = lance_io.normalise_uri(out)
    prep = prepare(cfg, storage)
    pinned, plan = prep.cfg, prep.plan  # the run records exact versions, whatever was asked
    name = run_name(pinned, prep.datasets)
    run_dir = f"{storage}/{name}"
    fingerprint = plan.fingerprint()

    check_resume_point(run_dir)
    node = lineage.read_node(run_dir)
    if node and node.get("config_hash") != pinned.hash:
        raise ValueError(f"{run_dir} holds a run with another config ({node.get('config_hash', '')[:12]}); "
                         "choose another --set name=... or --out")
    if node and node.get("plan") != fingerprint and list_checkpoints(run_dir):
        raise ValueError(f"{run_dir} has checkpoints of another data plan (the indexed rows changed); "
                         "choose another --set name=... or --out")
    if node is None or node.get("plan") != fingerprint:
        node = lineage.run_node(name=name, run_dir=run_dir, cfg=pinned, datasets=prep.datasets, stages=prep.stages,
                                plan=fingerprint, flow_run=flow_run, text=prep.text, mix=plan.share_schedule())
    node.update(status="running", updated_at=graph.now())
    if flow_run and flow_run not in node.setdefault("flow_runs", []):
        node["flow_runs"].append(flow_run)
    lineage.write_node(run_dir, node)

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": pinned.to_dict(), "run_dir": run_dir, "plan": ray.put(plan),
                           "plan_fingerprint": fingerprint, "code": node["code"],
                           "geometry": {"multiple": prep.geometry.multiple, "token_px": prep.geometry.token_px}},
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
        gone = unreadable_datasets(prep.datasets)
        _finish(node, run_dir, "failed", "; ".join(gone + [error]))
        if gone:
            raise RuntimeError(f"training run {run_dir} failed: {'; '.join(gone)}") from exc
        raise
    gone = unreadable_datasets(prep.datasets) if error else []
    res = _finish(node, run_dir, "failed" if error else "finished", "; ".join(gone + [error]) if error else None)
    if error:
        raise RuntimeError(f"training run {run_dir} failed: {'; '.join(gone + [error])}")
    return res


def _missing_data_files(ds) -> list[str]:
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(ds.uri if "://" in ds.uri else lance_io.normalise_uri(ds.uri))
    return [f"missing data file {d.path}" for frag in ds.get_fragments() for d in frag.data_files()
            if fs.get_file_info(f"{root}/data/{d.path}").type != pafs.FileType.File]


def unreadable_datasets(refs: list[str]) -> list[str]:
    """Why a pinned dataset version can no longer be read, one sentence each (none: all readable).

    A run reads exactly the versions it pinned; compaction only adds a version, but removing old
    versions (Lance `cleanup_old_versions`) while a run reads one takes its rows away mid-run."""
    out = []
    for ref in refs:
        try:
            missing = _missing_data_files(lance_io.open_dataset(ref))
        except Exception as exc:  # any failure to open is the answer, not a new error
            missing = [f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"]
        if missing:
            out.append(f"dataset version {ref}, which this run pinned, is no longer readable ({missing[0]}): its "
                       "files were removed while the run read them (e.g. Lance cleanup_old_versions after a "
                       "compaction). Keep a version until the runs that pin it end; re-run to pin the current one")
    return out


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
# Every reader takes a local folder or an object-storage URI (`s3://bucket/runs/<name>`).
def list_checkpoints(run_dir: str) -> list[str]:
    """Complete checkpoint folders of a run, oldest first. A folder without its lineage node, or
    missing or shorter files than the node records, is partial (a writer killed mid-save, a copy
    cut short) and never listed, so it is never taken as the latest."""
    found = [d for d in lance_io.list_dirs(lance_io.normalise_uri(run_dir))
             if d.rsplit("/", 1)[-1].startswith("checkpoint_") and graph.checkpoint_complete(d)]
    return sorted(found, key=lambda d: d.rsplit("/", 1)[-1])


def _jsonl(uri: str) -> list[dict[str, Any]]:
    text = lance_io.read_text(uri)
    return [json.loads(line) for line in text.splitlines() if line.strip()] if text else []


def read_history(run_dir: str) -> list[dict[str, Any]]:
    """One record per step: the run's metrics file (local runs), else the history the latest
    checkpoint carries (runs on object storage, where the loop does not append per step)."""
    history = _jsonl(f"{lance_io.normalise_uri(run_dir)}/{METRICS_FILE}")
    checkpoints = [] if history else list_checkpoints(run_dir)
    if checkpoints:
        text = lance_io.read_text(f"{checkpoints[-1]}/{checkpointing.STATE_FILE}")
        history = (json.loads(text).get("history") or []) if text else []
    return history


def read_events(run_dir: str) -> list[dict[str, Any]]:
    return _jsonl(f"{lance_io.normalise_uri(run_dir)}/{EVENTS_FILE}")


def latest_checkpoint(path: str | os.PathLike) -> str:
    """A checkpoint folder, or a run folder -> its latest complete checkpoint (a local path or URI)."""
    uri = lance_io.normalise_uri(str(path))
    if lance_io.read_text(f"{uri}/config.json") is not None:
        return uri
    found = list_checkpoints(uri)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {uri}: expected config.json + model.safetensors there, "
                                "or complete checkpoint_* folders of a training run")
    return found[-1]
