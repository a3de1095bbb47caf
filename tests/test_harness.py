"""The flow harness on real local Ray and real Lance: accounting, resume, determinism."""

from __future__ import annotations

import cloudpickle
import lance
import pytest

import tests.toy_product as toy
from compute import harness
from datagen.store import lance_io, lineage

cloudpickle.register_pickle_by_value(toy)  # Ray workers need not import the tests package


def make_plan(out, num=40, seed=3, shard_size=6):
    return harness.prepare(toy.PRODUCT, toy.ToyConfig(num=num), out=str(out), seed=seed, shard_size=shard_size)


def expected_counts(num):
    rejected = [i for i in range(num) if i % 7 == 3 or (i % 11 == 5)]
    return num - len(rejected), len(rejected)


def test_accounting_rejects_and_lineage(ray_local, tmp_path):
    res = harness.execute(make_plan(tmp_path / "toy.lance"), workers=2, progress=False)
    kept, rejected = expected_counts(40)
    assert (res.rows, res.rejects) == (kept, rejected)
    assert res.rows + res.rejects == 40  # inputs = kept + rejected
    ds = lance.dataset(res.uri)
    assert ds.count_rows() == kept
    ids = ds.to_table(columns=["sample_id"]).column("sample_id").to_pylist()
    assert len(set(ids)) == kept
    rej = lance.dataset(lance_io.rejects_uri(res.uri)).to_table().to_pylist()
    reasons = sorted({r["reason"] for r in rej})
    assert reasons == ["error:RuntimeError", "too_dark"]
    assert all(r["detail"] for r in rej)
    node = lineage.dataset_node(res.uri)
    assert node["rows"] == kept and node["accounting"]["items"] == 40
    assert node["accounting"]["items_with_samples"] + node["accounting"]["items_rejected"] == 40
    assert lineage.verify_dataset(res.uri)["ok"]


def test_same_bytes_with_one_and_two_workers(ray_local, tmp_path):
    a = harness.execute(make_plan(tmp_path / "a.lance"), workers=1, progress=False)
    b = harness.execute(make_plan(tmp_path / "b.lance"), workers=2, progress=False)
    assert a.content_hash == b.content_hash
    assert a.rows == b.rows
    c = harness.execute(make_plan(tmp_path / "c.lance", seed=4), workers=2, progress=False)
    assert c.content_hash != a.content_hash


def test_interrupted_run_resumes_without_duplicates_or_gaps(ray_local, tmp_path):
    out = tmp_path / "r.lance"
    plan = make_plan(out, num=50, shard_size=5)
    with pytest.raises(harness.InterruptedRun):
        harness.execute(plan, workers=2, progress=False, max_shards=4)
    assert not lance_io.exists(str(out))  # nothing committed by the interrupted run
    res = harness.execute(make_plan(out, num=50, shard_size=5), workers=2, progress=False)
    assert res.resumed_shards == 4 and res.ran_shards == 6
    ds = lance.dataset(res.uri)
    idx = sorted(ds.to_table(columns=["index"]).column("index").to_pylist())
    rej = sorted(lance.dataset(res.rejects_uri).to_table(columns=["index"]).column("index").to_pylist())
    assert sorted(idx + rej) == list(range(50))  # every input exactly once
    fresh = harness.execute(make_plan(tmp_path / "fresh.lance", num=50, shard_size=5), workers=1, progress=False)
    assert fresh.content_hash == res.content_hash
    again = harness.execute(make_plan(out, num=50, shard_size=5), workers=2, progress=False)
    assert again.up_to_date and again.version == res.version
    assert lance.dataset(res.uri).count_rows() == res.rows
