"""The multiview product: its config (bounds, choices, scorer specs, CLI flags), and the CLI ->
Prefect flow -> Ray -> Lance path on COLMAP captures, with a capture that is only a reject."""

from __future__ import annotations

import json
import os
import shutil

import lance
import pytest
from typer.testing import CliRunner

from compute import harness
from datagen import products
from datagen.multiview.config import MultiviewConfig
from datagen.store import lineage
from tests.cli_probe import cli_probe
from tests.test_multiview_capture import write_colmap_capture


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    root = tmp_path_factory.mktemp("captures")
    write_colmap_capture(root / "cat" / "obj1", n=8)
    write_colmap_capture(root / "cat" / "obj2", n=6, fmt="txt")
    write_colmap_capture(root / "dog" / "broken", n=4)
    (root / "dog" / "broken" / "sparse" / "0" / "images.bin").unlink()
    return root


def cli_app():
    from flows.cli import app

    return app


def test_config_bounds_choices_and_scorers():
    cfg = MultiviewConfig(captures="c", scorers="sharpness,geometry", min_geo=0.2)
    assert cfg.scorer_specs == [("sharpness", None), ("geometry", None)]
    assert cfg.min_scores == {"geo_consistency": 0.2}
    assert "captures" not in cfg.content() and cfg.content()["samples_per_capture"] == 2
    assert MultiviewConfig.from_dict(cfg.to_dict()) == cfg
    assert not products.get("multiview").uses_actors(cfg)
    assert products.get("multiview").uses_actors(cfg.replace(scorers=("geometry", "clip=/models/clip")))
    bad = [({"max_extra": 9}, "max_extra must be <= 4"),
           ({"samples_per_capture": 0}, "samples_per_capture must be >= 1"),
           ({"min_extra": 3, "max_extra": 2}, r"min_extra \(3\) must be <= max_extra \(2\)"),
           ({"min_step_deg": 40.0}, "min_step_deg .* must be <= max_step_deg"),
           ({"max_side": 8}, "max_side must be 0"),
           ({"image_format": "gif"}, "image_format: 'gif' is not one of jpeg, png"),
           ({"scorers": ("sharpness", "bogus")}, "unknown scorer 'bogus'"),
           ({"scorers": ("vlm",)}, "scorer 'vlm' needs a local model path"),
           ({"scorers": ("sharpness",), "min_geo": 0.3}, "--min-geo needs the geometry scorer"),
           ({"min_geo": 1.5}, "min_geo must be <= 1")]
    for values, message in bad:
        with pytest.raises(ValueError, match=message):
            MultiviewConfig.from_dict({"captures": "c", **values})
    with pytest.raises(AttributeError):
        cfg.max_extra = 2  # frozen


def test_cli_help_and_bad_values_exit_2_before_prefect_or_ray(tmp_path, captures):
    out = str(tmp_path / "o.lance")
    cases = [(["--max-extra", "9"], "max_extra must be <= 4"),
             (["--scorers", "sharpness,bogus"], "unknown scorer 'bogus'"),
             (["--scorers", "sharpness", "--min-geo", "0.3"], "--min-geo needs the geometry scorer"),
             (["--per-capture", "0"], "samples_per_capture must be >= 1")]
    report, stderr = cli_probe([["datagen", "multiview", "--captures", str(captures), "--out", out, *args]
                                for args, _ in cases], tmp_path)
    assert report == {"codes": [2, 2, 2, 2], "ray": False, "flow_runs": False}, stderr[-3000:]
    for _, message in cases:
        assert message in stderr
    help_text = CliRunner().invoke(cli_app(), ["datagen", "multiview", "--help"], terminal_width=200).output
    for flag in ("--captures", "--out", "--seed", "--per-capture", "--max-extra", "--scorers", "--min-geo",
                 "--workers", "--progress"):
        assert flag in help_text
    assert "--samples-per-capture" not in help_text


def test_plan_checks_captures_and_weights(tmp_path, captures):
    from datagen.weights import MissingWeights

    spec = harness.plan_run("multiview", out=str(tmp_path / "o.lance"), captures=str(captures))
    assert [it.source.rsplit("/", 2)[-2:] for it in spec.items] == [["cat", "obj1"], ["cat", "obj2"], ["dog", "broken"]]
    assert {it.input for it in spec.items} == {""}  # capture folders stay local paths: nothing to copy
    assert len(spec.plan.content["captures"]) == 3
    with pytest.raises(MissingWeights, match="open_clip"):
        harness.plan_run("multiview", out=str(tmp_path / "o.lance"), captures=str(captures),
                         scorers=f"sharpness,clip={tmp_path}")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        harness.plan_run("multiview", out=str(tmp_path / "o.lance"), captures=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no captures under"):
        harness.plan_run("multiview", out=str(tmp_path / "o.lance"), captures=str(tmp_path / "empty"))


def test_cli_flow_ray_lance(prefect_harness, ray_local, tmp_path, captures):
    out = str(tmp_path / "mv.lance")
    res = CliRunner().invoke(cli_app(), ["datagen", "multiview", "--captures", str(captures), "--out", out,
                                         "--per-capture", "2", "--max-extra", "2", "--scorers", "sharpness,geometry",
                                         "--min-geo", "0.05", "--seed", "4", "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    node = lineage.dataset_node(out)
    assert node["accounting"]["items"] == 3 and node["accounting"]["items_rejected"] == 1
    assert node["counts"]["reasons"] == {"missing_pose_file": 1}
    assert node["config"] | {"captures": None} == MultiviewConfig(
        captures="x", samples_per_capture=2, max_extra=2, scorers=("sharpness", "geometry"),
        min_geo=0.05).to_dict() | {"captures": None}
    assert node["flow_runs"][0]["flow"] == "multiview-dataset"
    assert [s["kind"] for s in node["sources"]] == ["capture"] * 3 and all(s["content_hash"] for s in node["sources"])
    rows = lance.dataset(out).to_table().to_pylist()
    assert len(rows) == summary["rows"] >= 2
    for r in rows:
        scores = dict(r["scores"])
        assert r["task"] == "multiview" and 1 <= len(r["outputs"]) <= 2
        assert scores["geo_consistency"] >= 0.05 and scores["sharpness"] > 0
        assert r["source_ids"][0].startswith(("cat/obj1/", "cat/obj2/"))  # never an absolute path
    rej = lance.dataset(summary["rejects_uri"]).to_table().to_pylist()
    assert [(r["reason"], r["source"]) for r in rej] == [("missing_pose_file", "dog/broken")]
    missing = CliRunner().invoke(cli_app(), ["datagen", "multiview", "--captures", str(captures), "--out",
                                             str(tmp_path / "w.lance"), "--scorers", f"clip={tmp_path}"])
    assert missing.exit_code == 2 and "open_clip" in missing.output and not os.path.exists(tmp_path / "w.lance")


def test_same_bytes_elsewhere_and_with_two_workers(ray_local, tmp_path, captures):
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(captures, moved)
    a = harness.execute(harness.plan_run("multiview", out=str(tmp_path / "a.lance"), captures=str(captures),
                                         shard_size=1), workers=1, progress=False)
    b = harness.execute(harness.plan_run("multiview", out=str(tmp_path / "b.lance"), captures=str(moved),
                                         shard_size=1), workers=2, progress=False)
    assert a.rows > 0 and (a.rows, a.rejects) == (b.rows, b.rejects) and a.content_hash == b.content_hash
