"""Which rows train at step s: task mixing, the "cocktail" curriculum, per-sample weights.

The batch of step s is a pure function of (row index, config, s): nothing depends on
workers, timing or what ran before, so a resumed run sees exactly the batches an
uninterrupted one would, and the data position in a checkpoint is just the step.

Per step:
  1. task shares  p_t(s) ~ rows_t ** mix_temperature * task_weights[t] * curriculum_t(s)
  2. one group g = (n_in, n_out, bucket) ~ sum_t p_t(s) * W[t, g] / W[t]
     (a batch must share shapes; W = sum of draw weights)
  3. batch_size rows from g, each: task t ~ p_t(s) * W[t, g] / W[t], then a row of
     cell (t, g) with probability ~ its draw weight.
This is exactly "pick a task by p_t(s), then a row of that task by weight", conditioned
on the group. Draws are with replacement (a weighted sampler whose weights move with the
curriculum has no fixed epoch); `weight_mode="sample"` makes a row of weight 2 come twice
as often as a row of weight 1 of the same task.

Curriculum: `curriculum` lists task prefixes easiest first (tasks not listed come last).
With L levels present, level k reaches full weight at progress k / (L - 1) of
`curriculum_steps`, ramping linearly from `curriculum_floor` since the previous level
did; after `curriculum_steps` only volume and task_weights remain.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from datagen.rng import sample_rng
from training.config import TrainConfig
from training.index import RowIndex

PLAN_SALT = 0x504C414E  # "PLAN": the plan's stream never collides with other per-step streams


def matches(task: str, prefix: str) -> bool:
    return task == prefix or task.startswith(prefix + ".")


def curriculum_levels(tasks: list[str], order: list[str]) -> np.ndarray:
    """(T,) level of each task: rank of its first matching prefix among the levels present."""
    raw = []
    for task in tasks:
        hit = next((i for i, p in enumerate(order) if matches(task, p)), len(order))
        raw.append(hit)
    present = sorted(set(raw))
    return np.array([present.index(r) for r in raw], dtype=np.int64)


def curriculum_multipliers(levels: np.ndarray, step: int, steps: int, floor: float) -> np.ndarray:
    """(T,) in [floor, 1]; all ones when there is no curriculum or it is over."""
    n_levels = int(levels.max()) + 1 if levels.size else 1
    if steps <= 0 or n_levels == 1 or step >= steps:
        return np.ones(levels.shape, dtype=np.float64)
    progress = step / steps
    full_at = levels / (n_levels - 1)  # level k is at full weight from here
    start_at = np.maximum(levels - 1, 0) / (n_levels - 1)  # and ramps from the previous level's
    span = np.maximum(full_at - start_at, 1e-12)
    ramp = np.clip((progress - start_at) / span, 0.0, 1.0)
    return np.where(levels == 0, 1.0, floor + (1.0 - floor) * ramp)


def task_multipliers(tasks: list[str], weights: dict[str, float]) -> np.ndarray:
    """(T,) manual multiplier per task: the longest matching prefix wins; 1 when none matches."""
    out = np.ones(len(tasks), dtype=np.float64)
    for i, task in enumerate(tasks):
        hits = [p for p in weights if matches(task, p)]
        if hits:
            out[i] = float(weights[max(hits, key=len)])
    return out


class StepPlan:
    """The global batch of every step, and each rank's share of it."""

    def __init__(self, index: RowIndex, cfg: TrainConfig):
        if len(index) == 0:
            raise ValueError(f"no trainable rows in {index.datasets} (skipped: {index.skipped})")
        self.index, self.seed, self.batch_size = index, cfg.seed, cfg.batch_size
        self.curriculum_steps, self.floor = cfg.curriculum_steps, cfg.curriculum_floor
        draw = index.weight.astype(np.float64) if cfg.weight_mode == "sample" else np.ones(len(index))
        n_tasks = len(index.tasks)
        keys = np.stack([index.n_in, index.n_out, index.bucket], axis=1).astype(np.int64)  # (n, 3)
        groups, group_of = np.unique(keys, axis=0, return_inverse=True)
        self.groups = [tuple(int(v) for v in g) for g in groups]  # (n_in, n_out, bucket) per group
        mass = np.zeros((n_tasks, len(groups)))  # W[t, g]
        np.add.at(mass, (index.task.astype(np.int64), group_of.reshape(-1)), draw)
        self.share = mass / mass.sum(axis=1, keepdims=True)  # W[t, g] / W[t]
        rows_per_task = np.bincount(index.task.astype(np.int64), minlength=n_tasks).astype(np.float64)
        self.base = rows_per_task ** cfg.mix_temperature * task_multipliers(index.tasks, cfg.task_weights)
        if not (self.base > 0).any():
            raise ValueError(f"task_weights {cfg.task_weights} leave no task to train on")
        self.levels = curriculum_levels(index.tasks, cfg.curriculum)
        # Cells (t, g): their rows and cumulative draw weights, for O(log n) weighted draws.
        self.cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        order = np.lexsort((np.arange(len(index)), group_of.reshape(-1), index.task))
        t_sorted, g_sorted = index.task[order].astype(np.int64), group_of.reshape(-1)[order]
        bounds = np.flatnonzero(np.diff(t_sorted * len(groups) + g_sorted)) + 1
        for chunk in np.split(order, bounds):
            rows = chunk.astype(np.int64)
            self.cells[(int(index.task[rows[0]]), int(group_of.reshape(-1)[rows[0]]))] = (rows, np.cumsum(draw[rows]))

    # ------------------------------------------------------------------ shares
    def task_probs(self, step: int) -> np.ndarray:
        """(T,) the task mix at `step`."""
        p = self.base * curriculum_multipliers(self.levels, step, self.curriculum_steps, self.floor)
        return p / p.sum()

    # ------------------------------------------------------------------ batches
    def global_rows(self, step: int) -> tuple[np.ndarray, tuple[int, int, int]]:
        """(batch_size,) index rows of step `step`, and its group (n_in, n_out, bucket)."""
        rng = sample_rng(self.seed, step, PLAN_SALT)
        p_task = self.task_probs(step)  # (T,)
        joint = p_task[:, None] * self.share  # (T, G): P(task, group)
        p_group = joint.sum(axis=0)
        g = int(rng.choice(len(self.groups), p=p_group / p_group.sum()))
        p_t_given_g = joint[:, g] / joint[:, g].sum()
        tasks = rng.choice(len(p_task), size=self.batch_size, p=p_t_given_g)  # (B,)
        u = rng.random(self.batch_size)  # (B,)
        out = np.empty(self.batch_size, dtype=np.int64)
        for k, t in enumerate(tasks.tolist()):
            rows, cum = self.cells[(t, g)]
            out[k] = rows[min(int(np.searchsorted(cum, u[k] * cum[-1], side="right")), len(rows) - 1)]
        return out, self.groups[g]

    def rank_rows(self, step: int, rank: int, world: int) -> tuple[np.ndarray, tuple[int, int, int]]:
        """This rank's contiguous slice of the global batch."""
        rows, group = self.global_rows(step)
        per = self.batch_size // world
        return rows[rank * per:(rank + 1) * per], group

    def fingerprint(self) -> str:
        """Identity of the whole schedule: resuming under another plan would be a different run."""
        spec = {"index": self.index.fingerprint(), "seed": self.seed, "batch": self.batch_size,
                "base": self.base.round(12).tolist(), "levels": self.levels.tolist(),
                "curriculum": [self.curriculum_steps, self.floor], "share": self.share.round(12).tolist()}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
