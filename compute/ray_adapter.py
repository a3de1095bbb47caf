"""The one Ray adapter: start or join Ray, configure Ray Data, and run shard work on workers.

Where Ray runs: `RAY_ADDRESS` joins that cluster (KubeRay, `ray start`); without it, a Ray
already running on this machine (`ray start --head`) is joined; otherwise a private local
Ray starts, sized explicitly and bound to 127.0.0.1. A dashboard address (`http://...`) is
not joined: dataset flows submit their runs there as Ray Jobs (compute/ray_jobs.py).

How shards run: each shard is a unit of work sent to a worker (a Ray actor holding the
product's setup when setup is expensive, else a stateless task). A worker process that dies
(segfault in a codec, OOM kill) or a unit that outlives its deadline never hangs the run:
the unit is split in half and the halves re-run, down to single items; a single item that
still crashes or times out after `ITEM_ATTEMPTS` attempts is reported as failed, with
`worker_crashed` or `timeout`, for the harness to write as its reject row. Every retry is
bounded; nothing here retries forever.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import ray

# Local object store: enough for a few shards of 512px PNGs in flight, small enough to
# leave memory for workers and Lance writers on a 24 GiB machine.
DEFAULT_OBJECT_STORE_BYTES = int(float(os.environ.get("UNIMONTAGE_OBJECT_STORE_GB", "2")) * 2**30)
ITEM_ATTEMPTS = 2  # a single item is tried this often before its crash or time-out is final
SETUP_GRACE_S = 600.0  # default extra deadline for a worker's first unit: its setup (weights, assets) runs then
log = logging.getLogger(__name__)


def _running_local_cluster() -> str | None:
    """The address of a live Ray started with `ray start` on this machine (default temp dir), if any.

    The address file outlives a cluster whose processes were killed; it counts only while a
    GCS process with that address is running."""
    try:
        from ray._private.services import find_bootstrap_address, find_gcs_addresses

        address = find_bootstrap_address(None)
        return address if address and address in find_gcs_addresses() else None
    except Exception:  # no cluster, or a Ray without these helpers
        return None


def ensure_ray(workers: int = 1) -> None:
    """Join `RAY_ADDRESS`, else a running local cluster, else start a private local Ray."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS") or _running_local_cluster()
    if address and address.startswith(("http://", "https://")):
        raise ValueError(f"RAY_ADDRESS={address} is a Ray dashboard: dataset flows submit their runs there as Ray "
                         "Jobs; code that needs a Ray driver in this process needs the cluster's GCS address "
                         "(host:6379) or runs as a Ray Job itself")
    if address:
        # A cluster has its own resources: passing num_cpus when joining is an error.
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return
    ray.init(
        address="local",  # never join by accident: this branch means "none is running"
        # Never fewer CPUs than requested workers, or the pool would wait forever.
        num_cpus=max(os.cpu_count() or 1, workers),
        object_store_memory=DEFAULT_OBJECT_STORE_BYTES,
        include_dashboard=False,
        # A private Ray advertises loopback only. Ray 2.60 binds its gRPC servers on every
        # interface with no option to narrow them; the token auth it turns on for a new
        # local cluster is what guards them. Its dashboard is off.
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
        configure_logging=True,
        log_to_driver=True,
    )


def configure_data(*, verbose: bool = False, preserve_order: bool | None = None) -> Any:
    """The one place Ray Data is configured: progress bars off (callers draw their own).

    `preserve_order=True`: blocks leave in plan order, whatever finishes first (training's
    step batches); None leaves the process's setting as it is.
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = verbose
    ctx.enable_operator_progress_bars = verbose
    ctx.execution_options.verbose_progress = verbose
    ctx.print_on_execution_start = verbose
    if preserve_order is not None:
        ctx.execution_options.preserve_order = preserve_order
    return ctx


# --------------------------------------------------------------------------- workers
def _where() -> dict[str, str]:
    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address()}


class _ShardWorker:
    """A Ray actor: builds the unit function once (the product's setup), then runs units."""

    def __init__(self, factory: Callable[[], Callable[[int, int, int], dict[str, Any]]]):
        import cv2

        # A worker owns one CPU: OpenCV's own thread pool would oversubscribe the node.
        cv2.setNumThreads(1)
        self.fn = factory()

    def ready(self) -> bool:
        return True

    def run(self, shard: int, lo: int, hi: int) -> str:
        return json.dumps(self.fn(shard, lo, hi) | {"where": _where()})


def _run_in_task(factory, shard: int, lo: int, hi: int) -> str:
    """The stateless variant: a cheap setup is built per unit."""
    return _ShardWorker(factory).run(shard, lo, hi)


@dataclass
class Unit:
    shard: int
    lo: int  # item offsets within the shard, [lo, hi)
    hi: int
    attempt: int = 1


@dataclass
class UnitDone:
    shard: int
    lo: int
    hi: int
    result: dict[str, Any]


@dataclass
class ItemFailed:
    shard: int
    offset: int  # the item's offset within its shard
    reason: str  # worker_crashed | timeout | error:<type>
    detail: str


def _classify(exc: BaseException) -> tuple[str, str]:
    text = str(exc).strip().splitlines()
    detail = (text[-1] if text else type(exc).__name__)[:500]
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "worker_crashed", f"killed for memory: {detail}"
    if isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError)):
        return "worker_crashed", f"the worker process died: {detail}"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return f"error:{type(cause).__name__}", detail
    return f"error:{type(exc).__name__}", detail


