"""The one Ray adapter: start or join Ray, and run shard work through Ray Data.

Local by default (sized for a 2-core / 24 GiB machine); `RAY_ADDRESS` joins a cluster
(KubeRay) with the same code. Work runs in an actor pool so per-worker setup (asset
packs, models) happens once per actor, not once per shard.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterator

import ray
import ray.data

# Local object store: enough for a few shards of 512px PNGs in flight, small enough to
# leave memory for workers and Lance writers on a 24 GiB machine.
DEFAULT_OBJECT_STORE_BYTES = int(float(os.environ.get("UNIMONTAGE_OBJECT_STORE_GB", "2")) * 2**30)


def ensure_ray(workers: int = 1) -> None:
    """Join `RAY_ADDRESS` if set, else start a local Ray with explicit resources."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return
    ray.init(
        # Never fewer CPUs than requested workers, or the actor pool would wait forever.
        num_cpus=max(os.cpu_count() or 1, workers),
        object_store_memory=DEFAULT_OBJECT_STORE_BYTES,
        include_dashboard=False,
        logging_level=logging.WARNING,
        configure_logging=True,
        log_to_driver=True,
    )


def _quiet_ray_data() -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the flow draws its own bar per shard
    ctx.enable_operator_progress_bars = False
    ctx.execution_options.verbose_progress = False
    ctx.print_on_execution_start = False


class _ShardActor:
    """Holds one shard function per actor (built once: setup is paid once); calls it per shard."""

    def __init__(self, factory: Callable[[], Callable[[int], dict[str, Any]]]):
        import cv2

        # A worker owns one CPU: OpenCV's own thread pool would oversubscribe the node.
        cv2.setNumThreads(1)
        self.fn = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        shards = [int(s) for s in batch["shard"]]
        return {"shard": shards, "result": [json.dumps(self.fn(k)) for k in shards]}


def _run_as_task(batch: dict[str, Any], factory) -> dict[str, Any]:
    """Stateless variant: cheap setups are built per shard, in tasks."""
    return _ShardActor(factory)(batch)


def run_shards(
    shards: list[int],
    factory: Callable[[], Callable[[int], dict[str, Any]]],
    *,
    workers: int,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    actors: bool = True,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (shard number, result) as shards finish, in completion order.

    `factory` is shipped once to each worker and returns the per-shard function there; a
    shard travels as its number, results are JSON-able dicts (fragment metadata and counts,
    never pixels).
    """
    if not shards:
        return
    ensure_ray(workers)
    _quiet_ray_data()
    ds = ray.data.from_items([{"shard": int(k)} for k in shards], override_num_blocks=len(shards))
    common = dict(batch_size=1, batch_format="numpy", num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    if actors:  # setup (asset packs, models) once per actor
        ds = ds.map_batches(_ShardActor, fn_constructor_kwargs={"factory": factory},
                            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(shards)))), **common)
    else:
        ds = ds.map_batches(_run_as_task, fn_kwargs={"factory": factory},
                            compute=ray.data.TaskPoolStrategy(size=max(1, workers)), **common)
    for row in ds.iter_rows():
        yield int(row["shard"]), json.loads(row["result"])
