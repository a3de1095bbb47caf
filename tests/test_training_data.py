"""Lance -> row index -> Ray Data decode -> bucketed batches, on real Lance datasets and local Ray."""

from __future__ import annotations

import numpy as np
import pytest

from datagen import schema
from datagen.images import decode
from datagen.schema import Picture, Sample
from datagen.store import lance_io
from tests.test_training_support import make_photo_dataset, make_text_encoder
from training.buckets import Bucket, assign_buckets, fit_to_bucket, make_buckets
from training.config import TrainConfig
from training.data import step_batches
from training.index import build_index, pin
from training.mixing import StepPlan

BUCKETS = make_buckets(32, ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16"], 4)


def _write(uri: str, samples: list[Sample], corrupt: set[int]) -> str:
    rows = []
    for i, s in enumerate(samples):
        s.sample_id, s.index = schema.make_id("bad", i), i
        row = schema.to_row(s)
        if i in corrupt:
            row["inputs"][0]["data"] = b"\x89PNG\r\n\x1a\n but then nothing"
        rows.append(row)
    table = schema.pa.Table.from_pylist(rows, schema=schema.SAMPLE_SCHEMA)
    frags = lance_io.write_uncommitted(table, uri, schema.SAMPLE_SCHEMA)
    return f"{lance_io.commit(uri, schema.SAMPLE_SCHEMA, frags, {'kind': 'dataset', 'rows': len(rows)}).uri}@1"


@pytest.fixture(scope="module")
def datasets(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    photos = make_photo_dataset(root / "photos.lance", num=16)
    rng = np.random.default_rng(0)

    def pic(h=40, w=40):
        return Picture(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "source")

    bad = [Sample("edit.add", f"edit {i} <image 1>", [pic()], [pic()]) for i in range(4)]
    bad.append(Sample("edit.add", "never drawn", [pic()], [pic()], weight=0.0))
    bad.append(Sample("ref.subject", "too many", [pic() for _ in range(5)], [pic()]))
    return {"photos": photos, "bad": _write(str(root / "bad.lance"), bad, corrupt={2}), "root": root}


def test_buckets_keep_area_and_aspect():
    sizes = {(b.height, b.width) for b in BUCKETS}
    assert (32, 32) in sizes and (28, 36) in sizes and (36, 28) in sizes
    assert all(b.height % 4 == 0 and b.width % 4 == 0 for b in BUCKETS)
    assert all(abs(b.height * b.width - 1024) < 200 for b in BUCKETS)
    picked = assign_buckets(np.array([64, 48, 60, 100]), np.array([48, 64, 40, 100]), BUCKETS)
    assert [str(BUCKETS[i]) for i in picked] == ["28x36", "36x28", "28x40", "32x32"]


def test_fit_to_bucket_crops_without_distortion_and_keeps_mask_values():
    yy, xx = np.mgrid[:60, :120]
    disk = ((yy - 30) ** 2 + (xx - 60) ** 2 <= 20**2).astype(np.uint8) * 255  # round, in a 1:2 frame
    out = fit_to_bucket(disk, Bucket(32, 32), role="mask")
    assert out.shape == (32, 32, 3)
    assert set(np.unique(out).tolist()) <= {0, 255}  # labels are not blended
    ys, xs = np.nonzero(out[:, :, 0])
    assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1  # still a disk, not an ellipse
    rgba = np.zeros((20, 20, 4), np.uint8)
    assert (fit_to_bucket(rgba, Bucket(8, 8)) == 255).all()  # transparent -> white, as references are shown


def test_index_keeps_trainable_rows_at_their_lance_positions(datasets):
    refs = pin([datasets["photos"].split("@")[0], datasets["bad"]])
    assert refs[0] == datasets["photos"]  # the latest version is pinned
    index = build_index(refs, BUCKETS, max_inputs=4, max_outputs=4)
    assert index.skipped == {"zero_weight": 1, "too_many_inputs": 1}
    assert index.rows_per_dataset == {refs[0]: 16, refs[1]: 4}
    assert index.tasks == ["edit.add", "edit.remove", "t2i.photo", "video.pair"]
    for d, ref in enumerate(refs):
        mine = np.flatnonzero(index.dataset == d)
        stored = lance_io.open_dataset(ref).take(index.position[mine].tolist(), columns=["task"]).column("task")
        assert stored.to_pylist() == [index.tasks[t] for t in index.task[mine]]
    summary = index.summary()
    assert summary["groups"] == {"0in-1out-28x36": 4, "1in-1out-28x40": 4, "1in-1out-32x32": 12}
    with pytest.raises(FileNotFoundError, match="no version 9"):
        pin([datasets["photos"].split("@")[0] + "@9"])
    with pytest.raises(FileNotFoundError, match="no Lance dataset"):
        pin([str(datasets["root"] / "missing.lance")])


def test_step_batches_decode_exactly_the_planned_rows(datasets, tmp_path):
    refs = pin([datasets["photos"]])
    index = build_index(refs, BUCKETS, max_inputs=4, max_outputs=4)
    plan = StepPlan(index, TrainConfig(batch_size=4, num_workers=2, seed=5))
    ds = lance_io.open_dataset(refs[0])
    batches = list(step_batches(plan, 1, 2, 3, 7, data_tasks=2, prefetch_steps=2))
    assert [b.step for b in batches] == [3, 4, 5, 6]
    for b in batches:
        rows, (n_in, n_out, bucket) = plan.rank_rows(b.step, 1, 2)
        assert b.rows.tolist() == rows.tolist() and b.n_in == n_in
        assert b.frames.shape == (2, n_in + n_out, index.buckets[bucket].height, index.buckets[bucket].width, 3)
        assert b.ok.all() and not b.errors
        stored = ds.take(index.position[rows].tolist(), columns=["sample_id", "instruction", "outputs"]).to_pylist()
        assert b.sample_ids == [r["sample_id"] for r in stored]
        assert b.instructions == [r["instruction"] for r in stored]
        expected = fit_to_bucket(decode(stored[0]["outputs"][0]["data"]), index.buckets[bucket])
        assert np.array_equal(b.outputs[0, 0], expected)


def test_a_row_that_fails_to_decode_is_reported_and_weighs_nothing(datasets, tmp_path):
    import torch

    from models.image_space import PixelSpace
    from models.text_encoder import TextEncoder
    from training.loop import to_edit_batch

    refs = pin([datasets["bad"]])
    index = build_index(refs, BUCKETS, max_inputs=4, max_outputs=4, drawable_zero_weight=True)
    assert index.skipped == {"too_many_inputs": 1} and len(index) == 5  # weight 0 kept: it scales the loss
    plan = StepPlan(index, TrainConfig(batch_size=8, weight_mode="loss"))
    batches = list(step_batches(plan, 0, 1, 0, 2))
    bad_id = schema.make_id("bad", 2)
    flagged = [(b, k) for b in batches for k, sid in enumerate(b.sample_ids) if sid == bad_id]
    assert flagged, "the plan should draw the corrupt row in two steps of 8 from 5 rows"
    for b, k in flagged:
        assert not b.ok[k] and (b.frames[k] == 0).all()
        assert any(e["sample_id"] == bad_id and e["reason"] == "decode_error" for e in b.errors)
    good = [k for k in range(8) if batches[0].ok[k]]
    assert good and all(batches[0].frames[k].any() for k in good)
    edit = to_edit_batch(batches[0], index, TextEncoder(make_text_encoder(tmp_path / "te")), PixelSpace(),
                         torch.device("cpu"), "loss")
    expected = batches[0].ok * index.weight[batches[0].rows]  # failed rows and weight-0 rows weigh nothing
    assert edit.weight.tolist() == pytest.approx(expected.tolist())
    assert edit.outputs.shape == (8, 1, 3, 32, 32) and edit.inputs.shape == (8, 1, 3, 32, 32)
