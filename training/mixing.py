"""Which rows train at step s: length groups, token-budget batches, task shares, per-sample weights.

The batch of step s is a pure function of (row index, stage config, s): nothing depends on
workers, timing or what ran before, so a resumed run sees exactly the batches an
uninterrupted one would, and the data position in a checkpoint is just the step.

Rows are grouped by their padded length: (input tokens, output tokens), each rounded up on a
ladder of steps <= 25%, so a batch of one group wastes at most a quarter of its tokens on
padding while holding samples of any number and size of images. A group's batch holds
`batch_tokens // padded length` samples (at most `batch_size`; exactly `batch_size` without
a token budget).

Per step (p_t from training/curriculum.py):
  1. one group g ~ sum_t p_t(s) * W[t, g] / W[t] / B_g   (W = draw weights; dividing by the
     group's batch size B_g keeps the share of *samples* of task t at p_t(s))
  2. B_g rows from g, each: task t ~ p_t(s) * W[t, g] / W[t], then a row of cell (t, g)
     with probability ~ its draw weight.
Draws are with replacement (a weighted sampler whose weights move with the curriculum has
no fixed epoch); `weight_mode="sample"` makes a row of weight 2 come twice as often as a
row of weight 1 of the same task.

Ranks split a step's rows in contiguous slices; a rank left without a row (a batch smaller
than the worker count) repeats one at loss weight 0, so every rank runs the same collective
ops, and the loss is normalised by the global batch so the update does not depend on the
split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from datagen.rng import sample_rng
from training.curriculum import TaskMix
from training.index import RowIndex
from training.stages import Stage, stage_at

PLAN_SALT = 0x504C414E  # "PLAN": the plan's stream never collides with other per-step streams


def length_class(n: int) -> int:
    """n rounded up to the ladder 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ... (steps <= 25%)."""
    if n <= 4:
        return int(n)
    k = int(np.floor(np.log2(n))) - 2  # n in [4 * 2**k, 8 * 2**k)
    for m in (4, 5, 6, 7, 8):
        if m << k >= n:
            return m << k
    return 8 << k


@dataclass
class RankBatch:
    step: int
    stage: int  # index of the stage the step belongs to
    rows: np.ndarray  # (b,) rows of the stage's RowIndex
    real: np.ndarray  # (b,) bool: False for a repeated row that only keeps the rank in step (loss weight 0)
    global_batch: int  # samples of the whole step, over all ranks


class StepPlan:
    """One stage's global batch of every step, and each rank's share of it."""

    def __init__(self, index: RowIndex, stage: Stage, seed: int):
        if len(index) == 0:
            raise ValueError(f"stage {stage.name!r}: no trainable rows in {index.datasets} (skipped: {index.skipped})")
        cfg = stage.config
        self.index, self.stage, self.seed = index, stage, seed
        draw = index.weight.astype(np.float64) if cfg.weight_mode == "sample" else np.ones(len(index))
        n_tasks = len(index.tasks)
        keys = np.array([(length_class(int(i)), length_class(int(o)))
                         for i, o in zip(index.tokens_in.tolist(), index.tokens_out.tolist())], np.int64)  # (n, 2)
        groups, group_of = np.unique(keys, axis=0, return_inverse=True)
        group_of = group_of.reshape(-1)
        self.groups = [tuple(int(v) for v in g) for g in groups]  # (padded in, padded out) tokens per group
        padded = groups.sum(axis=1)
        self.batch = (np.clip(cfg.batch_tokens // np.maximum(padded, 1), 1, cfg.batch_size) if cfg.batch_tokens
                      else np.full(len(groups), cfg.batch_size)).astype(np.int64)  # B_g
        mass = np.zeros((n_tasks, len(groups)))  # W[t, g]
        np.add.at(mass, (index.task.astype(np.int64), group_of), draw)
        self.share = mass / mass.sum(axis=1, keepdims=True)  # W[t, g] / W[t]
        rows_per_task = np.bincount(index.task.astype(np.int64), minlength=n_tasks).astype(np.float64)
        self.mix = TaskMix(index.tasks, rows_per_task, cfg, stage.steps)
        # Cells (t, g): their rows and cumulative draw weights, for O(log n) weighted draws.
        self.cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        order = np.lexsort((np.arange(len(index)), group_of, index.task))
        t_sorted, g_sorted = index.task[order].astype(np.int64), group_of[order]
        bounds = np.flatnonzero(np.diff(t_sorted * len(groups) + g_sorted)) + 1
        for chunk in np.split(order, bounds):
            rows = chunk.astype(np.int64)
            self.cells[(int(index.task[rows[0]]), int(group_of[rows[0]]))] = (rows, np.cumsum(draw[rows]))
        self.task_probs(stage.start)  # task_weights that leave nothing fail here, before any worker starts

    # ------------------------------------------------------------------ shares
    def task_probs(self, step: int) -> np.ndarray:
        """(T,) the task mix at global step `step` (share of samples)."""
        return self.mix.shares(step - self.stage.start)

    # ------------------------------------------------------------------ batches
    def global_rows(self, step: int) -> tuple[np.ndarray, int]:
        """(B_g,) index rows of step `step`, and its group."""
        rng = sample_rng(self.seed, step, PLAN_SALT)
        p_task = self.task_probs(step)  # (T,)
        joint = p_task[:, None] * self.share  # (T, G): P(task, group) per sample
        p_group = joint.sum(axis=0) / self.batch  # per step: groups of big batches are picked less often
        g = int(rng.choice(len(self.groups), p=p_group / p_group.sum()))
        p_t_given_g = joint[:, g] / joint[:, g].sum()
        size = int(self.batch[g])
        tasks = rng.choice(len(p_task), size=size, p=p_t_given_g)  # (B,)
        u = rng.random(size)  # (B,)
        out = np.empty(size, dtype=np.int64)
        for k, t in enumerate(tasks.tolist()):
            rows, cum = self.cells[(t, g)]
            out[k] = rows[min(int(np.searchsorted(cum, u[k] * cum[-1], side="right")), len(rows) - 1)]
        return out, g

    def fingerprint(self) -> str:
        """Identity of the stage's schedule: resuming under another plan would be a different run."""
        c = self.stage.config
        probe = sorted({self.stage.start + round(f * (self.stage.steps - 1)) for f in np.linspace(0, 1, 9)})
        spec = {"index": self.index.fingerprint(), "seed": self.seed, "stage": [self.stage.name, self.stage.start,
                self.stage.steps], "groups": self.groups, "batch": self.batch.tolist(),
                "share": self.share.round(12).tolist(), "mix": [c.mix, c.mix_temperature, c.task_weights,
                c.curriculum, c.curriculum_steps, c.curriculum_floor, c.cocktail_decay],
                "probs": [self.task_probs(s).round(12).tolist() for s in probe]}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class RunPlan:
    """Every stage's plan, one global step counter across them."""

    def __init__(self, plans: list[StepPlan]):
        self.plans = plans
        self.stages = [p.stage for p in plans]

    @property
    def total_steps(self) -> int:
        return self.stages[-1].stop

    def plan_at(self, step: int) -> StepPlan:
        return self.plans[stage_at(self.stages, step).index]

    def rank_rows(self, step: int, rank: int, world: int) -> RankBatch:
        """This rank's contiguous slice of the step's global batch."""
        plan = self.plan_at(step)
        rows, _ = plan.global_rows(step)
        part = np.array_split(rows, world)[rank]
        real = np.ones(len(part), bool)
        if not len(part):  # fewer samples than ranks: repeat one, weighing nothing
            part, real = rows[:1], np.zeros(1, bool)
        return RankBatch(step, plan.stage.index, part, real, len(rows))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([p.fingerprint() for p in self.plans]).encode()).hexdigest()

    def share_schedule(self, points: int = 48) -> dict:
        """Planned task shares over the run, for the card: {tasks, steps, shares[step][task], stages}."""
        tasks = sorted({t for p in self.plans for t in p.index.tasks})
        steps = sorted({int(s) for s in np.linspace(0, self.total_steps - 1, points).round()} |
                       {st.start for st in self.stages} | {st.stop - 1 for st in self.stages})
        shares = []
        for s in steps:
            plan = self.plan_at(s)
            probs = dict(zip(plan.index.tasks, plan.task_probs(s).tolist()))
            shares.append([round(probs.get(t, 0.0), 6) for t in tasks])
        return {"tasks": tasks, "steps": steps, "shares": shares,
                "stages": [{"name": st.name, "start": st.start, "stop": st.stop} for st in self.stages]}
