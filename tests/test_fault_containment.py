"""Faults are inputs too: a worker that segfaults, an item that hangs, and every exception on
the path from item to row end as reject rows with a reason; the run completes, and
inputs = kept + rejected. Real local Ray, real Lance."""

from __future__ import annotations

import cloudpickle
import lance
import pytest

import tests.faulty_product as faulty
from compute import harness

cloudpickle.register_pickle_by_value(faulty)


def _run(tmp_path, name, workers=2, item_timeout_s=5.0, **config):
    spec = harness.prepare(faulty.PRODUCT, faulty.FaultyConfig(**config), out=str(tmp_path / f"{name}.lance"))
    res = harness.execute(spec, workers=workers, progress=False, item_timeout_s=item_timeout_s, setup_timeout_s=30.0)
    rejects = {r["index"]: r for r in lance.dataset(res.rejects_uri).to_table().to_pylist()}
    kept = sorted(lance.dataset(res.uri).to_table(columns=["index"]).column("index").to_pylist())
    assert sorted(kept + list(rejects)) == list(range(config.get("num", 8)))  # every input exactly once
    return res, kept, rejects


@pytest.mark.parametrize("actors", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["actors", "tasks"])
def test_a_segfaulting_item_becomes_a_reject_and_the_run_completes(ray_local, tmp_path, actors):
    res, kept, rejects = _run(tmp_path, "crash", num=8, crash=(1,), reuse_setup=actors)
    assert set(rejects) == {1} and rejects[1]["reason"] == "worker_crashed" and rejects[1]["stage"] == "worker"
    assert kept == [0, 2, 3, 4, 5, 6, 7]
    shards = res.lineage["shards"]
    assert shards["total"] == 2
    # the same run without the crash gives the same pixels for the innocent items
    clean, _, _ = _run(tmp_path, "clean", num=8, reuse_setup=actors)

    def pixels(uri):
        rows = lance.dataset(uri).to_table(columns=["index", "outputs"]).to_pylist()
        return {r["index"]: r["outputs"][0]["data"] for r in rows}

    assert pixels(res.uri) == {i: b for i, b in pixels(clean.uri).items() if i != 1}


def test_a_hanging_item_times_out_into_a_reject(ray_local, tmp_path):
    res, kept, rejects = _run(tmp_path, "hang", num=4, hang=(2,), reuse_setup=True, item_timeout_s=1.0)
    assert set(rejects) == {2} and rejects[2]["reason"] == "timeout"
    assert kept == [0, 1, 3]


def test_every_exception_between_item_and_row_is_contained(ray_local, tmp_path):
    res, kept, rejects = _run(tmp_path, "exc", num=12, raise_=(0,), none=(1,), junk=(2,), nan_meta=(3,),
                              nan_reject_meta=(4,), bad_check=(5,), workers=1)
    reasons = {i: rejects[i]["reason"] for i in rejects}
    assert reasons == {0: "error:RuntimeError", 1: "no_output", 2: "error:TypeError", 3: "invalid_sample",
                       4: "too_dull", 5: "checker_error:ZeroDivisionError"}
    assert "meta_error" in rejects[4]["meta"]  # the NaN meta was replaced, the reject kept
    assert kept == list(range(6, 12))
    assert res.rows + res.rejects == 12
