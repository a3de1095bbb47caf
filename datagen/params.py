"""Typed, frozen product configs: every parameter declared once, with its default, help and bounds.

    @dataclass(frozen=True)
    class CollageConfig(ProductConfig):
        size: int = param(512, "Side of the square output images, in pixels.", min=64, max=4096)

From the class alone the flows derive the CLI options, the Prefect flow parameters (and so
the deployment form in the UI), the card's parameter table and the lineage record; nothing
restates a parameter. Validation runs in `__post_init__`, so a config that exists is valid.

Field metadata:
- `help`, `min`, `max`, `choices`: shown in `--help` and the UI, enforced on construction.
- `flag`: the CLI spelling when it differs from the field name (`optical_flow` -> `--flow`).
- `content=False`: the parameter decides which inputs exist or where they are (a count, a
  source folder), not the bytes of any one sample; it stays out of the content key, so
  sample ids do not depend on it. Sources enter the content key by their content hash.
- `advanced=True`: listed under "Advanced" in `--help`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, get_args, get_origin

REQUIRED = MISSING  # a parameter without a default: the CLI and the flow require it


def param(default: Any = REQUIRED, help: str = "", *, min: float | None = None, max: float | None = None,
          choices: tuple[Any, ...] | None = None, flag: str | None = None, content: bool = True,
          advanced: bool = False) -> Any:
    meta = {"help": help, "min": min, "max": max, "choices": choices, "flag": flag, "content": content,
            "advanced": advanced}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults: use a tuple (frozen configs hold tuples, not lists)")
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Param:
    """One parameter as the CLI, the flow and the card see it."""

    name: str
    type: Any
    default: Any  # REQUIRED when there is none
    help: str
    min: float | None
    max: float | None
    choices: tuple[Any, ...] | None
    flag: str
    content: bool
    advanced: bool

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def off_flag(self) -> str:
        """A switch's "off" spelling (`--with-references` -> `--no-with-references`)."""
        return f"--no-{self.flag[2:]}"


def _optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (tp, False)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """A value from JSON, a form or a command line -> the declared type (strict, clear errors)."""
    base, optional = _optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name}: a value is required")
    origin = get_origin(base)
    if origin is tuple:
        if isinstance(value, str):  # the CLI's comma-separated form
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: want a list, got {value!r}")
        (item_tp, *_) = get_args(base) or (Any,)
        return tuple(_coerce(name, v, item_tp) for v in value)
    if origin is Literal:
        if value not in get_args(base):
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(repr, get_args(base)))}")
        return value
    if dataclasses.is_dataclass(base):
        if isinstance(value, base):
            return value
        if isinstance(value, dict):
            return from_dict(base, value)
        raise ValueError(f"{name}: want a {base.__name__} or a dict, got {value!r}")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{name}: want true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name}: want an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: want an integer, got {value!r}") from None
    if base is float:
        if isinstance(value, bool):
            raise ValueError(f"{name}: want a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: want a number, got {value!r}") from None
    if base is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: want text, got {value!r}")
        return value
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a config dataclass from plain data; unknown keys are errors that list the known ones."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = _hints(cls)
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ProductConfig:
    """Base of every product's config: construction validates; `to_dict`/`from_dict` round-trip."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(f.name, value, hints[f.name])
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)  # e.g. a list given for a tuple field
            check_bounds(f.name, coerced, f.metadata)
        self.validate()

    def validate(self) -> None:
        """Cross-field rules; raise ValueError naming the parameter(s)."""

    # ---------------------------------------------------------------- views
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def content(self) -> dict[str, Any]:
        """The parameters that change sample bytes (see `content=False`)."""
        return {p.name: _plain(getattr(self, p.name)) for p in self.params() if p.content}

    def replace(self, **changes: Any) -> Any:
        return type(self).from_dict(self.to_dict() | changes)

    @classmethod
    def params(cls) -> list[Param]:
        hints = _hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            m = f.metadata
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else REQUIRED)
            out.append(Param(f.name, hints[f.name], default, m.get("help", ""), m.get("min"), m.get("max"),
                             m.get("choices"), m.get("flag") or "--" + f.name.replace("_", "-"),
                             m.get("content", True), m.get("advanced", False)))
        return out


def check_bounds(name: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ValueError(f"{name}: {v!r} is not one of {', '.join(map(str, meta['choices']))}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if meta.get("min") is not None and v < meta["min"]:
                raise ValueError(f"{name} must be >= {meta['min']:g}, got {v:g}")
            if meta.get("max") is not None and v > meta["max"]:
                raise ValueError(f"{name} must be <= {meta['max']:g}, got {v:g}")
