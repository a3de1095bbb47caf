"""learn_edit's README section rebuilt from saved runs: every run named by its own budget and files."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from benchmarks import learn_edit


def fake_run(stem: str, budget: learn_edit.Budget, region: float, mass: float) -> dict:
    scores = {"model_region": region, "identity_region": 9.8, "model_whole": 24.0, "identity_whole": 23.5,
              "model_outside": 33.0}
    by_task = {"edit.replace": dict(scores)}
    return {
        "stem": stem, "command": f"python -m benchmarks.learn_edit --stem {stem}", "data": "toy", "params": 5.5e6,
        "budget": budget.__dict__, "train_seconds": 60.0, "train_cpu_seconds": 55.0, "sample_seconds": 6.0,
        "sample_cpu_seconds": 6.0, "load_average_after_training": [1.0, 1.0, 1.0], "threads": 1,
        "metrics": {**scores, "by_task": by_task, "mean_of_k": {**scores, "by_task": by_task},
                    "one_sample_over_seeds": {"model_region": region - 0.1, "model_whole": 23.9, "model_outside": 33.0},
                    "attention": {"pairs": 3, "mass": mass, "uniform": 0.026}},
        "beats_identity": {"region": True, "whole": True, "mean_of_k_region": True, "mean_of_k_whole": True},
    }


@pytest.fixture
def saved(tmp_path, monkeypatch):
    monkeypatch.setattr(learn_edit, "RESULTS", tmp_path)
    plain = learn_edit.Budget(routing_weight=0.0)
    runs = {
        "a_plain": fake_run("a_plain", plain, 12.5, 0.037),
        "b_routed": fake_run("b_routed", replace(plain, routing_weight=0.1, routing_ramp=400), 12.7, 0.31),
        "c_other": fake_run("c_other", replace(plain, init_seed=1), 12.8, 0.04),
    }
    for stem, r in runs.items():
        (tmp_path / f"{stem}.json").write_text(json.dumps(r))
    return runs


def test_report_names_each_run_by_its_budget_and_its_own_files(saved):
    md = learn_edit.main(["--report", "a_plain", "b_routed", "c_other"])
    header = next(line for line in md.splitlines() if line.startswith("| PSNR"))
    assert "one sample, no routing loss" in header
    assert "one sample, routing loss x0.1, ramped in over 400 steps" in header
    assert "| inside edited region | 12.5 | 12.7 |" in md
    assert "| inside edited region, one sample averaged over the 8 seeds | 12.40 | 12.60 | | | 9.8 |" in md
    assert "no routing loss **0.037**, routing loss x0.1, ramped in over 400 steps **0.310**" in md
    assert "`benchmarks/results/a_plain_loss.png`, `b_routed_loss.png`" in md
    assert "`a_plain_samples.png`, `b_routed_samples.png`" in md
    assert "Commands: `python -m benchmarks.learn_edit --stem a_plain`, `python -m benchmarks.learn_edit " \
           "--stem b_routed`." in md
    assert "- `c_other` (no routing loss, init seed 1): one sample region 12.80, whole 24.00, outside 33.00 dB; " \
           "mean of 8 region 12.80, whole 24.00 dB; one sample averaged over the 8 seeds: region 12.70, " \
           "whole 23.90 dB; attention mass 0.040." in md


def test_a_routed_run_alone_is_not_called_unrouted(saved):
    md = learn_edit.main(["--report", "b_routed"])
    assert "no routing loss" not in md
    assert "one sample, routing loss x0.1, ramped in over 400 steps" in md
    assert "`benchmarks/results/b_routed_loss.png`; samples: `b_routed_samples.png`." in md
