"""The one training config: a dataclass, read from YAML/JSON, overridable field by field.

    cfg = load_config("training/configs/tiny.yaml", ["lr=1e-3", "model_overrides.depth_single=2"])

Every field can be set from the command line as `--set key=value`; the value is parsed
for the field's declared type (an int field refuses "0.5", a bool field refuses "maybe"),
and dict fields take `key.sub=value`. Unknown keys are errors that list the known ones, so
a typo never trains silently with a default.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datagen.store.lineage import config_hash
from models.flow_matching import LOSS_SPACES
from models.text_encoder import DEFAULT_MAX_TOKENS

WEIGHT_MODES = ("sample", "loss", "none")
LR_SCHEDULES = ("constant", "cosine", "linear")
MIX_MODES = ("volume", "cocktail")
WHERE_MISSING = ("drop", "keep")
# Fields that change where/how fast a run goes but not what it learns. They are left out
# of the config hash, so re-running with more workers or a new log interval resumes the
# same run (the data plan is a function of the global batch, not of the worker count).
OPERATIONAL_FIELDS = frozenset({
    "name", "num_workers", "use_gpu", "cpus_per_worker", "data_cpus", "data_tasks", "prefetch_steps",
    "torch_threads", "max_failures", "log_every", "checkpoint_every", "keep_checkpoints", "chaos_exit_at_step",
})
# What a stage may set for itself (`stages: [{name, steps, <any of these>}]`); the rest of
# the config (model, text encoder, seed, Ray) is one per run.
STAGE_FIELDS = frozenset({
    "datasets", "resolution", "batch_tokens", "batch_size", "weight_mode", "where", "where_missing", "drop_flagged",
    "mix", "mix_temperature", "task_weights", "curriculum", "curriculum_steps", "curriculum_floor", "cocktail_decay",
    "lr", "lr_schedule", "warmup_steps", "weight_decay", "grad_clip", "text_dropout", "ref_dropout", "routing_weight",
    "routing_ramp_steps",
})
STAGE_ONLY = ("name", "steps")
# Keys of configs saved before native-resolution training (aspect-ratio buckets): dropped
# on load, so a checkpoint from then still samples.
RETIRED_FIELDS = frozenset({"aspect_ratios", "bucket_multiple"})


@dataclass
class TrainConfig:
    # ---- data: Lance datasets, pinned to versions when the run starts
    datasets: list[str] = field(default_factory=list)  # URI[@VERSION|@TAG], e.g. collage.lance@reviewed
    resolution: int = 32  # each image keeps its aspect ratio and shrinks to at most resolution**2 pixels
    size_multiple: int = 0  # image sides are multiples of this; 0 = patch size x image-space downsampling
    batch_tokens: int = 0  # image tokens per step (padding included); 0 = batch_size samples every step
    batch_size: int = 8  # global samples per step: exact without batch_tokens, else the most a step takes
    weight_mode: str = "sample"  # the record's `weight`: "sample" = drawn that much more often, "loss" = loss x weight
    # ---- which rows: a filter on `scores`, and the review's flags
    where: str = ""  # e.g. "vlm_rating >= 4 and motion > 1.5"; "" = every row
    where_missing: str = "drop"  # a row without a score the filter names: "drop" or "keep" it
    drop_flagged: bool = False  # leave out rows flagged in <name>_flags.lance for the pinned version
    # ---- task mixing (training/curriculum.py)
    mix: str = "volume"  # "volume": rows ** mix_temperature x task_weights x ramps; "cocktail": iMontage's schedule
    mix_temperature: float = 1.0  # volume mix: 1 = proportional to data volume, 0 = every task equally often
    task_weights: dict[str, float] = field(default_factory=dict)  # task or family prefix -> multiplier
    curriculum: list[str] = field(default_factory=list)  # task prefixes, easiest first
    curriculum_steps: int = 0  # steps over which the curriculum plays out; 0 = none (volume) / the stage (cocktail)
    curriculum_floor: float = 0.1  # volume mix: a task's multiplier before its ramp starts
    cocktail_decay: float = 0.7  # cocktail: each later entry weighs 1/decay more than the one before it
    # ---- model
    model: str = "tiny"  # models.dit preset: tiny | small | base
    model_overrides: dict[str, Any] = field(default_factory=dict)  # DiTConfig fields, e.g. patch_size
    image_space: str = "pixels"  # "pixels" or a local diffusers VAE folder
    init_from: str = ""  # a checkpoint folder to start from (weights only; a lineage parent)
    # ---- text
    text_encoder: str = ""  # local HF folder; "" = the default all-MiniLM-L6-v2
    text_max_tokens: int = DEFAULT_MAX_TOKENS  # longer instructions are cut (counted on the card, with a warning)
    text_prefix_outputs: bool = False  # prefix "Output M images." to every instruction (iMontage)
    text_dropout: float = 0.1  # trains the text-unconditional branch classifier-free guidance needs
    ref_dropout: float = 0.1  # drops every input image of a sample: the image-unconditional branch (AnyStory)
    # ---- routing loss (models/routing.py): reference tokens -> their instance's output mask
    routing_weight: float = 0.0  # 0 = computed and logged where pairs exist, not trained
    routing_ramp_steps: int = 0  # the weight rises from 0 over a stage's first N steps (models/routing.ramped_weight)
    routing_blocks: list[int] = field(default_factory=lambda: [0, 1])  # block indices, double-stream first
    routing_pairs: list[str] = field(default_factory=lambda: ["subject", "object", "replaced>replacement"])
    # ---- optimisation
    seed: int = 0
    max_steps: int = 200  # with stages: their sum (leave it out)
    lr: float = 3e-4
    lr_schedule: str = "constant"  # constant | cosine | linear (both decay to 0 at the stage's end)
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = off
    loss_space: str = "velocity"  # velocity | clean: score the clean-output estimate (error x t^2; see docs)
    stages: list[dict[str, Any]] = field(default_factory=list)  # [{name, steps, <STAGE_FIELDS>}]; [] = one stage
    # ---- checkpoints and metrics
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    log_every: int = 10
    # ---- Ray
    name: str = ""  # run name under --out; "" = train-<config hash>, so the same command resumes
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    data_cpus: float = 0.25  # per Ray Data decode task
    data_tasks: int = 2  # decode tasks in flight per worker
    prefetch_steps: int = 4  # decoded steps buffered ahead of the loop
    torch_threads: int = 1
    max_failures: int = 2  # worker failures survived by restarting from the last checkpoint
    chaos_exit_at_step: int = -1  # tests: the last rank dies (os._exit) at this step, once per run; -1 = off

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = _field_types()
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(known))}")
        values = {k: _coerce(k, v, known[k]) for k, v in data.items()}
        if values.get("stages"):
            values["stages"] = [_coerce_stage(i, st) for i, st in enumerate(values["stages"])]
            total = sum(st["steps"] for st in values["stages"])
            if values.setdefault("max_steps", total) != total:
                raise ValueError(f"max_steps {values['max_steps']} is not the sum of the stages' steps ({total}): "
                                 "leave max_steps out of a staged config and set stages.<i>.steps")
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict(self.to_dict() | changes)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError for a config that cannot train, before any work starts."""
        positive = {"resolution": self.resolution, "max_steps": self.max_steps, "batch_size": self.batch_size,
                    "num_workers": self.num_workers, "checkpoint_every": self.checkpoint_every,
                    "keep_checkpoints": self.keep_checkpoints, "log_every": self.log_every,
                    "data_tasks": self.data_tasks, "prefetch_steps": self.prefetch_steps,
                    "torch_threads": self.torch_threads, "text_max_tokens": self.text_max_tokens}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        choices = {"weight_mode": WEIGHT_MODES, "lr_schedule": LR_SCHEDULES, "mix": MIX_MODES,
                   "where_missing": WHERE_MISSING, "loss_space": LOSS_SPACES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("lr", "cpus_per_worker", "data_cpus"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "mix_temperature", "warmup_steps", "curriculum_steps",
                     "batch_tokens", "size_multiple", "routing_weight", "routing_ramp_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("text_dropout", "ref_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("curriculum_floor", "cocktail_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if any(w < 0 for w in self.task_weights.values()):
            raise ValueError(f"task_weights must be >= 0, got {self.task_weights}")
        from training.regions import parse_pairs
        from training.selection import parse_where

        parse_where(self.where)  # a malformed filter fails here, with the clause it cannot read
        parse_pairs(self.routing_pairs)
        model = self.model_config()  # unknown model keys or a bad head split fail here, not in a worker
        n_blocks = model.depth_double + model.depth_single
        bad = [b for b in self.routing_blocks if not 0 <= b < n_blocks]
        if bad:
            raise ValueError(f"routing_blocks {bad} outside the model's {n_blocks} blocks (0-{n_blocks - 1})")
        if self.stages:
            from training.stages import resolve_stages

            resolve_stages(self)  # every stage is a valid config of its own

    def model_config(self):
        from models.dit import PRESETS, DiTConfig

        if self.model not in PRESETS:
            raise ValueError(f"model must be one of {sorted(PRESETS)}, got {self.model!r}")
        preset = PRESETS[self.model]().to_dict()
        # from_dict names unknown keys; its __post_init__ checks the head split and RoPE axes.
        return DiTConfig.from_dict(preset | dict(self.model_overrides))

    @property
    def hash(self) -> str:
        """Identity of what this run learns (see OPERATIONAL_FIELDS for what is left out)."""
        return config_hash({k: v for k, v in self.to_dict().items() if k not in OPERATIONAL_FIELDS})


# --------------------------------------------------------------------------- typed values
def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in fields(TrainConfig)}


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check (and widen int -> float) a value already parsed from YAML/JSON."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    elif origin is dict:
        _, item = typing.get_args(tp)
        if isinstance(value, dict):
            return {str(k): (v if item is Any else _coerce(f"{key}.{k}", v, item)) for k, v in value.items()}
    raise ValueError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _coerce_stage(i: int, stage: Any) -> dict[str, Any]:
    """One `stages` entry: known keys only, each of its field's type; `steps` >= 1."""
    key = f"stages[{i}]"
    if not isinstance(stage, dict):
        raise ValueError(f"{key}: expected a mapping of stage keys, got {type(stage).__name__}")
    unknown = sorted(set(stage) - STAGE_FIELDS - set(STAGE_ONLY))
    if unknown:
        raise ValueError(f"{key}: unknown stage keys {unknown}; a stage sets name, steps and any of "
                         f"{', '.join(sorted(STAGE_FIELDS))}")
    types = _field_types()
    out = {k: _coerce(f"{key}.{k}", v, types[k]) for k, v in stage.items() if k in STAGE_FIELDS}
    out["name"] = _coerce(f"{key}.name", stage.get("name", f"stage{i + 1}"), str)
    if "steps" not in stage:
        raise ValueError(f"{key} ({out['name']}): every stage needs `steps`")
    out["steps"] = _coerce(f"{key}.steps", stage["steps"], int)
    if out["steps"] < 1:
        raise ValueError(f"{key} ({out['name']}): steps must be >= 1, got {out['steps']}")
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _parse_text(key: str, text: str, tp: Any) -> Any:
    """A command-line string -> a value of the field's type."""
    origin = typing.get_origin(tp)
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}: expected a bool (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}: expected an int, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}: expected a float, got {text!r}") from None
    if tp is str:
        return text
    if origin is list:
        stripped = text.strip()
        if stripped.startswith("["):
            return _coerce(key, _json(key, stripped), tp)
        (item,) = typing.get_args(tp)
        return [_parse_text(key, part.strip(), item) for part in stripped.split(",") if part.strip()]
    if origin is dict:
        return _coerce(key, _json(key, text), tp)
    raise ValueError(f"{key}: cannot parse type {_type_name(tp)}")


