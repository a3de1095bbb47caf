"""A run as a list of stages (iMontage: pretrain -> SFT -> high-quality anneal; DreamOmni:
256 -> 512 -> 1024 px), each with its own data, rows, resolution, batch, mix and LR schedule.

    stages:
      - {name: pretrain, steps: 400, lr: 3.0e-4}
      - {name: hq, steps: 100, lr: 1.0e-4, lr_schedule: linear, where: "vlm_rating >= 4"}

A stage is the run's config with its own fields on top (`training.config.STAGE_FIELDS`);
its steps follow the previous stage's, so global step s belongs to exactly one stage and a
checkpoint at any step knows where it is. Model, optimizer state and the step counter carry
over from stage to stage; each stage's LR schedule restarts (warm-up included) and runs over
its own steps. With more than one stage the last must anneal the LR to 0 (lr_schedule
cosine or linear). A config without `stages` is one stage, "main".
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config import STAGE_FIELDS, TrainConfig

ANNEALING = ("cosine", "linear")


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    start: int  # first global step
    steps: int
    config: TrainConfig  # the run's config with the stage's fields; max_steps = steps, no stages

    @property
    def stop(self) -> int:
        return self.start + self.steps


def resolve_stages(cfg: TrainConfig) -> list[Stage]:
    """The stages of a run, each validated as a config of its own."""
    if not cfg.stages:
        return [Stage(0, "main", 0, cfg.max_steps, cfg)]
    base = {k: v for k, v in cfg.to_dict().items() if k != "stages"}
    names = [st["name"] for st in cfg.stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    out, start = [], 0
    for i, st in enumerate(cfg.stages):
        own = {k: v for k, v in st.items() if k in STAGE_FIELDS}
        try:
            stage_cfg = TrainConfig.from_dict(base | own | {"max_steps": st["steps"], "stages": []})
        except ValueError as exc:
            raise ValueError(f"stage {st['name']!r}: {exc}") from None
        out.append(Stage(i, st["name"], start, st["steps"], stage_cfg))
        start += st["steps"]
    last = out[-1]
    if len(out) > 1 and last.config.lr_schedule not in ANNEALING:
        raise ValueError(f"the last stage ({last.name!r}) must anneal the LR to 0: set its lr_schedule to one of "
                         f"{ANNEALING}, not {last.config.lr_schedule!r}")
    return out


def stage_at(stages: list[Stage], step: int) -> Stage:
    for stage in stages:
        if stage.start <= step < stage.stop:
            return stage
    raise IndexError(f"step {step} is outside the run's {stages[-1].stop} steps")


def describe(stage: Stage) -> dict:
    """What a stage trains on and how, for the run's lineage node and card."""
    c = stage.config
    return {"name": stage.name, "start": stage.start, "steps": stage.steps, "datasets": list(c.datasets),
            "resolution": c.resolution, "batch_tokens": c.batch_tokens, "batch_size": c.batch_size,
            "lr": c.lr, "lr_schedule": c.lr_schedule, "warmup_steps": c.warmup_steps, "mix": c.mix,
            "curriculum": list(c.curriculum), "task_weights": dict(c.task_weights), "where": c.where,
            "where_missing": c.where_missing, "drop_flagged": c.drop_flagged, "text_dropout": c.text_dropout,
            "ref_dropout": c.ref_dropout, "routing_weight": c.routing_weight,
            "routing_ramp_steps": c.routing_ramp_steps}
