"""The lineage graph of a checkpoint as text (each node once), PNG, SVG and DOT: sources -> flow
runs -> datasets@version (-> reviews) -> flow run -> training run -> checkpoints, content hashes on
the boxes, the asked-for node highlighted. The dataset is made by the real harness (real Ray, real
Lance); the training run's and checkpoints' lineage.json files by training.lineage, as the trainer
writes them (a Ray Train run proper is tests/test_training_job.py's)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import tests.toy_product as toy
from compute import harness
from datagen.report import lineage_picture
from datagen.store import lance_io, lineage, reviews

cloudpickle.register_pickle_by_value(toy)

DATA_FLOW = {"id": "5b0c0c52-0000-4000-8000-000000000001", "name": "calm-otter", "flow": "toy-dataset"}
TRAIN_FLOW = {"id": "5b0c0c52-0000-4000-8000-000000000002", "name": "brave-heron", "flow": "train"}


@pytest.fixture(scope="module")
def checkpoint(ray_local, tmp_path_factory):
    """A reviewed toy dataset, a finished training run on it and two checkpoints."""
    from training import lineage as run_lineage
    from training.config import TrainConfig

    root = tmp_path_factory.mktemp("lineage")
    res = harness.execute(harness.prepare(toy.PRODUCT, toy.ToyConfig(num=10), out=str(root / "toy.lance"), seed=2,
                                          shard_size=5), workers=1, progress=False, flow_run=DATA_FLOW)
    ref = f"{res.uri}@{res.version}"
    reviews.record_review(ref, decision="approve", reviewer="Ada")
    run_dir = str(root / "runs" / "train-x")
    cfg = TrainConfig.from_dict({"datasets": [ref], "max_steps": 4})
    node = run_lineage.run_node(name="train-x", run_dir=run_dir, cfg=cfg, datasets=[ref], stages=[],
                                plan="plan0", flow_run=TRAIN_FLOW)
    ckpts = [f"{run_dir}/checkpoint_{s:08d}" for s in (2, 4)]
    for step, path in zip((2, 4), ckpts):
        run_lineage.write_node(path, run_lineage.checkpoint_node(
            path=path, run_dir=run_dir, step=step, datasets=[ref], config_hash=cfg.hash, plan="plan0",
            metrics={"loss": 1.0 / step}, code=node["code"]) | {"weights_sha256": f"{step:02d}" + "ab" * 31})
    run_lineage.write_node(run_dir, run_lineage.finish_run_node(node, status="finished", step=4, checkpoints=ckpts,
                                                                metrics={"loss": 0.25}))
    return {"ref": ref, "uri": res.uri, "hash": res.content_hash, "run_dir": run_dir, "ckpts": ckpts}


def test_the_graph_runs_from_sources_to_checkpoints(checkpoint):
    g = lineage.graph(checkpoint["ckpts"][1])
    ids = {n.kind: [] for n in g.nodes.values()}
    for n in g.nodes.values():
        ids[n.kind].append(n.id)
    assert sorted(ids) == ["checkpoint", "dataset", "flow_run", "review", "source", "training_run"]
    src, ds, run = ids["source"][0], checkpoint["ref"], lance_io.normalise_uri(checkpoint["run_dir"])
    data_fr, train_fr = f"flow-run:{DATA_FLOW['id']}", f"flow-run:{TRAIN_FLOW['id']}"
    expected = {(src, data_fr), (data_fr, ds), (ds, train_fr), (train_fr, run), (ds, ids["review"][0])}
    expected |= {(run, c) for c in checkpoint["ckpts"]}
    assert set(g.edges) == expected and len(g.edges) == len(expected)
    assert g.focus == checkpoint["ckpts"][1]
    assert any(checkpoint["hash"][:12] in line for line in g.nodes[ds].lines)  # content hashes on the boxes
    assert g.nodes[ids["review"][0]].title == "review: approved"


def test_text_prints_each_node_once(checkpoint):
    text = lineage.render(lineage.walk(checkpoint["ckpts"][1]))
    assert text.count(f"dataset toy {checkpoint['ref']}:") == 1  # not again under the run
    assert text.count("training run train-x") == 1
    assert text.splitlines()[0].startswith(f"checkpoint {checkpoint['ckpts'][1]}: step 4")
    assert f"  <- training run {lance_io.normalise_uri(checkpoint['run_dir'])}" in text
    assert "review approved by Ada" in text and "source toy embedded:toy" in text


def _boxes_overlap(a, b) -> bool:
    return not (a.x + a.w / 2 <= b.x - b.w / 2 or b.x + b.w / 2 <= a.x - a.w / 2 or a.y + a.h <= b.y or b.y + b.h <= a.y)


def test_pictures_png_svg_dot(checkpoint):
    g = lineage.graph(checkpoint["ckpts"][1])
    boxes, width, height = lineage_picture.layout(g)
    assert len(boxes) == len(g.nodes)
    for i, a in enumerate(boxes):
        assert 0 <= a.x - a.w / 2 and a.x + a.w / 2 <= width and 0 <= a.y and a.y + a.h <= height
        assert not any(_boxes_overlap(a, b) for b in boxes[i + 1:])
    y = {b.node.id: b.y for b in boxes}  # top to bottom in the order of the story
    src = next(n.id for n in g.nodes.values() if n.kind == "source")
    story = [src, f"flow-run:{DATA_FLOW['id']}", checkpoint["ref"], f"flow-run:{TRAIN_FLOW['id']}",
             lance_io.normalise_uri(checkpoint["run_dir"]), checkpoint["ckpts"][1]]
    assert [y[n] for n in story] == sorted(y[n] for n in story) and len({y[n] for n in story}) == len(story)

    img = np.asarray(Image.open(io.BytesIO(lineage_picture.to_png(g))).convert("RGB"))
    assert img.shape[0] > 300 and img.shape[1] > 300
    focus = np.array([int(lineage_picture.FOCUS[i:i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(img.astype(int) - focus).sum(axis=2) < 30).sum() > 200  # the highlight is drawn

    svg = ET.fromstring(lineage_picture.to_svg(g))
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "checkpoint, step 4" in texts and checkpoint["hash"][:12] in texts and "review: approved" in texts

    dot = lineage_picture.to_dot(g)
    assert dot.startswith("digraph lineage {") and dot.count(" -> ") == len(g.edges)
    assert f'"{checkpoint["ckpts"][1]}" [' in dot and "penwidth=3" in dot


def test_cli_formats(checkpoint, tmp_path):
    from flows.cli import app

    runner = CliRunner()
    ck = checkpoint["ckpts"][1]
    dot = runner.invoke(app, ["lineage", ck, "--format", "dot"])
    assert dot.exit_code == 0 and dot.stdout.strip() == lineage_picture.to_dot(lineage.graph(ck)).strip()
    assert runner.invoke(app, ["lineage", ck, "--format", "png"]).exit_code == 2  # binary needs --out
    assert runner.invoke(app, ["lineage", ck, "--format", "gif"]).exit_code == 2
    png = tmp_path / "l.png"
    assert runner.invoke(app, ["lineage", ck, "--format", "png", "--out", str(png)]).exit_code == 0
    assert Image.open(png).size[0] > 300
    svg = runner.invoke(app, ["lineage", f"{checkpoint['uri']}@reviewed", "--format", "svg"])  # a tag resolves
    assert svg.exit_code == 0 and "<svg" in svg.stdout and "review: approved" in svg.stdout
    text = runner.invoke(app, ["lineage", f"{checkpoint['uri']}@reviewed"])
    assert text.exit_code == 0 and text.stdout.startswith(f"dataset toy {checkpoint['ref']}:")
    missing = runner.invoke(app, ["lineage", f"{checkpoint['uri']}@nosuchtag"])
    assert missing.exit_code == 2 and "no tag 'nosuchtag'" in missing.output
    assert Path(checkpoint["uri"]).is_dir()


def test_one_source_per_file_is_drawn_as_one_box_per_kind():
    """Video products record a source per clip: thousands of boxes would be no picture at all."""
    node = {"kind": "dataset", "sources": [{"kind": "video", "uri": f"s3://b/clips/{i:04d}.mp4", "content_hash": None}
                                           for i in range(7)] + [{"kind": "assets", "uri": "embedded:pack"}]}
    boxes = lineage._source_boxes("x.lance@1", node)
    assert [(b.kind, b.title) for b in boxes] == [("source", "7 video sources"), ("source", "1 assets source")]
    assert boxes[0].lines[0] == "s3://b/clips/"
    few = lineage._source_boxes("x.lance@1", {"sources": node["sources"][:2]})
    assert [b.lines[0] for b in few] == ["s3://b/clips/0000.mp4", "s3://b/clips/0001.mp4"]