def _json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{key}: {text!r} is not valid JSON ({exc.msg})") from None


def _loose_value(text: str) -> Any:
    """A value inside a free-form dict field: JSON if it parses (2, 0.5, true, [1,2]), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `dictfield.key=value` strings to a raw config dict."""
    types = _field_types()
    out = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        top, _, sub = key.partition(".")
        if top not in types:
            raise ValueError(f"--set {key}: unknown config key; known keys: {', '.join(sorted(types))}")
        tp = types[top]
        if top == "stages" and sub:
            out["stages"] = _set_stage(out.get("stages") or [], key, sub, text, types)
            continue
        if sub:
            if typing.get_origin(tp) is not dict:
                raise ValueError(f"--set {key}: {top} is not a dict field")
            _, item_tp = typing.get_args(tp)
            value = _loose_value(text) if item_tp is Any else _parse_text(key, text, item_tp)
            out[top] = {**(out.get(top) or {}), sub: value}
        else:
            out[top] = _parse_text(key, text, tp)
    return out


def _set_stage(stages: list[dict[str, Any]], key: str, sub: str, text: str, types: dict[str, Any]) -> list:
    """`stages.<i>.<field>=value`: one stage's field, parsed for that field's type."""
    index, _, name = sub.partition(".")
    if not index.isdigit() or not name:
        raise ValueError(f"--set {key}: expected stages.<index>.<key>=value, e.g. stages.0.steps=20")
    i = int(index)
    if i >= len(stages):
        raise ValueError(f"--set {key}: the config has {len(stages)} stage(s)")
    if name not in STAGE_FIELDS and name not in STAGE_ONLY:
        raise ValueError(f"--set {key}: {name!r} is not a stage key; a stage sets name, steps and any of "
                         f"{', '.join(sorted(STAGE_FIELDS))}")
    tp = {"name": str, "steps": int}.get(name) or types[name]
    stages = [dict(s) for s in stages]
    stages[i][name] = _parse_text(key, text, tp)
    return stages


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        data = json.loads(text)
    elif p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"config file {p} must end in .yaml, .yml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping of config keys, not {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- config file <- `--set` overrides, then validated."""
    data = read_config_file(path) if path else {}
    return TrainConfig.from_dict(apply_overrides(data, list(overrides or [])))


CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def preset_path(name: str) -> Path:
    """`tiny` -> training/configs/tiny.yaml (a path given as-is is returned unchanged)."""
    p = Path(name)
    if p.suffix:
        return p
    return CONFIG_DIR / f"{name}.yaml"
