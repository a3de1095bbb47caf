"""The collage flow through Prefect's real test harness, real local Ray and real Lance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lance

from flows import lineage


def _artifact(key):
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def test_collage_flow_every_task(prefect_harness, ray_local, tmp_path):
    from datagen.collage import TASKS, check
    from datagen.schema import from_row
    from flows.collage_flow import collage_flow

    out = str(tmp_path / "collage.lance")
    res = collage_flow(out=out, num=2 * len(TASKS), seed=11, size=128, workers=2, shard_size=8, progress=False)
    assert res["rows"] + res["rejects"] == 2 * len(TASKS)
    ds = lance.dataset(out)
    tasks = ds.to_table(columns=["task"]).column("task").to_pylist()
    assert set(tasks) == set(TASKS)  # every family is in the dataset
    assert res["audit"]["failed"] == 0
    for row in ds.take(list(range(0, ds.count_rows(), 5))).to_pylist():
        assert check(from_row(row)) is None
    # The card is a keyed Prefect artifact with counts, rejects, schema, how to load, thumbnails.
    art = _artifact(res["card"])
    assert art is not None, "card artifact missing"
    md = art.data
    assert f"version={res['version']}" in md and "Samples per task" in md and "data:image/jpeg;base64," in md
    assert len(md.encode()) < 1_000_000
    for t in TASKS:
        assert f"`{t}`" in md
    node = lineage.dataset_node(out)
    assert node["flow_runs"] and node["flow_runs"][0]["flow"] == "collage-dataset"
    assert node["sources"][0]["kind"] == "assets" and node["sources"][0]["content_hash"]
    assert node["code"]["package"].startswith("unimontage")
    assert lineage.verify_dataset(out)["ok"]


def test_cli_collage_card_lineage(tmp_path):
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), TQDM_DISABLE="1")
    env.pop("PREFECT_API_URL", None)
    exe = [sys.executable, "-m", "flows.cli"]
    out = str(tmp_path / "cli.lance")
    run = subprocess.run(exe + ["datagen", "collage", "--out", out, "--num", "6", "--seed", "2", "--size", "96",
                                "--tasks", "edit.remove,drag", "--workers", "1", "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    assert result["rows"] + result["rejects"] == 6
    tasks = set(lance.dataset(out).to_table(columns=["task"]).column("task").to_pylist())
    assert tasks <= {"edit.remove", "drag.translate", "drag.scale", "drag.rotate"}
    card = subprocess.run(exe + ["card", out], env=env, capture_output=True, text=True, timeout=120)
    assert card.returncode == 0 and "Samples per task" in card.stdout and "base64" not in card.stdout
    lin = subprocess.run(exe + ["lineage", out, "--verify"], env=env, capture_output=True, text=True, timeout=120)
    assert lin.returncode == 0, lin.stderr
    assert "dataset cli" in lin.stdout and '"ok": true' in lin.stdout
    bad = subprocess.run(exe + ["datagen", "collage", "--out", out, "--num", "2", "--tasks", "nope"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown collage task" in bad.stderr
    helptext = subprocess.run(exe + ["datagen", "collage", "--help"], env=env, capture_output=True, text=True)
    assert "--workers" in helptext.stdout and "--assets" in helptext.stdout
