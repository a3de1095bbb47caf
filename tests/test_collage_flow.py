"""The collage flow through Prefect's real test harness, real local Ray and real Lance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import lance
import pytest

from datagen.store import lineage


def _artifact(key):
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def test_collage_flow_every_task(prefect_harness, ray_local, tmp_path):
    from datagen.collage import TASKS, check
    from datagen.schema import from_row
    from flows.datasets import collage_flow

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


@pytest.mark.slow  # make test-slow: tests/test_product_contract.py drives the CLI in make test
def test_cli_collage_card_lineage(tmp_path, prefect_api_url):
    # The session's Prefect server (an ephemeral one per command costs ~20 s each; make demo runs that path).
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), TQDM_DISABLE="1", PREFECT_API_URL=prefect_api_url)
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


def test_bad_asset_files_become_rejects_and_the_run_goes_on(ray_local, tmp_path):
    import numpy as np
    from PIL import Image

    from compute import harness
    from flows import card

    assets = tmp_path / "assets"
    (assets / "backgrounds").mkdir(parents=True)
    (assets / "cutouts").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)).save(assets / "backgrounds" / "noise.png")
    Image.fromarray(np.full((180, 180, 3), 90, np.uint8)).convert("CMYK").save(assets / "backgrounds" / "cmyk.jpg")
    disc = np.zeros((120, 120, 4), np.uint8)
    yy, xx = np.mgrid[:120, :120]
    disc[..., 0], disc[..., 3] = 220, ((yy - 60) ** 2 + (xx - 60) ** 2 < 50**2) * 255
    Image.fromarray(disc).save(assets / "cutouts" / "red_disc.png")
    Image.fromarray(disc[..., :3]).save(assets / "cutouts" / "no_alpha.png")
    (assets / "cutouts" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    plan = harness.plan_run("collage", out=str(tmp_path / "a.lance"), num=8, tasks=["edit.add", "edit.remove"], size=96,
                            assets=str(assets))
    res = harness.execute(plan, workers=1, progress=False)
    rej = lance.dataset(res.rejects_uri).to_table().to_pylist()
    by_file = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in rej if r["stage"] == "assets"}
    assert by_file == {"no_alpha.png": "no_alpha", "broken.png": "corrupt_image"}
    assert res.rows + sum(r["stage"] != "assets" for r in rej) == 8  # every planned sample accounted for
    md = card.render_card(res.uri)
    # one row per (stage, reason), each counting its one file, both at the assets stage (before planning)
    counted = dict(re.findall(r"^\| assets \| `(\w+)` \| (\d+) \|", md, flags=re.M))
    assert counted == {"no_alpha": "1", "corrupt_image": "1"}
    with pytest.raises(ValueError, match="empty"):
        empty = tmp_path / "empty"
        empty.mkdir()
        harness.plan_run("collage", out=str(tmp_path / "b.lance"), num=4, tasks=["edit.add"], size=96, assets=str(empty))
