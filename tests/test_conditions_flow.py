"""The conditions flow on real Prefect, Ray and Lance: folder and Lance sources, classical
kinds in Ray tasks, a model-backed kind (tiny random-weight Depth-Anything) in an actor pool."""

from __future__ import annotations

import lance
import numpy as np
import pytest
import skimage.data as skd
from PIL import Image

from compute import harness
from datagen.store import lineage


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        Image.fromarray(getattr(skd, name)()).resize((160, 128)).save(d / f"{name}.png")
    (d / "coffee.txt").write_text("a cup of coffee on a saucer")
    (d / "truncated.png").write_bytes((d / "camera.png").read_bytes()[:300])
    return d


def test_folder_classical_and_model_backed(prefect_harness, ray_local, image_dir, tmp_path):
    from datagen.conditions.random_weights import write_depth_anything_dir
    from flows.conditions_flow import conditions_flow

    weights = tmp_path / "weights"
    write_depth_anything_dir(weights / "Depth-Anything-V2-Small-hf", size="tiny")
    out = str(tmp_path / "cond.lance")
    res = conditions_flow(out=out, images=str(image_dir), kinds="canny,depth", weights=str(weights), seed=3,
                          multi_prob=0.5, workers=1, progress=False)
    assert res["rows"] + res["rejects"] == 5  # 4 photos + 1 truncated file
    rej = lance.dataset(res["rejects_uri"]).to_table().to_pylist()
    assert [r["reason"] for r in rej] == ["corrupt_image"] and rej[0]["source"].endswith("truncated.png")
    rows = lance.dataset(out).to_table().to_pylist()
    tasks = {r["task"] for r in rows}
    assert tasks <= {"ref.canny", "ref.depth", "ref.multi"}
    for r in rows:
        assert all(i["format"] == "png" and i["role"].startswith("condition:") for i in r["inputs"])
        assert (r["outputs"][0]["height"], r["outputs"][0]["width"]) == (128, 160)
    coffee = [r for r in rows if r["source_ids"][0].endswith("coffee.png")][0]
    assert "coffee on a saucer" in coffee["instruction"]
    assert lineage.dataset_node(out)["sources"][0]["kind"] == "images"


def test_lance_source_seg_from_exact_regions(ray_local, tmp_path):
    from datagen.schema import from_row
    from flows.conditions_flow import plan_conditions

    src = harness.execute(harness.plan_run("collage", out=str(tmp_path / "c.lance"), num=6, tasks=["edit.add"], size=96), workers=1,
                          progress=False)
    res = harness.execute(plan_conditions(str(tmp_path / "s.lance"), src.uri, "seg", None, 0), workers=1,
                          progress=False)
    assert res.rows == 6 and res.rejects == 0
    collage = {r["sample_id"]: from_row(r) for r in lance.dataset(src.uri).to_table().to_pylist()}
    for row in lance.dataset(res.uri).to_table().to_pylist():
        s = from_row(row)
        assert s.task == "ref.seg"
        origin = collage[s.source_ids[0].split("#")[0]]
        painted = s.inputs[0].pixels.reshape(-1, 3).any(axis=1).reshape(s.inputs[0].pixels.shape[:2])
        union = np.zeros_like(painted)
        for r in origin.regions:
            if r.side == "output" and r.image == 0 and r.mask is not None:
                union |= r.mask
        assert (painted == union).all()  # the map is exactly the collage's regions
    node = lineage.dataset_node(res.uri)
    assert node["sources"][0]["ref"] == f"{src.uri}@{src.version}"  # an edge in the lineage graph
    tree = lineage.walk(res.uri)
    assert tree["parents"] and tree["parents"][0]["node"]["product"] == "collage"


def test_missing_weights_fail_before_work(tmp_path):
    from datagen.conditions import MissingWeightsError
    from flows.conditions_flow import resolve_kinds

    with pytest.raises(MissingWeightsError, match="body_pose_model.pth"):
        resolve_kinds("canny,pose", str(tmp_path))
    with pytest.raises(ValueError, match="unknown condition kind"):
        resolve_kinds("canny,nope", None)
