"""The conditions product on real Prefect, Ray and Lance: its config (bounds, kinds, CLI), a
folder source (each image a "file" input the harness makes local), a Lance source (each row
a "row" input the harness reads, once per shard), classical kinds in Ray tasks and a
model-backed kind (tiny random-weight Depth-Anything) in an actor pool."""

from __future__ import annotations

import datetime
import os

import lance
import numpy as np
import pytest
import skimage.data as skd
from PIL import Image
from typer.testing import CliRunner

from compute import harness
from datagen import products
from datagen.conditions.product import ConditionsConfig
from datagen.store import lineage
from tests.cli_probe import cli_probe


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        Image.fromarray(getattr(skd, name)()).resize((160, 128)).save(d / f"{name}.png")
    (d / "coffee.txt").write_text("a cup of coffee on a saucer")
    (d / "truncated.png").write_bytes((d / "camera.png").read_bytes()[:300])
    return d


@pytest.fixture(scope="module")
def collage(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("collage") / "c.lance"
    return harness.execute(harness.plan_run("collage", out=str(out), num=6, tasks=["t2i.layout", "edit.add"], size=96),
                           workers=1, progress=False)


def cli_app():
    from flows.cli import app

    return app


# --------------------------------------------------------------------------- config
def test_config_resolves_kinds_and_enforces_bounds(tmp_path):
    cfg = ConditionsConfig(images="x", kinds="pose, depth,seg,canny,pose")
    assert cfg.kinds == ("openpose", "depth_anything", "seg_regions", "canny")  # aliases resolved, once each
    assert ConditionsConfig.from_dict(cfg.to_dict()) == cfg
    assert set(cfg.content()) == {"kinds", "multi_prob", "with_references"}  # where images and weights sit is not content
    prod = products.get("conditions")
    assert prod.uses_actors(cfg) and not prod.uses_actors(cfg.replace(kinds=("canny", "seg")))
    with pytest.raises(ValueError, match="unknown condition kind 'nope'"):
        ConditionsConfig(images="x", kinds=("canny", "nope"))
    with pytest.raises(ValueError, match="--kinds is empty"):
        ConditionsConfig(images="x", kinds="")
    with pytest.raises(ValueError, match="multi_prob must be <= 1"):
        ConditionsConfig(images="x", multi_prob=1.5)
    with pytest.raises(ValueError, match="multi_prob: want a number"):
        ConditionsConfig.from_dict({"images": "x", "multi_prob": "often"})
    with pytest.raises(AttributeError):
        cfg.multi_prob = 0.9  # frozen


def test_missing_weights_and_bad_sources_fail_in_the_plan(tmp_path, image_dir):
    from datagen.weights import MissingWeights

    with pytest.raises(MissingWeights, match="body_pose_model.pth"):
        harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=str(image_dir), kinds="canny,pose",
                         weights=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither a Lance dataset nor a folder"):
        harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=str(tmp_path / "empty"))


def test_cli_help_and_bad_values_exit_2_before_prefect_or_ray(tmp_path, image_dir):
    """Bad values in one fresh interpreter: exit 2 with the message, and Ray never imported."""
    out = str(tmp_path / "o.lance")
    cases = [(["--kinds", "canny,nope"], "unknown condition kind 'nope'"),
             (["--multi-prob", "1.5"], "multi_prob must be <= 1"),
             (["--multi-prob", "often"], "Invalid value for '--multi-prob'")]
    report, stderr = cli_probe([["datagen", "conditions", "--images", str(image_dir), "--out", out, *args]
                                for args, _ in cases], tmp_path)
    assert report == {"codes": [2, 2, 2], "ray": False, "flow_runs": False}, stderr[-3000:]
    for _, message in cases:
        assert message in stderr
    assert not os.path.exists(out)
    # Rich sizes help from COLUMNS (CliRunner's terminal_width does not reach it); at 80 columns
    # a long default is cut with an ellipsis.
    help_text = CliRunner(env={"COLUMNS": "200"}).invoke(cli_app(), ["datagen", "conditions", "--help"]).output
    for flag in ("--images", "--out", "--kinds", "--weights", "--seed", "--multi-prob", "--workers", "--progress"):
        assert flag in help_text
    squashed = "".join(help_text.replace("│", " ").split())  # the help column wraps at any terminal width
    assert "URI@VERSION" in squashed and "[default:canny,lineart_standard,seg]" in squashed


