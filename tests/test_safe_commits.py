"""Commits that never lose or mix data: one run per URI, optimistic commits, foreign datasets
refused, markers verified on resume, abandoned staging and orphans cleaned, lineage that
survives compaction and cleanup, and `unimontage doctor` saying what is wrong.
Real local Ray, real Lance."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cloudpickle
import lance
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import tests.toy_product as toy
from compute import harness
from datagen.store import lance_io, lineage
from datagen.store.lease import DatasetBusy, Lease

cloudpickle.register_pickle_by_value(toy)


def _spec(out, num=24, seed=3, **cfg):
    return harness.prepare(toy.PRODUCT, toy.ToyConfig(num=num, **cfg), out=str(out), seed=seed, shard_size=4)


def test_a_second_run_on_a_busy_uri_stops_at_once_naming_the_first(ray_local, tmp_path):
    out = tmp_path / "busy.lance"
    other = Lease(str(out), run_id="run-A")
    other.acquire()  # held by a live process on this host (ours), as a running flow would
    with pytest.raises(DatasetBusy, match="being written by run run-A"):
        harness.execute(_spec(out), workers=1, progress=False)
    other.release()
    # a lease whose process is gone (kill -9) does not block the re-run
    Path(lance_io.normalise_uri(str(out)) + "/_unimontage").mkdir(parents=True, exist_ok=True)
    dead = {"run_id": "run-B", "host": os.uname().nodename, "pid": 2**22 + 12345, "heartbeat": 9e12}
    lance_io.write_text(f"{lance_io.normalise_uri(str(out))}/_unimontage/lease.json", json.dumps(dead))
    res = harness.execute(_spec(out), workers=1, progress=False)
    assert res.rows + res.rejects == 24
    assert Lease(str(out), "x").holder() is None  # released after the commit


def test_a_commit_on_a_stale_version_is_refused(tmp_path):
    uri = str(tmp_path / "t.lance")
    schema = pa.schema([("a", pa.int64())])
    frags = lance_io.write_uncommitted(pa.table({"a": [1, 2]}, schema=schema), uri, schema)
    lance_io.commit(uri, schema, frags, {"rows": 2}, read_version=0)
    frags2 = lance_io.write_uncommitted(pa.table({"a": [3]}, schema=schema), uri, schema)
    lance_io.commit(uri, schema, frags2, {"rows": 1}, read_version=1)  # another run commits first
    frags3 = lance_io.write_uncommitted(pa.table({"a": [4]}, schema=schema), uri, schema)
    with pytest.raises(lance_io.ConcurrentWrite, match="written by another run"):
        lance_io.commit(uri, schema, frags3, {"rows": 1}, read_version=1)
    assert lance.dataset(uri).to_table().column("a").to_pylist() == [3]  # the other run's data stands


def test_out_of_another_product_is_refused_without_overwrite(ray_local, tmp_path):
    out = tmp_path / "x.lance"
    harness.execute(harness.plan_run("collage", out=str(out), num=2, tasks=["t2i.shapes"], size=64), workers=1,
                    progress=False)
    with pytest.raises(ValueError, match="holds a 'collage' dataset, not 'toy'"):
        harness.execute(_spec(out), workers=1, progress=False)
    res = harness.execute(_spec(out), workers=1, progress=False, overwrite=True)
    assert lineage.dataset_node(str(out))["product"] == "toy" and res.version == 2


def test_resume_reruns_a_shard_whose_fragment_vanished(ray_local, tmp_path):
    out = tmp_path / "r.lance"
    with pytest.raises(harness.InterruptedRun):
        harness.execute(_spec(out), workers=1, progress=False, max_shards=3)
    stage = Path(harness.staging_uri(str(out), _spec(out).run_key))
    marker = json.loads((stage / "shard-000001.json").read_text())
    victim = json.loads(marker["fragments"][0])["files"][0]["path"]
    (Path(lance_io.normalise_uri(str(out))) / "data" / victim).unlink()
    res = harness.execute(_spec(out), workers=1, progress=False)
    assert res.resumed_shards == 2 and res.ran_shards == 4  # shard 1 ran again
    assert lineage.verify_dataset(res.uri)["ok"]
    fresh = harness.execute(_spec(tmp_path / "fresh.lance"), workers=1, progress=False)
    assert fresh.content_hash == res.content_hash


def test_clean_removes_abandoned_staging_and_orphans_and_keeps_versions(ray_local, tmp_path):
    from datagen.store import cleanup

    out = tmp_path / "c.lance"
    first = harness.execute(_spec(out), workers=1, progress=False)
    with pytest.raises(harness.InterruptedRun):  # another config, abandoned half way
        harness.execute(_spec(out, seed=9), workers=1, progress=False, max_shards=2)
    data = Path(lance_io.normalise_uri(str(out))) / "data"
    before = len(list(data.iterdir()))
    report = cleanup.clean(str(out))
    assert report["staging_removed"] == 1 and report["orphans"]["files"] >= 2
    assert len(list(data.iterdir())) == before - report["orphans"]["files"]
    assert lineage.verify_dataset(f"{first.uri}@{first.version}")["ok"]  # the committed version is intact


def test_lineage_survives_compaction_and_cleanup_of_old_versions(ray_local, tmp_path):
    from flows import card

    out = tmp_path / "k.lance"
    res = harness.execute(_spec(out, num=40), workers=2, progress=False)
    ds = lance.dataset(res.uri)
    assert len(ds.get_fragments()) > 1
    ds.optimize.compact_files(target_rows_per_fragment=1000)
    ds = lance.dataset(res.uri)
    assert ds.version > res.version and len(ds.get_fragments()) == 1
    node = lance_io.read_lineage(ds)
    assert node["content_hash"] == res.content_hash and node["maintenance"]["content_version"] == res.version
    assert lineage.verify_dataset(res.uri)["ok"]
    assert "Samples per task" in card.render_card(res.uri)
    again = harness.execute(_spec(out, num=40), workers=2, progress=False)
    assert again.up_to_date  # the same config is still recognised after compaction
    ds.cleanup_old_versions(older_than=__import__("datetime").timedelta(0))
    assert lance_io.read_lineage(lance.dataset(res.uri))["content_hash"] == res.content_hash


def test_doctor_reports_what_is_wrong(ray_local, tmp_path):
    from flows.cli import app

    out = tmp_path / "d.lance"
    res = harness.execute(_spec(out), workers=1, progress=False)
    runner = CliRunner()
    ok = runner.invoke(app, ["doctor", res.uri])
    assert ok.exit_code == 0, ok.output
    assert "[ok   ] content" in ok.output and "[ok   ] rejects content" in ok.output
    shutil.rmtree(lance_io.normalise_uri(res.rejects_uri))
    bad = runner.invoke(app, ["doctor", res.uri])
    assert bad.exit_code == 1 and "reject row(s) are lost" in bad.output
    verify = runner.invoke(app, ["lineage", res.uri, "--verify"])
    assert verify.exit_code == 1  # a missing rejects table no longer verifies as ok
    from flows import card

    assert "Rejects table missing" in card.render_card(res.uri)


def test_run_key_covers_the_code(ray_local, tmp_path, monkeypatch):
    out = tmp_path / "code.lance"
    harness.execute(_spec(out), workers=1, progress=False)
    assert harness.execute(_spec(out), workers=1, progress=False).up_to_date
    monkeypatch.setattr(lineage, "_SOURCE_HASH", ["0" * 64])  # the byte-making code changed
    again = harness.execute(_spec(out), workers=1, progress=False)
    assert not again.up_to_date and again.version == 2