class _Slot:
    """One worker place in the pool: an actor (rebuilt after a crash) or a task slot.

    An actor's setup is timed on its own (a `ready` call queued before the first unit), so a
    unit's deadline counts only its items; a task builds its setup inside the unit, so its
    deadline includes the setup allowance."""

    def __init__(self, make: Callable[[], Any] | None):
        self.make, self.actor = make, None
        self.unit: Unit | None = None
        self.ref: Any = None
        self.ready_ref: Any = None
        self.deadline = 0.0

    def submit(self, unit: Unit, submit_task: Callable[[Unit], Any], item_timeout_s: float,
               setup_timeout_s: float) -> None:
        self.unit = unit
        self.budget = item_timeout_s * (unit.hi - unit.lo)
        if self.make is None:
            self.ref = submit_task(unit)
            self.deadline = time.monotonic() + setup_timeout_s + self.budget
            return
        if self.actor is None:
            self.actor = self.make()
            self.ready_ref = self.actor.ready.remote()
        self.ref = self.actor.run.remote(unit.shard, unit.lo, unit.hi)
        self.deadline = time.monotonic() + (setup_timeout_s if self.ready_ref is not None else 0.0) + self.budget

    def setup_done(self) -> None:
        """The actor finished its setup: from now on the unit has only its items' time."""
        self.ready_ref = None
        self.deadline = time.monotonic() + self.budget

    def discard(self) -> None:
        """After a crash or a time-out: kill the process so no work of it lingers."""
        if self.actor is not None:
            ray.kill(self.actor, no_restart=True)
            self.actor = None
        elif self.ref is not None:
            ray.cancel(self.ref, force=True)
        self.unit, self.ref, self.ready_ref = None, None, None


def run_shards(
    shards: dict[int, int],
    factory: Callable[[], Callable[[int, int, int], dict[str, Any]]],
    *,
    workers: int,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    actors: bool = True,
    item_timeout_s: float = 600.0,
    setup_timeout_s: float = SETUP_GRACE_S,
) -> Iterator[UnitDone | ItemFailed]:
    """Run `shards` ({shard number: item count}) and yield what happened, as it happens.

    `factory` is shipped to each worker once and returns `fn(shard, lo, hi) -> result`
    there (results are small JSON-able dicts: fragment metadata and counts, never pixels).
    Every item of every shard ends in exactly one `UnitDone` range or one `ItemFailed`.
    """
    if not shards:
        return
    ensure_ray(workers)
    queue = deque(Unit(k, 0, n) for k, n in sorted(shards.items()) if n > 0)
    size = max(1, min(workers, len(queue)))
    opts = dict(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    factory_ref = ray.put(factory)
    if actors:
        actor_cls = ray.remote(max_restarts=0, max_task_retries=0, **opts)(_ShardWorker)
        make = lambda: actor_cls.remote(factory_ref)  # noqa: E731
        slots = [_Slot(make) for _ in range(size)]
        submit_task = None
    else:
        task = ray.remote(max_retries=0, retry_exceptions=False, **opts)(_run_in_task)
        slots = [_Slot(None) for _ in range(size)]
        submit_task = lambda u: task.remote(factory_ref, u.shard, u.lo, u.hi)  # noqa: E731

    def failed(unit: Unit, reason: str, detail: str) -> Iterator[ItemFailed]:
        if unit.hi - unit.lo > 1:  # bisect: the culprit is somewhere in here, the rest is innocent
            mid = (unit.lo + unit.hi) // 2
            queue.appendleft(Unit(unit.shard, mid, unit.hi))
            queue.appendleft(Unit(unit.shard, unit.lo, mid))
        elif reason != "timeout" and unit.attempt < ITEM_ATTEMPTS:  # the crash may have been a neighbour's
            queue.appendleft(Unit(unit.shard, unit.lo, unit.hi, unit.attempt + 1))
        else:
            yield ItemFailed(unit.shard, unit.lo, reason, detail)

    while queue or any(s.unit for s in slots):
        for slot in slots:
            if slot.unit is None and queue:
                slot.submit(queue.popleft(), submit_task, item_timeout_s, setup_timeout_s)
        busy = [s for s in slots if s.unit is not None]
        wait_s = max(0.05, min(s.deadline for s in busy) - time.monotonic())
        refs = [s.ref for s in busy] + [s.ready_ref for s in busy if s.ready_ref is not None]
        ready, _ = ray.wait(refs, num_returns=1, timeout=min(wait_s, 5.0))
        for slot in busy:
            unit = slot.unit
            if slot.ready_ref is not None and slot.ready_ref in ready:
                slot.setup_done()  # a failed setup surfaces on the unit's own ref, below
            if slot.ref in ready:
                try:
                    result = json.loads(ray.get(slot.ref))
                except Exception as exc:  # the worker died or the unit raised past the harness
                    reason, detail = _classify(exc)
                    log.warning("shard %d items [%d, %d): %s (%s)", unit.shard, unit.lo, unit.hi, reason, detail)
                    slot.discard()
                    yield from failed(unit, reason, detail)
                    continue
                slot.unit, slot.ref = None, None
                yield UnitDone(unit.shard, unit.lo, unit.hi, result)
            elif time.monotonic() > slot.deadline:
                n = unit.hi - unit.lo
                log.warning("shard %d items [%d, %d): no result within its deadline; worker killed", unit.shard,
                            unit.lo, unit.hi)
                slot.discard()
                yield from failed(unit, "timeout", f"no result within {item_timeout_s:g} s per item ({n} item(s))")