def test_cli_missing_weights_exit_2_from_the_plan(prefect_harness, tmp_path, image_dir):
    """Weights are checked by the plan, the flow's first step: no shard is ever scheduled."""
    out = str(tmp_path / "o.lance")
    res = CliRunner().invoke(cli_app(), ["datagen", "conditions", "--images", str(image_dir), "--out", out,
                                         "--kinds", "canny,pose", "--weights", str(tmp_path)])
    assert res.exit_code == 2 and "body_pose_model.pth" in res.output
    assert not os.path.exists(out)


# --------------------------------------------------------------------------- sources
def test_folder_classical_and_model_backed(prefect_harness, ray_local, image_dir, tmp_path):
    from datagen.testing.tiny_models import write_depth_anything_dir
    from flows.datasets import flow_for

    weights = tmp_path / "weights"
    write_depth_anything_dir(weights / "Depth-Anything-V2-Small-hf", size="tiny")
    out = str(tmp_path / "cond.lance")
    res = flow_for("conditions")(out=out, images=str(image_dir), kinds=["canny", "depth"], weights=str(weights),
                                 seed=3, multi_prob=0.5, workers=1, progress=False)
    assert res["rows"] + res["rejects"] == 5  # 4 photos + 1 truncated file
    rej = lance.dataset(res["rejects_uri"]).to_table().to_pylist()
    assert [r["reason"] for r in rej] == ["corrupt_image"] and rej[0]["source"] == str(image_dir / "truncated.png")
    rows = lance.dataset(out).to_table().to_pylist()
    tasks = {r["task"] for r in rows}
    assert tasks <= {"ref.canny", "ref.depth", "ref.multi"}
    for r in rows:
        assert all(i["format"] == "png" and i["role"].startswith("condition:") for i in r["inputs"])
        assert (r["outputs"][0]["height"], r["outputs"][0]["width"]) == (128, 160)
    coffee = [r for r in rows if r["source_ids"][0] == "coffee.png"][0]
    assert "coffee on a saucer" in coffee["instruction"]  # the caption, read while planning
    node = lineage.dataset_node(out)
    assert node["sources"][0]["kind"] == "images" and node["sources"][0]["files"] == 5
    assert node["product"] == "conditions" and node["config"]["kinds"] == ["canny", "depth_anything"]
    assert node["flow_runs"][0]["flow"] == "conditions-dataset"


def test_file_items_read_the_local_view_and_reject_under_the_planned_name(image_dir, tmp_path):
    """The item function reads `item.path` (the harness's local copy), never `item.source`:
    an object-store image works as soon as the harness has copied it."""
    from datagen.product import Item
    from datagen.rng import sample_rng
    from datagen.schema import Reject, Sample

    spec = harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=str(image_dir), kinds="canny")
    assert {it.input for it in spec.items} == {"file"}
    assert [it.data["source_id"] for it in spec.items][:2] == ["astronaut.png", "camera.png"]
    fn = spec.product.setup(spec.config, spec.plan.context)
    remote = Item(0, source="s3://bucket/photos/coffee.png", data={"source_id": "coffee.png", "prompt": "A cup."},
                  input="file", path=str(image_dir / "coffee.png"))
    [sample] = fn(remote, sample_rng(0, 0))
    assert isinstance(sample, Sample) and sample.source_ids == ["coffee.png"] and "A cup." in sample.instruction
    broken = Item(1, source="s3://bucket/photos/bad.png", data={"source_id": "bad.png"}, input="file",
                  path=str(image_dir / "truncated.png"))
    [rej] = fn(broken, sample_rng(0, 1))
    assert isinstance(rej, Reject) and rej.reason == "corrupt_image" and rej.source == "s3://bucket/photos/bad.png"


