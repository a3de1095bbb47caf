"""What a training checkpoint holds, and reading it back to resume.

    <checkpoint>/config.json         model config + step + extra (models.checkpoint format)
    <checkpoint>/model.safetensors   weights
    <checkpoint>/optimizer.pt        optimizer state (read back with weights_only=True)
    <checkpoint>/train_state.json    next step, data position, train config, RNG state, metric history
    <checkpoint>/lineage.json        the checkpoint's lineage node (training/lineage.py), written last:
                                     it records the bytes and sha256 of every other file (`files`,
                                     and `weights_sha256`), so it is the folder's completion marker

Integrity: every load (resume, init_from, sampling) re-hashes the files against the node and
refuses a mismatch with an error naming the file (`CheckpointError`), and a folder whose files
are missing or shorter than recorded (a writer killed mid-save, a partial copy by Ray to object
storage, which uploads files in any order) is never listed as a run's checkpoint
(`datagen.store.lineage.checkpoint_complete`). Checkpoints on object storage are copied to a
local temporary folder before loading.

The data position is the next step: batches are a pure function of the step (see
training/mixing.py), and so is the stage a step belongs to (training/stages.py), so nothing
else about the data stream needs saving. `plan` records
the schedule's fingerprint; resuming under a different schedule is refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from training.lineage import RUN_FILE as NODE_FILE
from training.lineage import write_node

STATE_FILE = "train_state.json"
STATE_FORMAT = "unimontage.train_state"
# Every random draw is keyed by (seed, step[, rank]); the global torch state is saved too
# so any layer that draws from it (dropout) resumes where it was.
RNG_SCHEME = "plan: PCG64(seed, step); loss noise/timesteps/text dropout: torch.Generator(seed, step, rank)"


@dataclass
class TrainState:
    next_step: int
    plan: str  # StepPlan.fingerprint()
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics dict per finished step
    torch_rng: str = ""  # base64 of torch.get_rng_state()
    datasets: list[str] = field(default_factory=list)  # every dataset version the weights have seen
    stage: str = ""  # the stage the last finished step belonged to


def save(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
         lineage: dict[str, Any], model_extra: dict[str, Any]) -> Path:
    from models.checkpoint import WEIGHTS_FILE, save_checkpoint

    folder = Path(folder)
    save_checkpoint(folder, model, optimizer=optimizer, step=state.next_step, extra=model_extra)
    state.torch_rng = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
    doc = {"format": STATE_FORMAT, "next_step": state.next_step, "data_position": {"next_step": state.next_step,
           "plan": state.plan, "stage": state.stage}, "config": state.config, "datasets": state.datasets,
           "rng": {"scheme": RNG_SCHEME, "torch": state.torch_rng}, "history": state.history}
    (folder / STATE_FILE).write_text(json.dumps(doc))
    from datagen.store.lineage import file_hash

    # The node ties the checkpoint to these exact bytes; written last, it marks the folder complete.
    files = {p.name: {"bytes": p.stat().st_size, "sha256": file_hash(p)} for p in sorted(folder.iterdir())
             if p.is_file() and p.name != NODE_FILE}
    write_node(str(folder), lineage | {"files": files, "weights_sha256": files[WEIGHTS_FILE]["sha256"]})
    return folder


class CheckpointError(ValueError):
    """A checkpoint whose files do not match its lineage node, or that is incomplete."""


def verify(folder: str | Path, *, required: bool = True) -> dict[str, Any] | None:
    """Re-hash the checkpoint's files against its lineage node; raise CheckpointError naming the
    bad file. Without a node: an error when `required` (every training checkpoint has one), else
    nothing to check (a bare model checkpoint, e.g. from `models.checkpoint.save_checkpoint`)."""
    from datagen.store import lance_io
    from datagen.store import lineage as graph

    folder = str(folder)
    if not required and lance_io.read_text(f"{folder.rstrip('/')}/{NODE_FILE}") is None:
        return None
    res = graph.verify_checkpoint(folder)
    if not res["ok"]:
        raise CheckpointError(res["error"])
    return res


@contextlib.contextmanager
def local_folder(uri: str | Path) -> Iterator[Path]:
    """A checkpoint folder on local disk: the folder itself, or a temporary copy of an
    object-storage one (removed on exit)."""
    uri = str(uri)
    if "://" not in uri or uri.startswith("file://"):
        yield Path(uri.removeprefix("file://"))
        return
    import pyarrow.fs as pafs

    with tempfile.TemporaryDirectory(prefix="unimontage-ckpt-") as tmp:
        fs, path = pafs.FileSystem.from_uri(uri)
        if fs.get_file_info(path).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"no checkpoint folder at {uri}")
        pafs.copy_files(path, tmp, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield Path(tmp)


def load_model(uri: str | Path, *, required: bool = True):
    """`models.checkpoint.load_checkpoint` of a verified checkpoint, local or on object storage."""
    from models.checkpoint import load_checkpoint

    with local_folder(uri) as folder:
        verify(folder, required=required)
        return load_checkpoint(folder)


def read_state(folder: str | Path) -> TrainState:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"missing {STATE_FILE} in checkpoint folder {folder}")
    doc = json.loads(path.read_text())
    if doc.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a {STATE_FORMAT} file")
    return TrainState(next_step=int(doc["next_step"]), plan=doc["data_position"]["plan"], config=doc["config"],
                      history=doc.get("history", []), torch_rng=doc["rng"]["torch"], datasets=doc.get("datasets", []),
                      stage=doc["data_position"].get("stage", ""))


def restore(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, plan: str) -> TrainState:
    """Load weights, optimizer and RNG into the given objects; return where to continue."""
    from safetensors.torch import load_file

    from models.checkpoint import OPTIMIZER_FILE, WEIGHTS_FILE

    folder = Path(folder)
    verify(folder)  # resume never continues from weights or optimizer state other than those recorded
    state = read_state(folder)
    if state.plan != plan:
        raise ValueError(f"checkpoint {folder} was trained on another data plan ({state.plan[:12]} != {plan[:12]}): "
                         "the datasets, their versions or the mixing config differ; start a new run name")
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    if state.torch_rng:
        torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state.torch_rng)), dtype=torch.uint8))
    return state
