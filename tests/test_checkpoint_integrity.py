"""Checkpoint integrity, without Ray: every file of a checkpoint is recorded (bytes, sha256) in its
lineage node, written last; a load (resume, init_from, sampling) re-hashes them and refuses a
mismatch naming the file; a folder missing its node or holding a shorter file is never a run's
latest checkpoint (loading falls back to the previous complete one); `unimontage lineage CKPT
--verify` says what is wrong in one line; optimizer state is read with weights_only=True.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from training import checkpointing, job
from training.config import TrainConfig
from training.lineage import checkpoint_node

pytestmark = pytest.mark.usefixtures("torch_one_thread")
MODEL = {"hidden_size": 48, "num_heads": 2, "depth_double": 1, "depth_single": 1, "axes_dim": [8, 8, 8]}


def _save(run: Path, step: int, cfg: TrainConfig) -> Path:
    from models.dit import UnifiedDiT

    torch.manual_seed(step)
    model = UnifiedDiT(cfg.model_config())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.final_layer.linear.weight.data.normal_()
    model.final_layer.linear.weight.sum().backward()
    opt.step()
    folder = run / f"checkpoint_{step:08d}"
    node = checkpoint_node(path=str(folder), run_dir=str(run), step=step, datasets=[], config_hash=cfg.hash,
                           plan="p" * 64, metrics={"loss": 1.0}, code={})
    state = checkpointing.TrainState(next_step=step, plan="p" * 64, config=cfg.to_dict())
    checkpointing.save(folder, model, opt, state, node, {"train_config": cfg.to_dict()})
    return folder


@pytest.fixture
def run(tmp_path):
    cfg = TrainConfig(model_overrides=MODEL)
    run = tmp_path / "run"
    older, newer = _save(run, 2, cfg), _save(run, 4, cfg)
    return {"dir": run, "cfg": cfg, "older": older, "newer": newer}


def _restore(folder: Path, cfg: TrainConfig):
    from models.dit import UnifiedDiT

    model = UnifiedDiT(cfg.model_config())
    return checkpointing.restore(folder, model, torch.optim.AdamW(model.parameters(), lr=1e-3), plan="p" * 64)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _verify_cli(folder: Path):
    from flows.cli import app

    return CliRunner().invoke(app, ["lineage", str(folder), "--verify"])


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output[-2000:]
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), res.output[-2000:]


def test_every_file_is_recorded_and_a_clean_checkpoint_loads(run):
    node = json.loads((run["newer"] / "lineage.json").read_text())
    assert set(node["files"]) == {"config.json", "model.safetensors", "optimizer.pt", "train_state.json"}
    assert node["weights_sha256"] == node["files"]["model.safetensors"]["sha256"]
    assert job.list_checkpoints(str(run["dir"])) == [str(run["older"]), str(run["newer"])]
    assert _restore(run["newer"], run["cfg"]).next_step == 4
    res = _verify_cli(run["newer"])
    assert res.exit_code == 0 and '"ok": true' in res.stdout, res.output[-2000:]


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt", "train_state.json"])
def test_a_flipped_bit_is_refused_on_every_load_path_naming_the_file(run, name):
    from training.inference import load_for_sampling

    target = run["newer"] / name
    _flip(target, target.stat().st_size - 7)  # inside the data, past any header
    with pytest.raises(checkpointing.CheckpointError, match=rf"{name} sha256 .* does not match"):
        _restore(run["newer"], run["cfg"])  # resume
    with pytest.raises(checkpointing.CheckpointError, match=name):
        checkpointing.load_model(run["newer"])  # init_from (loop) and sampling
    with pytest.raises(checkpointing.CheckpointError, match=name):
        job.check_init_from(str(run["newer"]))  # the driver, before any worker starts
    with pytest.raises(checkpointing.CheckpointError, match=name):
        load_for_sampling(run["dir"])  # same size: still listed as the latest, and refused
    _one_line_error(_verify_cli(run["newer"]), str(target), "corrupted")
    assert _restore(run["older"], run["cfg"]).next_step == 2  # the other one is untouched


def test_a_truncated_or_unfinished_checkpoint_is_never_the_latest(run):
    from training.inference import load_for_sampling

    weights = run["newer"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert job.list_checkpoints(str(run["dir"])) == [str(run["older"])]
    assert job.latest_checkpoint(str(run["dir"])) == str(run["older"])
    assert str(load_for_sampling(run["dir"]).path) == str(run["older"]) and load_for_sampling(run["dir"]).step == 2
    with pytest.raises(checkpointing.CheckpointError, match="truncated"):
        checkpointing.load_model(run["newer"])  # named directly, it is still refused
    _one_line_error(_verify_cli(run["newer"]), "model.safetensors", "truncated")

    # a writer killed before the node (the completion marker): config and weights, no lineage.json
    partial = run["dir"] / "checkpoint_00000006"
    partial.mkdir()
    for name in ("config.json", "model.safetensors"):
        (partial / name).write_bytes((run["older"] / name).read_bytes())
    assert job.list_checkpoints(str(run["dir"])) == [str(run["older"])]
    with pytest.raises(checkpointing.CheckpointError, match="incomplete"):
        _restore(partial, run["cfg"])
    res = _verify_cli(partial)
    assert res.exit_code != 0 and "Traceback" not in res.output and "no lineage.json" in res.stderr


def test_a_truncated_lineage_node_is_one_clear_line(run):
    node = run["newer"] / "lineage.json"
    node.write_text(node.read_text()[:100])
    assert job.list_checkpoints(str(run["dir"])) == [str(run["older"])]
    for args in ([], ["--verify"]):
        from flows.cli import app

        res = CliRunner().invoke(app, ["lineage", str(run["newer"]), *args])
        _one_line_error(res, "lineage.json", "truncated or corrupted")


def test_optimizer_state_is_never_unpickled_as_code(run, tmp_path):
    """An optimizer.pt whose hash is (re)recorded, so integrity passes: torch.load(weights_only=True)
    still refuses the pickled call."""
    from datagen.store.lineage import file_hash

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    opt = run["newer"] / "optimizer.pt"
    opt.write_bytes(pickle.dumps({"state": Evil(), "param_groups": []}))
    node_path = run["newer"] / "lineage.json"
    node = json.loads(node_path.read_text())
    node["files"]["optimizer.pt"] = {"bytes": opt.stat().st_size, "sha256": file_hash(opt)}
    node_path.write_text(json.dumps(node))
    with pytest.raises(pickle.UnpicklingError):
        _restore(run["newer"], run["cfg"])
    assert not marker.exists()


# --------------------------------------------------------------------------- chaos (benchmarks/chaos.py, fast)
@pytest.mark.slow  # make test-slow; `make chaos` runs more trials
@pytest.mark.timeout(600)
def test_compaction_during_training_and_damaged_checkpoints_of_the_run(ray_local, tmp_path):
    """A real run (tiny model, 8 steps) whose dataset is compacted after its first checkpoint: it
    finishes on the version it pinned with no decode error; then every kind of damage to its
    checkpoints is refused or skipped by every load path, never loaded."""
    from benchmarks import chaos

    inputs = chaos.training_inputs(tmp_path)
    run = chaos.compaction_during_training(tmp_path, inputs)
    assert run["finished"] and run["step"] == 8 and run["decode_errors"] == 0, run
    assert run["fragments"][0] > run["fragments"][1] and run["during"], run  # compacted while it trained
    assert run["ok"]

    trials = chaos.corrupted_checkpoint_trials(run["run_dir"], tmp_path / "corrupt", n=4)
    assert [t["fault"] for t in trials] == list(chaos.CHECKPOINT_FAULTS)
    for t in trials:
        assert t["silent"] == 0 and t["verify_flagged"] and t["direct"].startswith("refused"), t
        if t["latest"]:
            assert t["resume"] == "refused" and t["run"] != "latest", t
