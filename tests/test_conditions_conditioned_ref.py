"""Conditioned reference (iMontage): reference image(s) + condition map(s) -> image, task ref.conditioned,
made from stored rows whose inputs show the subject (collage subject tasks), off unless asked for."""

from __future__ import annotations

import lance
import numpy as np
import pytest

from compute import harness
from datagen.collage import CollageSpec, generate, starter_pack
from datagen.conditions.product import ConditionsConfig, ConditionsItems
from datagen.product import INPUT_ROW, Item
from datagen.rng import sample_rng
from datagen.schema import PLACEHOLDER, Sample, from_row, to_row, validate

SIZE = 96


@pytest.fixture(scope="module")
def rows():
    pack = starter_pack()
    out = {}
    for k, task in enumerate(("ref.subjects_varied", "ref.canvas", "edit.subject", "ref.subject", "edit.add")):
        s = generate(CollageSpec(task=task, size=SIZE, assets=pack), sample_rng(3, k))
        s.sample_id, s.index = f"id-{task}", k
        out[task] = to_row(s)
    return out


def _one(cfg: ConditionsConfig, row: dict) -> Sample:
    got = ConditionsItems(cfg)(Item(0, source="ds@1#0", input=INPUT_ROW, row=row), sample_rng(0, 0))
    assert len(got) == 1 and isinstance(got[0], Sample), got
    validate(got[0])
    return got[0]


def test_reference_rows_keep_their_references(rows):
    cfg = ConditionsConfig(images="unused", kinds=("canny", "seg"), with_references=True, multi_prob=0.0)
    for task in ("ref.subjects_varied", "ref.canvas", "ref.subject"):
        source = from_row(rows[task])
        refs = [p for p in source.inputs if p.role == "reference"]
        s = _one(cfg, rows[task])
        assert s.task == "ref.conditioned" and s.meta["references"] == len(refs) >= 1
        n = len(refs)
        assert [p.role for p in s.inputs[:n]] == ["reference"] * n and s.inputs[n].role.startswith("condition:")
        for got, want in zip(s.inputs, refs):
            assert np.array_equal(got.pixels, want.pixels)  # the references themselves, not a copy of the target
        assert np.array_equal(s.outputs[0].pixels, source.outputs[0].pixels)
        # Every input is named; the references come first, the map after them.
        assert {int(k) for k in PLACEHOLDER.findall(s.instruction)} == set(range(1, n + 2))
        assert f"map in <image {n + 1}>" in s.instruction
        # Each reference keeps its exact subject region, re-indexed to its new position.
        for j in range(n):
            src_index = [i for i, p in enumerate(source.inputs) if p.role == "reference"][j]
            want = [r.mask for r in source.regions if r.side == "input" and r.image == src_index]
            got = [r.mask for r in s.regions if r.side == "input" and r.image == j]
            assert len(got) == len(want) >= 1 and all(np.array_equal(a, b) for a, b in zip(got, want))
        assert any(r.side == "output" for r in s.regions)
    # The new subject tasks carry a caption of their output: it becomes the prompt.
    s = _one(cfg, rows["ref.subjects_varied"])
    cap = from_row(rows["ref.subjects_varied"]).meta["caption"]
    assert s.meta["prompt"] == cap[0].upper() + cap[1:] + "." and s.instruction.endswith(s.meta["prompt"])
    # An edit's output depends on its source scene too, and an edit.add has no reference at all:
    # ordinary ref.<kind> samples.
    assert _one(cfg, rows["edit.subject"]).task == "ref.canny"
    assert _one(cfg, rows["edit.add"]).task == "ref.canny"


def test_off_by_default(rows):
    cfg = ConditionsConfig(images="unused", kinds=("canny",))
    assert cfg.with_references is False
    s = _one(cfg, rows["ref.subjects_varied"])
    assert s.task == "ref.canny" and [p.role for p in s.inputs] == ["condition:canny"]


def test_conditions_run_over_a_collage_dataset(ray_local, tmp_path):
    collage = harness.execute(harness.plan_run("collage", out=str(tmp_path / "c.lance"), num=4, size=SIZE,
                                               tasks=["ref.subject_varied", "edit.add"]), workers=1, progress=False)
    spec = harness.plan_run("conditions", out=str(tmp_path / "cond.lance"), images=f"{collage.uri}@{collage.version}",
                            kinds="canny", with_references=True)
    res = harness.execute(spec, workers=1, progress=False)
    assert res.rows + res.rejects == 4
    tasks = sorted(lance.dataset(res.uri).to_table(columns=["task"]).column("task").to_pylist())
    assert tasks.count("ref.conditioned") == 2 and set(tasks) <= {"ref.conditioned", "ref.canny"}
