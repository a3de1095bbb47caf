"""Checkpoint folders: safetensors + JSON round trip, and no code execution on load."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.dit import DiTConfig, UnifiedDiT
from models.packing import pack
from models.text_encoder import TextEmbedding


def make_model(seed: int = 0) -> UnifiedDiT:
    torch.manual_seed(seed)
    config = DiTConfig(hidden_size=32, num_heads=2, depth_double=1, depth_single=2, axes_dim=(4, 6, 6),
                       text_dim=16, rope_layout="uniform")
    model = UnifiedDiT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def run(model: UnifiedDiT) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    text = TextEmbedding(torch.randn(1, 3, 16, generator=g), torch.ones(1, 3, dtype=torch.bool), torch.randn(1, 16, generator=g))
    batch = pack([[torch.randn(3, 4, 4, generator=g), torch.randn(3, 4, 4, generator=g)]], [[torch.zeros(3, 4, 4)]],
                 patch=model.config.patch_size)
    return model(torch.randn(batch.outputs.tokens.shape, generator=g), torch.full((1,), 0.5), batch, text)


def test_round_trip_restores_model_optimizer_step_and_lineage(tmp_path):
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run(model).pow(2).mean().backward()
    opt.step()
    lineage = {"datasets": {"collage_edits": 3}, "run_id": "r-1"}
    folder = save_checkpoint(tmp_path / "ckpt", model, optimizer=opt, step=17, extra=lineage)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "optimizer.pt"]
    assert json.loads((folder / "config.json").read_text())["config"]["rope_layout"] == "uniform"

    fresh = UnifiedDiT(model.config)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    ckpt = load_checkpoint(folder, optimizer=opt2)
    assert ckpt.step == 17 and ckpt.extra == lineage and ckpt.config == model.config
    for (name, a), b in zip(model.state_dict().items(), ckpt.model.state_dict().values()):
        assert torch.equal(a, b), name
    torch.testing.assert_close(run(ckpt.model), run(model))
    state, state2 = opt.state_dict(), opt2.state_dict()
    assert state["param_groups"] == state2["param_groups"]
    assert all(torch.equal(state["state"][k]["exp_avg"], state2["state"][k]["exp_avg"]) for k in state["state"])


def test_missing_and_foreign_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing config.json in"):
        load_checkpoint(tmp_path)
    folder = save_checkpoint(tmp_path / "c", make_model())
    with pytest.raises(FileNotFoundError, match="optimizer.pt"):
        load_checkpoint(folder, optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1))
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "format": "something.else"}))
    with pytest.raises(ValueError, match="not a unimontage.unified_dit checkpoint"):
        load_checkpoint(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        load_checkpoint(folder)


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_untrusted_optimizer_file_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model()
    folder = save_checkpoint(tmp_path / "c", model)
    with open(folder / "optimizer.pt", "wb") as f:
        pickle.dump({"state": Boom(), "param_groups": []}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(folder, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert not (tmp_path / "PWNED").exists()
