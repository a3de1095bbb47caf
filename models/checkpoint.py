"""Save / load a UnifiedDiT (+ optionally its optimizer) to a folder.

    <folder>/config.json        {"format", "version", "config": DiTConfig, "step", "extra"}
    <folder>/model.safetensors  weights (safetensors: loading can never run code)
    <folder>/optimizer.pt       optional optimizer state, read back with weights_only=True

Files are written under temporary names and renamed into place, so a crash mid-save (a
preempted Ray worker) never leaves a folder whose config and weights disagree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.dit import DiTConfig, UnifiedDiT

FORMAT = "unimontage.unified_dit"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class Checkpoint:
    model: UnifiedDiT
    config: DiTConfig
    step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # lineage: dataset versions, run id, ...


def _replace_into(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(
    folder: str | Path,
    model: UnifiedDiT,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    step: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _replace_into(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    if optimizer is not None:
        _replace_into(folder / OPTIMIZER_FILE, lambda p: torch.save(optimizer.state_dict(), p))
    meta = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(), "step": step, "extra": extra or {}}
    # config.json last: its presence marks a complete checkpoint.
    _replace_into(folder / CONFIG_FILE, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True)))
    return folder


def load_checkpoint(
    folder: str | Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Rebuild the model from config.json and load its weights; fill `optimizer` if given."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE) + ((OPTIMIZER_FILE,) if optimizer is not None else ()):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"missing {name} in checkpoint folder {folder}")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG_FILE} is not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint version {meta['version']} is newer than this code's {VERSION}")
    config = DiTConfig.from_dict(meta["config"])
    model = UnifiedDiT(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    model.to(device)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True))
    return Checkpoint(model=model, config=config, step=meta.get("step"), extra=meta.get("extra") or {})
