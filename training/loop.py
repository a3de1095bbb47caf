"""The per-worker train loop. Ray Train runs one copy per worker; read it top to bottom.

    config -> run plan (all stages) -> model + optimizer -> resume -> image space -> one loop:
        next batch (Ray Data: native sizes, routing pairs, cached text)
        -> the step's stage: its LR schedule, dropouts, routing weight
        -> rectified-flow loss (+ routing loss) -> step -> all-reduce metrics
        -> every checkpoint_every steps and at every stage's end: checkpoint + lineage node (rank 0)

The same function runs on 1 CPU worker or many GPU workers: `prepare_model` wraps DDP
(gloo on CPU, NCCL on GPU) and each rank trains its slice of the global batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datagen.rng import sample_rng
from training import checkpointing
from training.config import TrainConfig
from training.lineage import checkpoint_node

LOSS_SALT = 0x4C4F5353  # "LOSS": the loss's noise stream, independent of the data plan's
STATS = 9  # fixed slots of the per-step all-reduce before the per-task sums and counts
METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then constant, cosine or linear to zero at max_steps (a stage's config:
    `step` counts from the stage's start and max_steps is its length)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule != "constant" and step >= cfg.warmup_steps:
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        if cfg.lr_schedule == "cosine":
            return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.lr * (1.0 - progress)
    return cfg.lr * warm


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """Timesteps, noise, text and reference dropout of (step, rank): a resumed run draws the same ones."""
    key = int(sample_rng(seed, step, LOSS_SALT, rank).integers(0, 2**62))
    return torch.Generator(device=device).manual_seed(key)


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _maybe_die(cfg: TrainConfig, step: int, rank: int, world: int, run_dir: str) -> None:
    """Chaos test: the last rank exits hard at `chaos_exit_at_step`, once per run (marker file)."""
    if step != cfg.chaos_exit_at_step or rank != world - 1:
        return
    marker = Path(run_dir) / f".chaos-exit-step-{step}"
    if marker.exists():
        return
    import ray.train

    # Die only after the controller has committed the reported checkpoints, as a worker
    # lost mid-step on a real cluster would: the restart must resume from the last one.
    ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
    marker.write_text(f"rank {rank} exited at step {step}\n")
    os._exit(1)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch

    from models.dit import UnifiedDiT
    from models.flow_matching import training_loss
    from models.image_space import load_image_space
    from models.routing import ramped_weight
    from training.batches import to_edit_batch
    from training.data import step_batches

    # ------------------------------------------------------------------ config
    cfg = TrainConfig.from_dict(loop_config["config"])
    run_dir: str = loop_config["run_dir"]
    plan = ray.get(loop_config["plan"])  # training.mixing.RunPlan, shared through the object store
    fingerprint: str = loop_config["plan_fingerprint"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.torch_threads)
    device = ray.train.torch.get_device()
    local_dir = Path(run_dir) if "://" not in run_dir else None
    model_cfg = cfg.model_config()
    total = plan.total_steps

    # ------------------------------------------------------------------ model and optimizer
    torch.manual_seed(cfg.seed)  # every rank builds the same initial weights
    model = UnifiedDiT(model_cfg)
    if cfg.init_from:  # local or object storage; its files checked against its lineage node
        model.load_state_dict(checkpointing.load_model(cfg.init_from, required=False).model.state_dict(), strict=True)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ resume
    start, history, resumed_from = 0, [], None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = checkpointing.restore(folder, model, optimizer, fingerprint)
        # Ray's path drops the URI scheme on object storage: name it as the run's lineage does
        start, history = state.next_step, state.history
        resumed_from = f"{run_dir.rstrip('/')}/{checkpoint.path.rstrip('/').rsplit('/', 1)[-1]}"
    # Which parameters a step uses depends on its batch (e.g. input-only paths sit idle when
    # a text-to-image batch has no inputs), so DDP must look for unused ones every step.
    ddp = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    space = load_image_space(None if cfg.image_space == "pixels" else cfg.image_space, device=device)
    event = {"event": "resume" if resumed_from else "start", "step": start,
             "stage": plan.plan_at(min(start, total - 1)).stage.name, "checkpoint": resumed_from,
             "world_size": world, "time": time.time()}
    if rank == 0 and local_dir:
        # The metric file restarts from the checkpoint's own history: steps trained after
        # it by a lost attempt are dropped, so each step appears exactly once.
        (local_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in history))
        _append(local_dir / EVENTS_FILE, event)
    elif rank == 0:  # object storage has no append: one small rewrite per attempt (history lives in checkpoints)
        from datagen.store import lance_io

        events = lance_io.read_text(f"{run_dir}/{EVENTS_FILE}") or ""
        lance_io.write_text(f"{run_dir}/{EVENTS_FILE}", events + json.dumps(event) + "\n")

    # ------------------------------------------------------------------ loop
    geometry = loop_config["geometry"]
    batches = step_batches(plan, rank, world, start, total, geometry=geometry, routing_pairs=cfg.routing_pairs,
                           text_dim=model_cfg.text_dim, data_cpus=cfg.data_cpus, data_tasks=cfg.data_tasks,
                           prefetch_steps=cfg.prefetch_steps)
    window: list[dict[str, Any]] = []
    for step in range(start, total):
        t0 = time.perf_counter()
        batch = next(batches)
        data_wait = time.perf_counter() - t0
        if batch.step != step:
            raise RuntimeError(f"data stream is at step {batch.step}, the loop at {step}")
        _maybe_die(cfg, step, rank, world, run_dir)
        stage_plan = plan.plans[batch.stage]
        stage, sc = stage_plan.stage, stage_plan.stage.config
        tasks = stage_plan.index.tasks

        lr = lr_at(step - stage.start, sc)
        for group in optimizer.param_groups:
            group["lr"], group["weight_decay"] = lr, sc.weight_decay
        edit = to_edit_batch(batch, stage_plan.index, space, device, sc.weight_mode, patch=model_cfg.patch_size,
                             max_inputs=model_cfg.max_inputs, layout=model_cfg.rope_layout, gap=model_cfg.rope_gap)
        routing_weight = ramped_weight(sc.routing_weight, step - stage.start, sc.routing_ramp_steps)
        out = training_loss(ddp, edit, generator=step_generator(cfg.seed, step, rank, device),
                            text_dropout=sc.text_dropout, ref_dropout=sc.ref_dropout, routing_weight=routing_weight,
                            routing_blocks=cfg.routing_blocks, denominator=batch.global_batch / world,
                            loss_space=cfg.loss_space)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), sc.grad_clip)) if sc.grad_clip else 0.0
        optimizer.step()

        # One all-reduce per step: global loss, per-task loss sums/counts, routing, tokens, timings, errors.
        n_tasks = len(tasks)
        counted = batch.ok & batch.real
        task_ids = torch.from_numpy(stage_plan.index.task[batch.rows].astype(np.int64))[counted]
        per_sample = out.per_sample.detach().float().cpu()[torch.from_numpy(counted)]
        stats = torch.zeros(STATS + 2 * n_tasks, dtype=torch.float64)
        stats[0], stats[1], stats[2] = float(out.loss.detach()), data_wait, float((~batch.ok & batch.real).sum())
        stats[3] = time.perf_counter() - t0
        if out.routing is not None:
            stats[4], stats[5], stats[6] = float(out.routing), float(out.routing_mass), 1.0
        stats[7] = float(edit.batch.inputs.mask.sum() + edit.batch.outputs.mask.sum())  # real image tokens
        stats[8] = float(len(batch) * (edit.batch.inputs.length + edit.batch.outputs.length))  # padded
        stats[STATS:STATS + n_tasks].index_add_(0, task_ids, per_sample.double())
        stats[STATS + n_tasks:].index_add_(0, task_ids, torch.ones(len(task_ids), dtype=torch.float64))
        if world > 1:
            torch.distributed.all_reduce(stats)
        sums, counts = stats[STATS:STATS + n_tasks], stats[STATS + n_tasks:]
        record = {
            "step": step,
            "stage": stage.name,
            "loss": float(stats[0]) / world,
            "tasks": {tasks[t]: float(sums[t] / counts[t]) for t in range(n_tasks) if counts[t] > 0},
            "task_samples": {tasks[t]: int(counts[t]) for t in range(n_tasks) if counts[t] > 0},  # the card's counts
            "lr": lr,
            "grad_norm": grad_norm,
            "samples": batch.global_batch,
            "tokens": int(stats[7]),
            "padding": 1.0 - float(stats[7]) / max(1.0, float(stats[8])),
            "data_wait_s": float(stats[1]) / world,
            "step_s": float(stats[3]) / world,
            "decode_errors": int(stats[2]),
            "batch_digest": hashlib.sha1(json.dumps(batch.sample_ids).encode()).hexdigest()[:16],
        }
        if sc.routing_weight:  # the weight this step used, after the stage's ramp
            record["routing_weight"] = routing_weight
        if stats[6] > 0:  # ranks that had routing pairs
            record["routing"] = float(stats[4] / stats[6])
            record["routing_mass"] = float(stats[5] / stats[6])
        if batch.errors:
            record["errors"] = batch.errors[:8]
        history.append(record)
        window.append(record)
        if rank == 0 and local_dir:
            _append(local_dir / METRICS_FILE, record)

        # ------------------------------------------------------------------ report / checkpoint
        done = step + 1
        # Every stage ends on a checkpoint: the next stage (its data, LR, resolution) can always
        # be resumed or re-run from exactly where the previous one finished.
        is_ckpt = done % cfg.checkpoint_every == 0 or done == stage.stop
        if not is_ckpt and done % cfg.log_every:
            continue
        metrics = summarize(window, done)
        window = []
        if not is_ckpt:
            ray.train.report(metrics)
            continue
        name = f"checkpoint_{done:08d}"
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                # What these weights have seen: the datasets of this stage and every earlier one.
                datasets = list(dict.fromkeys(d for p in plan.plans[: stage.index + 1] for d in p.index.datasets))
                path = f"{run_dir.rstrip('/')}/{name}"
                node = checkpoint_node(path=path, run_dir=run_dir, step=done, datasets=datasets,
                                       config_hash=cfg.hash, plan=fingerprint, metrics=metrics,
                                       code=loop_config["code"], parents=[cfg.init_from] if cfg.init_from else [],
                                       stage={"name": stage.name, "index": stage.index, "start": stage.start,
                                              "stop": stage.stop, "done": done == stage.stop})
                state = checkpointing.TrainState(next_step=done, plan=fingerprint, config=cfg.to_dict(),
                                                 history=history, datasets=datasets, stage=stage.name)
                extra = {"train_config": cfg.to_dict(), "datasets": datasets, "stage": stage.name,
                         "resolution": sc.resolution, "geometry": geometry, "tasks": tasks}
                checkpointing.save(tmp, model, optimizer, state, node, extra)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=name)


def summarize(window: list[dict[str, Any]], done: int) -> dict[str, Any]:
    """Metrics of the steps since the last report, as Ray Train receives them."""
    wall = sum(r["step_s"] for r in window)
    per_task: dict[str, list[float]] = {}
    for r in window:
        for task, loss in r["tasks"].items():
            per_task.setdefault(task, []).append(loss)
    metrics = {
        "step": done,
        "stage": window[-1]["stage"],
        "loss": float(np.mean([r["loss"] for r in window])),
        "lr": window[-1]["lr"],
        "steps_per_s": len(window) / wall if wall > 0 else 0.0,
        "data_wait_frac": sum(r["data_wait_s"] for r in window) / wall if wall > 0 else 0.0,
        "decode_errors": sum(r["decode_errors"] for r in window),
    }
    routed = [r["routing"] for r in window if "routing" in r]
    if routed:
        metrics["routing"] = float(np.mean(routed))
        metrics["routing_mass"] = float(np.mean([r["routing_mass"] for r in window if "routing" in r]))
    metrics.update({f"loss/{task}": float(np.mean(v)) for task, v in sorted(per_task.items())})
    return metrics
