"""Task shares over a stage's steps: the volume mix with ramps, or iMontage's cocktail schedule.

Both start from `curriculum`: task prefixes, easiest first (tasks not listed come last); a
task's level is the rank of its first matching prefix among the levels present.

`mix: volume` (the default): share of task t ~ rows_t ** mix_temperature x task_weights[t]
x ramp_t(step). With L levels, level k reaches full weight at progress k / (L - 1) of
`curriculum_steps`, ramping linearly from `curriculum_floor` since the previous level did;
after `curriculum_steps` only volume and task_weights remain.

`mix: cocktail` (iMontage's "cocktail" curriculum): every task has the same base weight,
whatever its row count (x task_weights). The schedule runs in L phases over
`curriculum_steps` (0 = the whole stage); in phase k the levels 0..k are in, weighted
decay ** (k - j) for level j: each new, harder level enters with the largest weight and
pushes the earlier ones down, so the hardest level ends with the largest share. A level
enters over the first half of its phase (linear blend from the previous phase's weights),
and the last phase's weights hold after the schedule ends.
"""

from __future__ import annotations

import numpy as np

COCKTAIL_ENTRY = 0.5  # fraction of a phase over which its new level blends in


def matches(task: str, prefix: str) -> bool:
    return task == prefix or task.startswith(prefix + ".")


def curriculum_levels(tasks: list[str], order: list[str]) -> np.ndarray:
    """(T,) level of each task: rank of its first matching prefix among the levels present."""
    raw = [next((i for i, p in enumerate(order) if matches(task, p)), len(order)) for task in tasks]
    present = sorted(set(raw))
    return np.array([present.index(r) for r in raw], dtype=np.int64)


def task_multipliers(tasks: list[str], weights: dict[str, float]) -> np.ndarray:
    """(T,) manual multiplier per task: the longest matching prefix wins; 1 when none matches."""
    out = np.ones(len(tasks), dtype=np.float64)
    for i, task in enumerate(tasks):
        hits = [p for p in weights if matches(task, p)]
        if hits:
            out[i] = float(weights[max(hits, key=len)])
    return out


def curriculum_multipliers(levels: np.ndarray, step: int, steps: int, floor: float) -> np.ndarray:
    """Volume mix ramps: (T,) in [floor, 1]; all ones when there is no curriculum or it is over."""
    n_levels = int(levels.max()) + 1 if levels.size else 1
    if steps <= 0 or n_levels == 1 or step >= steps:
        return np.ones(levels.shape, dtype=np.float64)
    progress = step / steps
    full_at = levels / (n_levels - 1)  # level k is at full weight from here
    start_at = np.maximum(levels - 1, 0) / (n_levels - 1)  # and ramps from the previous level's
    span = np.maximum(full_at - start_at, 1e-12)
    ramp = np.clip((progress - start_at) / span, 0.0, 1.0)
    return np.where(levels == 0, 1.0, floor + (1.0 - floor) * ramp)


def cocktail_phase(k: int, n_levels: int, decay: float) -> np.ndarray:
    """(L,) level weights of phase k: decay ** (k - j) for j <= k, 0 for levels not yet in."""
    j = np.arange(n_levels)
    return np.where(j <= k, decay ** np.maximum(k - j, 0), 0.0)


def cocktail_multipliers(levels: np.ndarray, step: int, steps: int, decay: float) -> np.ndarray:
    """(T,) cocktail weight of each task's level at `step` of a schedule `steps` long."""
    n_levels = int(levels.max()) + 1 if levels.size else 1
    if n_levels == 1:
        return np.ones(levels.shape, dtype=np.float64)
    u = n_levels * min(step / max(steps, 1), 1.0 - 1e-9)  # phase.progress
    k = int(u)
    weights = cocktail_phase(k, n_levels, decay)
    if k > 0:
        a = min(1.0, (u - k) / COCKTAIL_ENTRY)
        weights = (1.0 - a) * cocktail_phase(k - 1, n_levels, decay) + a * weights
    return weights[levels]


class TaskMix:
    """The task shares of one stage, step by step (levels and base weights computed once)."""

    def __init__(self, tasks: list[str], rows_per_task: np.ndarray, cfg, steps: int):
        self.cfg, self.steps = cfg, steps
        self.levels = curriculum_levels(tasks, cfg.curriculum)
        manual = task_multipliers(tasks, cfg.task_weights)
        self.base = manual if cfg.mix == "cocktail" else rows_per_task ** cfg.mix_temperature * manual

    def shares(self, step: int) -> np.ndarray:
        """(T,) the task mix `step` steps into the stage (share of samples)."""
        c = self.cfg
        if c.mix == "cocktail":
            p = self.base * cocktail_multipliers(self.levels, step, c.curriculum_steps or self.steps, c.cocktail_decay)
        else:
            p = self.base * curriculum_multipliers(self.levels, step, c.curriculum_steps, c.curriculum_floor)
        if not (p > 0).any():
            raise ValueError(f"task_weights {c.task_weights} leave no task to train on at step {step}")
        return p / p.sum()
