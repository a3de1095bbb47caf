"""The step plan: deterministic batches, length groups and token budgets, volume mixing, the
ramps and iMontage's cocktail schedule, per-sample weights, ranks, stages.

Pure numpy over a synthetic row index (no Lance, no Ray): thousands of steps in well under a
second, so the statistics below are tight.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.config import TrainConfig
from training.curriculum import cocktail_multipliers, curriculum_levels, curriculum_multipliers
from training.index import RowIndex
from training.mixing import RunPlan, StepPlan, length_class
from training.stages import Stage, resolve_stages


def make_index(spec: dict[str, tuple[int, int, int, int]], weights: dict[str, np.ndarray] | None = None) -> RowIndex:
    """spec: task -> (rows, n_in, tokens_in, tokens_out); one output each."""
    tasks = sorted(spec)
    cols = {k: [] for k in ("task", "n_in", "tokens_in", "tokens_out", "weight")}
    for t, name in enumerate(tasks):
        rows, n_in, tok_in, tok_out = spec[name]
        cols["task"] += [t] * rows
        cols["n_in"] += [n_in] * rows
        cols["tokens_in"] += [tok_in] * rows
        cols["tokens_out"] += [tok_out] * rows
        w = (weights or {}).get(name)
        cols["weight"] += list(w) if w is not None else [1.0] * rows
    n = len(cols["task"])
    return RowIndex(datasets=["/x.lance@1"], tasks=tasks, dataset=np.zeros(n, np.int16),
                    position=np.arange(n, dtype=np.int64), task=np.array(cols["task"], np.int16),
                    weight=np.array(cols["weight"], np.float32), n_in=np.array(cols["n_in"], np.int8),
                    n_out=np.ones(n, np.int8), tokens_in=np.array(cols["tokens_in"], np.int32),
                    tokens_out=np.array(cols["tokens_out"], np.int32), text_row=np.full(n, -1, np.int64),
                    text_caches=[""])


def plan(index: RowIndex, steps: int = 10_000, **cfg) -> StepPlan:
    return StepPlan(index, Stage(0, "main", 0, steps, TrainConfig(max_steps=steps, **cfg)), seed=cfg.get("seed", 0))


SPEC = {"edit.add": (300, 1, 64, 64), "edit.remove": (100, 1, 64, 64), "t2i.text": (200, 0, 0, 70),
        "video.pair": (400, 1, 88, 88)}


def task_counts(p: StepPlan, steps: range) -> Counter:
    counts: Counter = Counter()
    for s in steps:
        rows, _ = p.global_rows(s)
        counts.update(p.index.tasks[t] for t in p.index.task[rows].tolist())
    return counts


def test_length_ladder_pads_at_most_a_quarter():
    assert [length_class(n) for n in (0, 1, 4, 5, 9, 64, 65, 100, 1000)] == [0, 1, 4, 5, 10, 64, 80, 112, 1024]
    assert all(n <= length_class(n) <= 1.25 * n for n in range(1, 5000))


def test_batches_are_a_pure_function_of_seed_and_step():
    index = make_index(SPEC)
    a, b = plan(index, seed=1, batch_size=8), plan(index, seed=1, batch_size=8)
    later_first = [b.global_rows(s)[0].tolist() for s in (9, 3, 0)][::-1]  # asked in another order
    assert [a.global_rows(s)[0].tolist() for s in (0, 3, 9)] == later_first
    c = plan(index, seed=2, batch_size=8)
    assert [a.global_rows(s)[0].tolist() for s in range(5)] != [c.global_rows(s)[0].tolist() for s in range(5)]
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_a_batch_is_one_length_group_within_its_token_budget_and_ranks_split_it():
    index = make_index(SPEC)
    p = plan(index, batch_size=16, batch_tokens=600)
    padded = {g: sum(g) for g in p.groups}
    assert sorted(padded.values()) == [80, 128, 192]  # t2i 0 + 70->80, edits 64 + 64, video 88->96 twice
    run = RunPlan([p])
    for step in range(60):
        rows, g = p.global_rows(step)
        cls = p.groups[g]
        assert {(length_class(int(i)), length_class(int(o))) for i, o in
                zip(index.tokens_in[rows], index.tokens_out[rows])} == {cls}
        assert len(rows) == min(16, 600 // sum(cls)) and len(rows) * sum(cls) <= 600
        parts = [run.rank_rows(step, r, 2) for r in range(2)]
        assert np.concatenate([b.rows for b in parts]).tolist() == rows.tolist()
        assert all(b.real.all() and b.global_batch == len(rows) for b in parts)
    # without a token budget every step holds batch_size samples
    fixed = plan(index, batch_size=8)
    assert all(len(fixed.global_rows(s)[0]) == 8 for s in range(20))


def test_a_rank_without_a_row_repeats_one_that_weighs_nothing():
    index = make_index({"video.pair": (10, 1, 300, 300)})
    run = RunPlan([plan(index, batch_size=8, batch_tokens=1000)])  # one 600-token sample per step
    parts = [run.rank_rows(0, r, 2) for r in range(2)]
    assert [len(b.rows) for b in parts] == [1, 1] and parts[0].real.all() and not parts[1].real.any()
    assert parts[1].rows.tolist() == parts[0].rows.tolist() and parts[0].global_batch == 1


def test_samples_are_mixed_by_volume_whatever_each_group_s_batch_size():
    index = make_index(SPEC)
    p = plan(index, batch_size=32, batch_tokens=1024)  # edits: 8 per step, video: 4, t2i: 12
    assert len({int(b) for b in p.batch}) == 3
    counts = task_counts(p, range(4000))
    total = sum(counts.values())
    for task, (rows, *_) in SPEC.items():
        assert counts[task] / total == pytest.approx(rows / 1000, abs=0.02)
    flat = task_counts(plan(index, batch_size=8, mix_temperature=0.0), range(2000))
    for task in SPEC:
        assert flat[task] / sum(flat.values()) == pytest.approx(0.25, abs=0.03)
    # edit.add and edit.remove share a length group: their batches mix both tasks
    mixed = [set(index.task[p.global_rows(s)[0]].tolist()) for s in range(200)]
    assert any(len(m) > 1 for m in mixed)


def test_task_weights_by_prefix():
    index = make_index(SPEC)
    p = plan(index, batch_size=8, task_weights={"edit": 0.0, "t2i.text": 2.0})
    assert p.task_probs(0).tolist() == [0.0, 0.0, 0.5, 0.5]  # 200 rows x 2 vs 400 rows x 1
    counts = task_counts(p, range(4000))
    assert counts["edit.add"] == counts["edit.remove"] == 0
    assert counts["t2i.text"] / sum(counts.values()) == pytest.approx(0.5, abs=0.04)
    with pytest.raises(ValueError, match="leave no task"):
        plan(index, task_weights={"edit": 0, "t2i": 0, "video": 0})


def test_sample_weights_are_honoured_as_draw_frequency_or_as_loss():
    w = np.where(np.arange(400) % 2 == 1, 2.0, 1.0)  # odd video pairs up-weighted
    index = make_index(SPEC, {"video.pair": w})
    video = np.flatnonzero(index.task == index.tasks.index("video.pair"))

    def heavy_over_light(p: StepPlan) -> float:
        drawn: Counter = Counter()
        for s in range(1500):
            drawn.update(int(r) for r in p.global_rows(s)[0] if index.task[r] == index.tasks.index("video.pair"))
        heavy = sum(drawn[int(r)] for r in video if index.weight[r] == 2.0)
        return heavy / sum(drawn[int(r)] for r in video if index.weight[r] == 1.0)

    p = plan(index, batch_size=16)
    assert heavy_over_light(p) == pytest.approx(2.0, rel=0.1)
    counts = task_counts(p, range(1500))  # the task's share still follows its row count, not its weight mass
    assert counts["video.pair"] / sum(counts.values()) == pytest.approx(0.4, abs=0.03)
    assert heavy_over_light(plan(index, batch_size=16, weight_mode="loss")) == pytest.approx(1.0, rel=0.1)


def test_volume_curriculum_ramps_from_easy_to_hard_tasks():
    levels = curriculum_levels(["edit.add", "t2i.text", "video.pair", "zzz"], ["t2i", "edit", "video"])
    assert levels.tolist() == [1, 0, 2, 3]  # unlisted tasks come last
    series = np.stack([curriculum_multipliers(levels, s, 90, 0.1) for s in range(0, 100, 10)])
    assert (series[:, 1] == 1.0).all()  # the easiest task is never held back
    assert series[0].tolist() == [0.1, 1.0, 0.1, 0.1]
    assert (np.diff(series, axis=0) >= 0).all() and (series[-1] == 1.0).all()
    assert curriculum_multipliers(levels, 5, 0, 0.1).tolist() == [1, 1, 1, 1]  # no curriculum
    index = make_index(SPEC)
    p = plan(index, batch_size=8, curriculum=["t2i", "edit", "video"], curriculum_steps=1000, curriculum_floor=0.05)
    t = {name: i for i, name in enumerate(index.tasks)}
    early, late = p.task_probs(0), p.task_probs(1000)
    assert early[t["t2i.text"]] > 0.6 and early[t["video.pair"]] < 0.1
    assert late[t["video.pair"]] == pytest.approx(0.4) and late[t["t2i.text"]] == pytest.approx(0.2)


def test_cocktail_enters_easiest_first_decays_earlier_tasks_and_ends_on_the_hardest():
    levels = np.array([0, 1, 2])
    at = lambda s: cocktail_multipliers(levels, s, 300, 0.5)  # noqa: E731
    assert at(0).tolist() == [1.0, 0.0, 0.0]  # only the easiest at first
    assert at(100).tolist() == [1.0, 0.0, 0.0] and at(150).tolist() == [0.5, 1.0, 0.0]  # level 1 blended in
    assert at(299).tolist() == pytest.approx([0.25, 0.5, 1.0])  # the hardest ends largest
    assert at(5000).tolist() == pytest.approx([0.25, 0.5, 1.0])  # and holds
    # equal base weight per task whatever its volume: video (400 rows) = t2i (200) at the end's level
    index = make_index(SPEC)
    p = plan(index, steps=300, batch_size=8, mix="cocktail", cocktail_decay=0.5, curriculum=["t2i", "video", "edit"])
    t = {name: i for i, name in enumerate(index.tasks)}
    start, end = p.task_probs(0), p.task_probs(299)
    assert start[t["t2i.text"]] == 1.0
    assert end[t["edit.add"]] == end[t["edit.remove"]] > end[t["video.pair"]] > end[t["t2i.text"]] > 0
    assert end[t["edit.add"]] / end[t["t2i.text"]] == pytest.approx(4.0)  # two decays of 0.5
    shares = [p.task_probs(s)[t["t2i.text"]] for s in range(0, 300, 10)]
    assert all(a >= b - 1e-12 for a, b in zip(shares, shares[1:]))  # the easiest only ever loses share
    assert task_counts(p, range(0, 50))["video.pair"] == 0  # nothing harder before its entry


def test_a_run_plan_walks_its_stages_and_their_shares():
    index = make_index(SPEC)
    cfg = TrainConfig.from_dict({"batch_size": 8, "stages": [
        {"name": "a", "steps": 10, "task_weights": {"video": 0}},
        {"name": "b", "steps": 5, "lr_schedule": "linear", "mix": "cocktail", "curriculum": ["video", "t2i"]}]})
    run = RunPlan([StepPlan(index, st, 0) for st in resolve_stages(cfg)])
    assert run.total_steps == 15 and run.plan_at(9).stage.name == "a" and run.plan_at(10).stage.name == "b"
    assert all(run.rank_rows(s, 0, 1).stage == (0 if s < 10 else 1) for s in range(15))
    schedule = run.share_schedule(points=16)
    video = schedule["tasks"].index("video.pair")
    by_step = dict(zip(schedule["steps"], schedule["shares"]))
    assert by_step[9][video] == 0 and by_step[10][video] == 1.0  # stage b starts on its easiest level
    assert [s["name"] for s in schedule["stages"]] == ["a", "b"] and all(abs(sum(r) - 1) < 1e-5 for r in schedule["shares"])
    assert run.fingerprint() != RunPlan(run.plans[:1]).fingerprint()


def test_an_empty_index_is_refused_before_training():
    with pytest.raises(ValueError, match="no trainable rows"):
        plan(make_index({}))
