"""A training run on object storage (a real S3-compatible server on 127.0.0.1, `moto_server`):
`--out s3://bucket/runs` writes checkpoints into the bucket; the run state, the card and
`unimontage lineage s3://.../checkpoint_...` (with `--verify`) read them back; a run whose
driver is killed with SIGKILL mid-run resumes from its last checkpoint in the bucket, under the
same `RunConfig(storage_path, name)`, and ends on the uninterrupted run's weights, byte for byte
(the reference trains in this process, on local storage: where checkpoints live changes no bit).

The runs on S3 are driver processes with a private local Ray each (like a user's shell),
holding the store's credentials in their environment; they never reach a lineage record or the card.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.object_store import KEY_ID, SECRET
from tests.test_training_support import TEST_MODEL, make_photo_dataset, make_text_encoder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]  # make test-slow
STEPS, EVERY = 8, 2

RUN = """
import json, sys
from training.config import TrainConfig
from training.job import run_training
res = run_training(TrainConfig.from_dict(json.loads(sys.argv[1])), out=sys.argv[2])
print(json.dumps(res.summary(), default=str))
"""


@pytest.fixture(scope="module")
def inputs(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-s3")
    ref = make_photo_dataset(root / "photos.lance", num=16, seed=5, tasks=["t2i.photo", "edit.remove"])
    config = {"model_overrides": TEST_MODEL, "text_encoder": str(make_text_encoder(root / "te")), "datasets": [ref],
              "batch_size": 4, "batch_tokens": 512, "num_workers": 1, "cpus_per_worker": 1, "data_tasks": 1,
              "max_steps": STEPS, "checkpoint_every": EVERY, "log_every": 1, "seed": 11, "keep_checkpoints": 10,
              "lr": 2e-3, "warmup_steps": 1}
    return {"ref": ref, "config": config}


def _env(s3) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # patience for a machine shared with other work: node start-up waits (as tests/local_cluster.py)
    return env | s3.env() | {"TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT), "RAY_raylet_start_wait_time_s": "120",
                             "RAY_agent_register_timeout_ms": "120000"}


def _start(config: dict, out: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, json.dumps(config), out], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


# Ray 2.60 gives a new local node a fixed 30 s to register: on a loaded shared machine that can
# run out before any training starts. Such a start (and only such) is tried again.
SLOW_START = "timed out during startup"


def _finish(proc: subprocess.Popen, config: dict, out_uri: str, env: dict[str, str], timeout: float = 600) -> dict:
    for _ in range(3):
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode == 0 or SLOW_START not in err:
            break
        proc = _start(config, out_uri, env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-5000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the private Ray it started
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _committed(run_dir: str, step: int) -> bool:
    """Ray Train's own record names the checkpoint of `step` (or a later one) as the one to resume from."""
    from training.job import ray_latest_checkpoint

    return (ray_latest_checkpoint(run_dir) or "") >= f"checkpoint_{step:08d}"


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return s3_server


def test_a_run_on_s3_killed_mid_run_resumes_there_to_the_same_weights(inputs, s3_env, tmp_path):
    from datagen.store import lance_io
    from datagen.store import lineage as graph
    from flows.cli import app
    from training import job
    from training.config import TrainConfig
    from training.lineage import read_node
    from training.report import render_run_card

    s3 = s3_env
    bucket = s3.create_bucket("unimontage-train")
    env, config = _env(s3), inputs["config"]
    t0 = time.perf_counter()
    reference = job.run_training(TrainConfig.from_dict(config), out=str(tmp_path / "reference")).summary()
    ref_s = time.perf_counter() - t0
    assert reference["step"] == STEPS
    ref_weights = read_node(reference["checkpoint"])["weights_sha256"]

    # kill -9 the driver (with its Ray) once Ray Train has committed the first checkpoint in the bucket
    out = f"{bucket}/runs"
    run_dir = f"{out}/{reference['name']}"
    proc = _start(config, out, env)
    deadline = time.monotonic() + 240
    while not _committed(run_dir, EVERY) and time.monotonic() < deadline:
        if proc.poll() is not None:
            if proc.returncode == 0 or SLOW_START not in proc.communicate()[1]:
                break
            proc = _start(config, out, env)
        time.sleep(0.1)
    assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()[1][-3000:]}"
    _kill_group(proc)
    time.sleep(2)  # requests the dead driver's uploads had in flight land (a later checkpoint may complete)
    killed_at = job.list_checkpoints(run_dir)
    assert f"{run_dir}/{job.ray_latest_checkpoint(run_dir)}" in killed_at, (job.ray_latest_checkpoint(run_dir), killed_at)
    assert killed_at and killed_at[-1] < f"{run_dir}/checkpoint_{STEPS:08d}", killed_at
    # an upload cut short (files in any order, no lineage node yet) is never a checkpoint
    partial = f"{run_dir}/checkpoint_{STEPS - 1:08d}"
    lance_io.write_text(f"{partial}/config.json", "{}")
    assert job.list_checkpoints(run_dir) == killed_at

    resumed = _finish(_start(config, out, env), config, out, env)
    assert resumed["step"] == STEPS and resumed["checkpoint"] == f"{run_dir}/checkpoint_{STEPS:08d}"
    last = read_node(resumed["checkpoint"])
    assert last["weights_sha256"] == ref_weights  # the same bytes as the uninterrupted run
    node = read_node(run_dir)
    assert node["status"] == "finished" and node["step"] == STEPS and node["checkpoints"][-1] == resumed["checkpoint"]
    assert partial not in node["checkpoints"]
    events = job.read_events(run_dir)
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "resume"
    assert EVERY <= events[-1]["step"] < STEPS and events[-1]["checkpoint"].startswith(f"{run_dir}/checkpoint_")
    history = job.read_history(run_dir)  # from the last checkpoint: the bucket has no per-step file
    assert [r["step"] for r in history] == list(range(STEPS))

    # lineage CLI on the s3:// checkpoint, back to the dataset version; --verify re-hashes the bucket's bytes
    shown = CliRunner().invoke(app, ["lineage", resumed["checkpoint"], "--verify"])
    assert shown.exit_code == 0, shown.output[-3000:]
    assert f"checkpoint {resumed['checkpoint']}: step {STEPS}" in shown.stdout
    assert f"training run {reference['name']} {run_dir}: finished, step {STEPS}/{STEPS}" in shown.stdout
    assert f"dataset photos {inputs['ref']}" in shown.stdout and '"ok": true' in shown.stdout
    card = render_run_card(run_dir, previews=True)
    # Long URIs carry <wbr> break points in the card (it wraps in the Prefect UI's column).
    assert resumed["checkpoint"] in card.replace("<wbr>", "") and "## Attempts" in card and "| resume |" in card
    assert "## Generations of the latest checkpoint" in card
    for text in (card, json.dumps(node), json.dumps(last), shown.output, json.dumps(graph.walk(resumed["checkpoint"]))):
        assert SECRET not in text and KEY_ID not in text
    print(f"reference run {ref_s:.1f} s; killed after checkpoint {killed_at[-1].rsplit('_', 1)[1]}; "
          f"weights {ref_weights[:16]} == {last['weights_sha256'][:16]}")
