"""The Ray Train job end to end: CLI -> Prefect flow -> 2 gloo workers -> a two-stage run ->
checkpoints + lineage + card; a worker lost right at the stage boundary and the resume from
its checkpoint; sampling from the result.

Real local Ray (2 CPUs: two 0.5-CPU train workers leave one CPU to Ray Data), real
Prefect (test harness), real Lance datasets made through the harness, a tiny random-weight
text encoder and model. The same seed must give the same loss curve, bit for bit, with
or without the failure.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from datagen.images import decode, encode_png
from datagen.store import lineage as graph
from tests.test_training_support import (
    TEST_MODEL,
    make_photo_dataset,
    make_text_encoder,
)
from training import job
from training.config import TrainConfig
from training.lineage import read_node

STEPS, EVERY, BOUNDARY = 6, 2, 3
STAGES = [
    {"name": "pretrain", "steps": BOUNDARY, "mix": "cocktail", "curriculum": ["t2i", "edit"], "lr": 2e-3,
     "warmup_steps": 1},
    {"name": "hq", "steps": STEPS - BOUNDARY, "resolution": 24, "lr": 1e-3, "lr_schedule": "linear",
     "warmup_steps": 0, "task_weights": {"t2i": 0}, "routing_weight": 0.5, "routing_ramp_steps": 2},
]


# One run per session: tests/test_training_card.py and tests/test_cards_browser.py import these
# fixtures, and a module-scoped fixture imported elsewhere would train again.
_MADE: dict[str, dict] = {}


@pytest.fixture(scope="module")
def setup(ray_local, tmp_path_factory):
    if "setup" not in _MADE:
        _MADE["setup"] = _make_setup(tmp_path_factory)
    return _MADE["setup"]


def _make_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    ref = make_photo_dataset(root / "photos.lance", num=24, seed=3)
    config = {"model_overrides": TEST_MODEL, "text_encoder": str(make_text_encoder(root / "te")),
              "batch_size": 4, "batch_tokens": 512, "num_workers": 2, "cpus_per_worker": 0.5, "data_tasks": 1,
              "checkpoint_every": EVERY, "log_every": 1, "seed": 7, "keep_checkpoints": 5, "ref_dropout": 0.2,
              "routing_pairs": ["object"], "text_prefix_outputs": True, "stages": STAGES}
    path = root / "config.json"
    path.write_text(json.dumps(config))
    return {"root": root, "ref": ref, "config": config, "config_file": str(path)}


@pytest.fixture(scope="module")
def reference(setup, prefect_harness):
    """`unimontage train` through the Prefect flow: an uninterrupted 2-worker run."""
    if "reference" not in _MADE:
        _MADE["reference"] = _make_reference(setup)
    return _MADE["reference"]


def _make_reference(setup):
    from flows.cli import app

    out = setup["root"] / "runs"
    res = CliRunner().invoke(app, ["train", "--config", setup["config_file"], "--dataset", setup["ref"].split("@")[0],
                                   "--out", str(out), "--set", "text_dropout=0.2"])
    assert res.exit_code == 0, res.output[-3000:]
    (run_dir,) = [str(p) for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")]  # _text_cache
    return {"run_dir": run_dir, "out": str(out), "output": res.output}


def test_cli_train_runs_the_flow_and_every_checkpoint_points_at_the_dataset_version(setup, reference):
    run_dir = reference["run_dir"]
    node = read_node(run_dir)
    assert node["kind"] == "training_run" and node["status"] == "finished" and node["step"] == STEPS
    assert node["datasets"] == [setup["ref"]]  # pinned to the exact version, though the CLI gave no @VERSION
    assert node["dataset_facts"][setup["ref"]]["content_hash"] == graph.dataset_node(setup["ref"])["content_hash"]
    assert node["config"]["text_dropout"] == 0.2 and node["config"]["datasets"] == [setup["ref"]]
    assert node["flow_run"]["flow"] == "train" and node["flow_run"]["id"]
    # every stage's inputs: what it read, at which resolution, which rows
    pre, hq = node["stages"]
    assert (pre["name"], pre["start"], pre["steps"], hq["name"], hq["start"]) == ("pretrain", 0, 3, "hq", 3)
    assert pre["datasets"] == hq["datasets"] == [setup["ref"]] and hq["resolution"] == 24
    assert pre["index"]["rows"] == hq["index"]["rows"] == 24 and pre["index"]["skipped"] == {}
    assert node["text"]["truncated"] == 0 and node["text"]["prefix_outputs"] is True
    schedule = node["mix_schedule"]
    assert [s["name"] for s in schedule["stages"]] == ["pretrain", "hq"]
    checkpoints = job.list_checkpoints(run_dir)
    # every checkpoint_every steps, and at the end of every stage
    assert [c.rsplit("_", 1)[1] for c in checkpoints] == ["00000002", "00000003", "00000004", "00000006"]
    assert node["checkpoints"] == checkpoints
    for step, ckpt in zip((2, 3, 4, 6), checkpoints):
        c = read_node(ckpt)
        assert c["kind"] == "checkpoint" and c["step"] == step and c["training_run"] == run_dir
        assert c["datasets"] == [setup["ref"]] and c["data_position"] == {"next_step": step, "plan": node["plan"]}
        assert c["stage"]["name"] == ("pretrain" if step <= BOUNDARY else "hq")
        assert c["stage"]["done"] == (step in (BOUNDARY, STEPS))
        assert c["metrics"]["step"] == step and np.isfinite(c["metrics"]["loss"])
    # one record per step, per-task losses, the stage of each step, its LR schedule
    history = job.read_history(run_dir)
    assert [r["step"] for r in history] == list(range(STEPS))
    assert [r["stage"] for r in history] == ["pretrain"] * 3 + ["hq"] * 3
    assert all(np.isfinite(r["loss"]) and r["tasks"] for r in history)
    assert history[0]["tasks"].keys() == {"t2i.photo"}  # the cocktail starts on its easiest level
    assert all("t2i.photo" not in r["tasks"] for r in history[BOUNDARY:])  # stage hq weighs t2i 0
    assert [r["lr"] for r in history[BOUNDARY:]] == pytest.approx([1e-3, 1e-3 * 2 / 3, 1e-3 / 3])  # anneals to 0
    routed = [r for r in history if "routing" in r]
    assert routed and all(0 <= r["routing_mass"] <= 1 for r in routed)  # edit.remove carries object pairs
    # pretrain has no routing loss; hq ramps it in over its first 2 steps
    assert [r.get("routing_weight") for r in history] == [None] * 3 + [0.25, 0.5, 0.5]
    assert "lineage: unimontage lineage" in reference["output"]

    # `unimontage lineage CHECKPOINT` prints the graph back to the dataset, its flow run and sources
    from flows.cli import app as main_app

    out = CliRunner().invoke(main_app, ["lineage", checkpoints[-1]])
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert f"checkpoint {checkpoints[-1]}: step {STEPS}" in text
    assert f"training run {node['name']} {run_dir}: finished, step {STEPS}/{STEPS}" in text
    assert f"dataset photos {setup['ref']}" in text and "source skimage skimage.data" in text
    assert f"flow run train {node['flow_run']['id']}" in text

    # the run card is a keyed Prefect artifact with the loss curve and generations
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    from training.report import artifact_key

    with get_client(sync_client=True) as client:  # every field given: prefect 3.8.8's client sends nulls otherwise
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(node["name"])])),
                                     flow_run_filter=FlowRunFilter(), task_run_filter=TaskRunFilter(), limit=5,
                                     offset=0, sort=ArtifactSort.CREATED_DESC)
    card = arts[0].data if arts else ""
    assert "## Loss" in card and "## Stages" in card and "## Task mix" in card and "## Text" in card
    assert "**pretrain**" in card and "**hq**" in card
    assert card.count("data:image/png;base64,") == 5  # task shares, loss, loss per task, generations, lineage
    assert setup["ref"] in card and len(card.encode()) < 1_000_000


@pytest.mark.slow  # make test-slow
def test_a_worker_lost_at_the_stage_boundary_resumes_from_its_checkpoint_with_the_same_batches(setup, reference):
    """Rank 1 dies (os._exit) at step 3, the first step of stage hq, after the stage-end checkpoint;
    FailureConfig restarts the group, which resumes in stage hq at step 3 and must reproduce the
    uninterrupted run exactly."""
    cfg = TrainConfig.from_dict(setup["config"] | {"datasets": [setup["ref"]], "text_dropout": 0.2,
                                                   "chaos_exit_at_step": BOUNDARY, "max_failures": 1})
    result = job.run_training(cfg, out=str(setup["root"] / "crash"))
    assert [(e["event"], e["step"], e["stage"]) for e in result.events] == [("start", 0, "pretrain"),
                                                                           ("resume", BOUNDARY, "hq")]
    assert result.events[1]["checkpoint"].endswith("checkpoint_00000003")
    assert result.step == STEPS and result.lineage["status"] == "finished"
    crashed = [(r["step"], r["loss"], r["tasks"], r["batch_digest"]) for r in result.history]
    clean = [(r["step"], r["loss"], r["tasks"], r["batch_digest"]) for r in job.read_history(reference["run_dir"])]
    assert [s for s, *_ in crashed] == list(range(STEPS))  # each step once: the lost step 4 is not duplicated
    assert crashed == clean  # same seed, same batches, same loss curve, bit for bit


def test_sample_cli_generates_from_the_checkpoint_and_refuses_a_broken_input(setup, reference, tmp_path):
    import skimage.data

    from flows.cli import app

    photo = tmp_path / "chelsea.png"
    photo.write_bytes(encode_png(skimage.data.chelsea()))
    out = tmp_path / "samples"
    res = CliRunner().invoke(app, ["sample", "--checkpoint", reference["run_dir"], "--inputs", str(photo),
                                   "--instruction", "Add a red disk to <image 1>.", "--out", str(out),
                                   "--steps", "4", "--seed", "1", "--image-cfg", "1.5"])
    assert res.exit_code == 0, res.output
    generated = decode((out / "output_1.png").read_bytes())
    assert generated.shape == (20, 28, 3)  # chelsea is 451x300: near 3:2 within the last stage's 24x24 pixels
    assert generated.std() > 0  # an image, not a constant
    record = json.loads((out / "sample.json").read_text())
    assert record["checkpoint"].endswith("checkpoint_00000006") and record["step"] == STEPS
    assert record["text"].startswith("Output 1 image.") and record["inputs"][0]["fitted"] == [20, 28]
    again = CliRunner().invoke(app, ["sample", "--checkpoint", reference["run_dir"], "--inputs", str(photo),
                                     "--instruction", "Add a red disk to <image 1>.", "--out", str(tmp_path / "b"),
                                     "--steps", "4", "--seed", "1", "--image-cfg", "1.5"])
    assert again.exit_code == 0 and (tmp_path / "b" / "output_1.png").read_bytes() == (out / "output_1.png").read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo.read_bytes()[:200])
    bad = CliRunner().invoke(app, ["sample", "--checkpoint", reference["run_dir"], "--inputs", str(broken),
                                   "--instruction", "x", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "corrupt_image" in bad.output
    missing = CliRunner().invoke(app, ["sample", "--checkpoint", str(tmp_path), "--instruction", "x",
                                       "--out", str(tmp_path / "d")])
    assert missing.exit_code == 2 and "no checkpoint in" in missing.output


def test_train_cli_refuses_bad_runs_before_any_worker_starts(setup, tmp_path):
    from flows.cli import app

    def train(*args):
        return CliRunner().invoke(app, ["train", "--config", setup["config_file"], "--out", str(tmp_path),
                                        "--no-prefect", *args])

    missing = train("--dataset", str(tmp_path / "nowhere.lance"))
    assert missing.exit_code == 2 and "no Lance dataset" in missing.output
    bad_version = train("--dataset", setup["ref"].split("@")[0] + "@42")
    assert bad_version.exit_code == 2 and "has no version 42" in bad_version.output
    typo = train("--dataset", setup["ref"], "--set", "batch_size=four")
    assert typo.exit_code == 2 and "batch_size: expected an int" in typo.output
    greedy = train("--dataset", setup["ref"], "--set", "cpus_per_worker=1.0")  # 2 workers x 1 CPU of 2
    assert greedy.exit_code == 2 and "Ray Data" in greedy.output
    no_encoder = train("--dataset", setup["ref"], "--set", f"text_encoder={tmp_path / 'te'}")
    assert no_encoder.exit_code == 2 and f"model folder {tmp_path / 'te'} does not exist" in no_encoder.output
    assert not any(tmp_path.iterdir())  # nothing was written