def test_lance_source_seg_from_exact_regions(ray_local, collage, tmp_path):
    from datagen.schema import from_row

    spec = harness.plan_run("conditions", out=str(tmp_path / "s.lance"), images=collage.uri, kinds=["seg"])
    ref = f"{collage.uri}@{collage.version}"
    assert spec.items[0].input == "row" and spec.items[5].source == f"{ref}#5" and len(spec.items) == 6
    res = harness.execute(spec, workers=1, progress=False)
    # Only a layout's regions segment every object; an edit's mark what it touched (the
    # added object alone), so a map of them would misdescribe the image: no seg there.
    rej = lance.dataset(res.rejects_uri).to_table().to_pylist()
    origin = {r["sample_id"]: from_row(r) for r in lance.dataset(collage.uri).to_table().to_pylist()}
    assert res.rows == 3 and [r["reason"] for r in rej] == ["no_applicable_kind"] * 3
    assert {origin[r["source"].split("#")[0]].task for r in rej} == {"edit.add"}
    for row in lance.dataset(res.uri).to_table().to_pylist():
        s = from_row(row)
        assert s.task == "ref.seg"
        src = origin[s.source_ids[0].split("#")[0]]
        assert src.task == "t2i.layout"
        painted = s.inputs[0].pixels.reshape(-1, 3).any(axis=1).reshape(s.inputs[0].pixels.shape[:2])
        union = np.zeros_like(painted)
        for r in src.regions:
            if r.side == "output" and r.image == 0 and r.mask is not None:
                union |= r.mask
        assert (painted == union).all()  # the map is exactly the collage's regions
    node = lineage.dataset_node(res.uri)
    assert node["sources"][0]["ref"] == ref  # an edge in the lineage graph
    tree = lineage.walk(res.uri)
    assert tree["parents"] and tree["parents"][0]["node"]["product"] == "collage"


def test_rows_are_read_once_per_shard_and_a_corrupt_row_is_a_reject(collage, tmp_path, monkeypatch):
    """In-process shard runner (no Ray): the harness reads a shard's rows with one `take`;
    a row whose image does not decode becomes that input's reject, the others samples."""
    from compute.shard_runner import RunIdentity, ShardRunner
    from datagen.schema import SAMPLE_SCHEMA

    rows = lance.dataset(collage.uri).to_table().to_pylist()
    rows[2]["outputs"][0]["data"] = b"\x89PNG\r\n\x1a\n not an image"
    bad_uri = str(tmp_path / "bad.lance")
    lance.write_dataset(__import__("pyarrow").Table.from_pylist(rows, schema=SAMPLE_SCHEMA), bad_uri)
    spec = harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=bad_uri, kinds="canny,seg")
    takes = []
    real_take = lance.LanceDataset.take
    monkeypatch.setattr(lance.LanceDataset, "take", lambda self, *a, **k: takes.append(a) or real_take(self, *a, **k))
    ident = RunIdentity("conditions", spec.content_key, 0, "run", str(tmp_path / "o.lance"),
                        str(tmp_path / "o_rejects.lance"), spec.product.generator)
    result = ShardRunner(ident, spec.product, spec.config, spec.plan.context)(
        {"items": [it.to_json() for it in spec.items]})
    assert len(takes) == 1 and sorted(takes[0][0]) == list(range(6))
    assert result["rows"] == 5 and result["rejects"] == 1 and result["reasons"] == {"corrupt_row": 1}


def test_a_row_that_vanished_before_the_run_is_a_reject(ray_local, collage, tmp_path):
    """Plan pinned to version 1; that version is cleaned up before the run: every row is a
    reject with the reason, none is lost, the run does not crash."""
    rows = lance.dataset(collage.uri).to_table()
    uri = str(tmp_path / "moving.lance")
    lance.write_dataset(rows, uri)
    spec = harness.plan_run("conditions", out=str(tmp_path / "o.lance"), images=uri, kinds="canny")
    ds = lance.write_dataset(rows.slice(0, 2), uri, mode="overwrite")
    ds.cleanup_old_versions(older_than=datetime.timedelta(seconds=0), delete_unverified=True)
    with pytest.raises(Exception, match="ersion"):  # version 1 is gone
        lance.dataset(uri, version=1)
    res = harness.execute(spec, workers=1, progress=False)
    rej = lance.dataset(res.rejects_uri).to_table().to_pylist()
    assert res.rows == 0 and res.rejects == 6 and {r["reason"] for r in rej} == {"unreadable_row"}
    assert sorted(r["source"] for r in rej) == sorted(f"{uri}@1#{i}" for i in range(6))
