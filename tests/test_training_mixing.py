"""The step plan: deterministic batches, grouped shapes, volume mixing, curriculum, per-sample weights.

Pure numpy over a synthetic row index (no Lance, no Ray): thousands of steps in well under a
second, so the statistics below are tight.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.buckets import Bucket
from training.config import TrainConfig
from training.index import RowIndex
from training.mixing import StepPlan, curriculum_levels, curriculum_multipliers

BUCKETS = [Bucket(32, 32), Bucket(28, 36)]


def make_index(spec: dict[str, tuple[int, int, int, int]], weights: dict[str, np.ndarray] | None = None) -> RowIndex:
    """spec: task -> (rows, n_in, n_out, bucket)."""
    tasks = sorted(spec)
    cols = {k: [] for k in ("task", "n_in", "n_out", "bucket", "weight")}
    for t, name in enumerate(tasks):
        rows, n_in, n_out, bucket = spec[name]
        cols["task"] += [t] * rows
        cols["n_in"] += [n_in] * rows
        cols["n_out"] += [n_out] * rows
        cols["bucket"] += [bucket] * rows
        w = (weights or {}).get(name)
        cols["weight"] += list(w) if w is not None else [1.0] * rows
    n = len(cols["task"])
    return RowIndex(datasets=["/x.lance@1"], tasks=tasks, buckets=BUCKETS, dataset=np.zeros(n, np.int16),
                    position=np.arange(n, dtype=np.int64), task=np.array(cols["task"], np.int16),
                    weight=np.array(cols["weight"], np.float32), n_in=np.array(cols["n_in"], np.int8),
                    n_out=np.array(cols["n_out"], np.int8), bucket=np.array(cols["bucket"], np.int16))


SPEC = {"edit.add": (300, 1, 1, 0), "edit.remove": (100, 1, 1, 0), "t2i.text": (200, 0, 1, 1),
        "video.pair": (400, 1, 1, 1)}


def task_counts(plan: StepPlan, steps: range) -> Counter:
    counts: Counter = Counter()
    for s in steps:
        rows, _ = plan.global_rows(s)
        counts.update(plan.index.tasks[t] for t in plan.index.task[rows].tolist())
    return counts


def test_batches_are_a_pure_function_of_seed_and_step():
    index = make_index(SPEC)
    a, b = StepPlan(index, TrainConfig(seed=1, batch_size=8)), StepPlan(index, TrainConfig(seed=1, batch_size=8))
    later_first = [b.global_rows(s)[0].tolist() for s in (9, 3, 0)][::-1]  # asked in another order
    assert [a.global_rows(s)[0].tolist() for s in (0, 3, 9)] == later_first
    c = StepPlan(index, TrainConfig(seed=2, batch_size=8))
    assert [a.global_rows(s)[0].tolist() for s in range(5)] != [c.global_rows(s)[0].tolist() for s in range(5)]
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_each_batch_shares_one_shape_group_and_ranks_split_it():
    index = make_index(SPEC)
    plan = StepPlan(index, TrainConfig(batch_size=8, num_workers=4))
    for step in range(50):
        rows, (n_in, n_out, bucket) = plan.global_rows(step)
        assert (index.n_in[rows] == n_in).all() and (index.n_out[rows] == n_out).all()
        assert (index.bucket[rows] == bucket).all()
        parts = [plan.rank_rows(step, r, 4)[0] for r in range(4)]
        assert all(len(p) == 2 for p in parts)
        assert np.concatenate(parts).tolist() == rows.tolist()


def test_tasks_are_mixed_by_data_volume_and_temperature_flattens_it():
    index = make_index(SPEC)
    counts = task_counts(StepPlan(index, TrainConfig(batch_size=8)), range(2000))
    total = sum(counts.values())
    for task, (rows, *_) in SPEC.items():
        assert counts[task] / total == pytest.approx(rows / 1000, abs=0.03)
    flat = task_counts(StepPlan(index, TrainConfig(batch_size=8, mix_temperature=0.0)), range(2000))
    for task in SPEC:
        assert flat[task] / total == pytest.approx(0.25, abs=0.03)
    # edit.add and edit.remove share a shape group: their batches mix both tasks
    mixed = [set(index.task[StepPlan(index, TrainConfig(batch_size=8)).global_rows(s)[0]].tolist()) for s in range(200)]
    assert any(len(m) > 1 for m in mixed)


def test_task_weights_by_prefix():
    index = make_index(SPEC)
    plan = StepPlan(index, TrainConfig(batch_size=8, task_weights={"edit": 0.0, "t2i.text": 2.0}))
    assert plan.task_probs(0).tolist() == [0.0, 0.0, 0.5, 0.5]  # 200 rows x 2 vs 400 rows x 1
    counts = task_counts(plan, range(4000))
    assert counts["edit.add"] == counts["edit.remove"] == 0
    # t2i and video never share a batch (different input counts): each step is one coin flip
    assert counts["t2i.text"] / sum(counts.values()) == pytest.approx(0.5, abs=0.04)


def test_sample_weights_are_honoured_as_draw_frequency_or_as_loss():
    w = np.where(np.arange(400) % 2 == 1, 2.0, 1.0)  # odd video pairs up-weighted
    index = make_index(SPEC, {"video.pair": w})
    video = np.flatnonzero(index.task == index.tasks.index("video.pair"))
    drawn: Counter = Counter()
    plan = StepPlan(index, TrainConfig(batch_size=16))
    for s in range(1500):
        rows, _ = plan.global_rows(s)
        drawn.update(int(r) for r in rows if index.task[r] == index.tasks.index("video.pair"))
    heavy = sum(drawn[int(r)] for r in video if index.weight[r] == 2.0)
    light = sum(drawn[int(r)] for r in video if index.weight[r] == 1.0)
    assert heavy / light == pytest.approx(2.0, rel=0.1)
    # the video task's share still follows its row count, not its weight mass
    counts = task_counts(plan, range(1500))
    assert counts["video.pair"] / sum(counts.values()) == pytest.approx(0.4, abs=0.03)
    # weight_mode=loss: drawn uniformly (the loop multiplies the loss instead)
    uniform = StepPlan(index, TrainConfig(batch_size=16, weight_mode="loss"))
    drawn.clear()
    for s in range(1500):
        drawn.update(int(r) for r in uniform.global_rows(s)[0] if index.task[r] == index.tasks.index("video.pair"))
    heavy = sum(drawn[int(r)] for r in video if index.weight[r] == 2.0)
    light = sum(drawn[int(r)] for r in video if index.weight[r] == 1.0)
    assert heavy / light == pytest.approx(1.0, rel=0.1)


def test_cocktail_curriculum_moves_from_easy_to_hard_tasks():
    levels = curriculum_levels(["edit.add", "t2i.text", "video.pair", "zzz"], ["t2i", "edit", "video"])
    assert levels.tolist() == [1, 0, 2, 3]  # unlisted tasks come last
    series = np.stack([curriculum_multipliers(levels, s, 90, 0.1) for s in range(0, 100, 10)])
    assert (series[:, 1] == 1.0).all()  # the easiest task is never held back
    assert series[0].tolist() == [0.1, 1.0, 0.1, 0.1]
    assert (np.diff(series, axis=0) >= 0).all() and (series[-1] == 1.0).all()
    assert curriculum_multipliers(levels, 5, 0, 0.1).tolist() == [1, 1, 1, 1]  # no curriculum

    index = make_index(SPEC)
    plan = StepPlan(index, TrainConfig(batch_size=8, curriculum=["t2i", "edit", "video"], curriculum_steps=1000,
                                       curriculum_floor=0.05))
    early, late = plan.task_probs(0), plan.task_probs(1000)
    t = {name: i for i, name in enumerate(index.tasks)}
    assert early[t["t2i.text"]] > 0.6 and early[t["video.pair"]] < 0.1
    assert late[t["video.pair"]] == pytest.approx(0.4) and late[t["t2i.text"]] == pytest.approx(0.2)
    start = task_counts(plan, range(0, 100))
    assert start["t2i.text"] > 2 * start["video.pair"]


def test_an_empty_index_is_refused_before_training():
    empty = make_index({})
    with pytest.raises(ValueError, match="no trainable rows"):
        StepPlan(empty, TrainConfig())
