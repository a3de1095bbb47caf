"""The training config: files, typed `--set` overrides, validation, the run identity; LR and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from training import checkpointing
from training.config import TrainConfig, apply_overrides, load_config, preset_path
from models.routing import ramped_weight
from training.loop import lr_at
from training.stages import resolve_stages, stage_at


@pytest.mark.parametrize("name", ["tiny", "small", "demo", "imontage", "dreamomni"])
def test_presets_load_and_build_their_model(name):
    cfg = load_config(preset_path(name))
    model = cfg.model_config()
    assert model.hidden_size % model.num_heads == 0
    stages = resolve_stages(cfg)
    assert stages[-1].stop == cfg.max_steps
    if len(stages) > 1:
        assert stages[-1].config.lr_schedule in ("cosine", "linear")  # the last stage anneals to 0


def test_the_paper_presets_follow_their_recipes():
    imontage = resolve_stages(load_config(preset_path("imontage")))
    assert [s.name for s in imontage] == ["pretrain", "sft", "hq"]
    pre, sft, hq = (s.config for s in imontage)
    assert pre.mix == "volume" and not pre.curriculum  # video pairs from the first step
    assert sft.mix == "cocktail" and sft.curriculum.index("video") < sft.curriculum.index("edit")
    assert hq.where and hq.drop_flagged and hq.lr_schedule == "linear" and hq.lr < sft.lr
    dreamomni = resolve_stages(load_config(preset_path("dreamomni")))
    assert [s.config.resolution for s in dreamomni] == [16, 32, 64]  # 256 -> 512 -> 1024, scaled to CPU
    assert [s.config.lr for s in dreamomni] == sorted((s.config.lr for s in dreamomni), reverse=True)
    demo = resolve_stages(load_config(preset_path("demo")))
    assert len(demo) == 2 and demo[1].start == demo[0].steps


def test_yaml_and_json_files_and_typed_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 1.0e-3\nbatch_size: 4\ncurriculum: [t2i, edit]\n")
    cfg = load_config(tmp_path / "a.yaml", ["max_steps=7", "use_gpu=false", "lr=2e-3", "routing_blocks=0,2",
                                             "model_overrides.depth_single=2", "task_weights.edit=2.5",
                                             "task_weights.video=0", "where=vlm_rating >= 4"])
    assert (cfg.lr, cfg.batch_size, cfg.max_steps, cfg.use_gpu) == (2e-3, 4, 7, False)
    assert cfg.curriculum == ["t2i", "edit"] and cfg.routing_blocks == [0, 2] and cfg.where == "vlm_rating >= 4"
    assert cfg.model_overrides == {"depth_single": 2} and cfg.model_config().depth_single == 2
    assert cfg.task_weights == {"edit": 2.5, "video": 0.0}
    (tmp_path / "b.json").write_text(json.dumps(cfg.to_dict()))
    assert load_config(tmp_path / "b.json") == cfg
    # an int where a float is declared is widened; JSON list syntax works for list fields
    assert load_config(None, ["lr=1", 'datasets=["a.lance@1", "b.lance"]']).datasets == ["a.lance@1", "b.lance"]


@pytest.mark.parametrize("override, message", [
    ("batch_sise=4", "unknown config key"),
    ("batch_size=4.5", "expected an int"),
    ("use_gpu=maybe", "expected a bool"),
    ("lr=fast", "expected a float"),
    ("model_overrides.depth=3", "unknown DiTConfig keys"),
    ("lr.x=1", "not a dict field"),
    ("weight_mode=often", "weight_mode must be one of"),
    ("mix=random", "mix must be one of"),
    ("loss_space=x0", "loss_space must be one of"),
    ("where=vlm_rating is good", "where: cannot read"),
    ("routing_blocks=0,9", "outside the model's"),
    ("routing_pairs=>x", "is not NAME"),
    ("ref_dropout=1.0", "ref_dropout must be in"),
    ("stages.0.lr=1", "has 0 stage"),
    ("task_weights.edit=lots", "expected a float"),
    ("batch_size", "expected key=value"),
])
def test_bad_overrides_fail_with_the_reason(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_file_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(tmp_path / "typo.yaml")
    (tmp_path / "bad.yaml").write_text("max_steps: ten\n")
    with pytest.raises(ValueError, match="max_steps: expected int"):
        load_config(tmp_path / "bad.yaml")


def test_hash_is_what_the_run_learns_not_how_it_runs():
    base = TrainConfig()
    assert base.replace(num_workers=2, batch_size=8, log_every=3, name="x").hash == base.hash
    assert base.replace(lr=1e-3).hash != base.hash
    assert base.replace(datasets=["a.lance@2"]).hash != base.replace(datasets=["a.lance@1"]).hash
    assert apply_overrides({}, ["seed=3"]) == {"seed": 3}


def test_lr_warmup_then_constant_cosine_or_linear():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, max_steps=14)
    assert [lr_at(s, cfg) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cos = cfg.replace(lr_schedule="cosine")
    values = [lr_at(s, cos) for s in range(4, 14)]
    assert values[0] == pytest.approx(1.0) and all(a > b for a, b in zip(values, values[1:]))
    assert lr_at(13, cos) < 0.05
    lin = cfg.replace(lr_schedule="linear", warmup_steps=0, max_steps=4)
    assert [lr_at(s, lin) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_routing_weight_ramps_in_over_a_stage_start():
    assert [ramped_weight(0.5, s, 4) for s in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert ramped_weight(0.5, 0, 0) == 0.5
    with pytest.raises(ValueError, match="routing_ramp_steps must be >= 0"):
        load_config(None, ["routing_ramp_steps=-1"])
    staged = TrainConfig.from_dict({"datasets": ["a.lance@1"], "stages": [
        {"name": "a", "steps": 2}, {"name": "b", "steps": 2, "routing_ramp_steps": 10, "lr_schedule": "linear"}]})
    assert [st.config.routing_ramp_steps for st in resolve_stages(staged)] == [0, 10]


STAGED = {"lr": 1e-3, "datasets": ["a.lance@1"], "stages": [
    {"name": "pretrain", "steps": 5},
    {"name": "hq", "steps": 3, "lr": 1e-4, "lr_schedule": "linear", "where": "q >= 2", "datasets": ["b.lance@reviewed"],
     "resolution": 64}]}


def test_a_staged_config_is_one_config_per_stage_on_one_step_counter():
    cfg = TrainConfig.from_dict(STAGED)
    assert cfg.max_steps == 8
    stages = resolve_stages(cfg)
    assert [(s.name, s.start, s.stop) for s in stages] == [("pretrain", 0, 5), ("hq", 5, 8)]
    pre, hq = stages
    assert pre.config.lr == 1e-3 and pre.config.datasets == ["a.lance@1"] and pre.config.where == ""
    assert hq.config.lr == 1e-4 and hq.config.datasets == ["b.lance@reviewed"] and hq.config.resolution == 64
    assert hq.config.max_steps == 3 and not hq.config.stages
    assert [stage_at(stages, s).name for s in range(8)] == ["pretrain"] * 5 + ["hq"] * 3
    with pytest.raises(IndexError):
        stage_at(stages, 8)
    # a stage is changed from the command line like any field; the hash follows it
    longer = load_config(None, [f"stages={json.dumps(STAGED['stages'])}", "stages.1.steps=7", "stages.0.lr=0.01"])
    assert longer.max_steps == 12 and longer.stages[0]["lr"] == 0.01
    assert longer.hash != TrainConfig.from_dict(STAGED | {"datasets": []}).hash
    assert TrainConfig.from_dict(longer.to_dict()) == longer  # a checkpoint's config reads back


@pytest.mark.parametrize("change, message", [
    ({"stages": [{"name": "a", "steps": 2}, {"name": "b", "steps": 2}]}, "must anneal the LR to 0"),
    ({"stages": [{"name": "a", "steps": 2}, {"name": "a", "steps": 2, "lr_schedule": "linear"}]}, "unique"),
    ({"stages": [{"name": "a"}]}, "needs `steps`"),
    ({"stages": [{"name": "a", "steps": 2, "model": "small"}]}, "unknown stage keys"),
    ({"stages": [{"name": "a", "steps": 2, "lr": -1}]}, "stage 'a': lr must be > 0"),
    ({"stages": [{"name": "a", "steps": 2}], "max_steps": 9}, "not the sum"),
])
def test_bad_stages_fail_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(change)


def test_configs_from_before_native_sizes_still_load():
    old = TrainConfig().to_dict() | {"aspect_ratios": ["1:1"], "bucket_multiple": 0}
    assert TrainConfig.from_dict(old) == TrainConfig()


def test_checkpoint_round_trip_restores_model_optimizer_rng_and_refuses_another_plan(tmp_path):
    from models.dit import UnifiedDiT

    cfg = TrainConfig(model_overrides={"hidden_size": 48, "num_heads": 2, "depth_double": 1, "depth_single": 1,
                                       "axes_dim": [8, 8, 8]})
    torch.manual_seed(0)
    model = UnifiedDiT(cfg.model_config())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.final_layer.linear.weight.data.normal_()
    model.final_layer.linear.weight.sum().backward()
    opt.step()
    torch.manual_seed(123)
    state = checkpointing.TrainState(next_step=5, plan="p" * 64, config=cfg.to_dict(),
                                     history=[{"step": s, "loss": 1.0 / (s + 1)} for s in range(5)])
    checkpointing.save(tmp_path / "ck", model, opt, state, {"kind": "checkpoint"}, {"train_config": cfg.to_dict()})
    expected_draw = torch.rand(3)

    torch.manual_seed(999)
    fresh = UnifiedDiT(cfg.model_config())
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    back = checkpointing.restore(tmp_path / "ck", fresh, fresh_opt, plan="p" * 64)
    assert back.next_step == 5 and [r["step"] for r in back.history] == [0, 1, 2, 3, 4]
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    saved, loaded = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert saved.keys() == loaded.keys() and saved
    for k in saved:
        assert all(torch.equal(saved[k][name], loaded[k][name]) for name in saved[k])
    assert torch.equal(torch.rand(3), expected_draw)  # global RNG continues where it was saved
    with pytest.raises(ValueError, match="another data plan"):
        checkpointing.restore(tmp_path / "ck", fresh, fresh_opt, plan="q" * 64)
