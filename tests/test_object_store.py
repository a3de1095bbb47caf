"""Datasets on object storage, end to end: a real S3-compatible server on 127.0.0.1
(`moto_server`), `s3://` URIs for the dataset, its rejects, resume markers, staging, lease,
lineage sidecars; cards, lineage, `--verify` and `doctor` read them back; a run killed with
SIGKILL mid-way resumes to the uninterrupted run's bytes with nothing lost or duplicated.
The runs' drivers are their own processes on the two-node cluster (whose nodes hold the
store's credentials); the credentials never appear in a record, a card, a stored object or a log.
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

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(900)

TOY_FLOW = """
import json, sys
from datagen import products
import tests.toy_product as toy
products.register(toy.PRODUCT)
from flows.datasets import flow_for
res = flow_for("toy")(out=sys.argv[1], num=int(sys.argv[2]), size=24, seed=1, workers=2, shard_size=4, progress=False)
print(json.dumps(res, default=str))
"""

GATED_RUN = """
import json, sys
import tests.gated_product as gated
from compute import harness
cfg = gated.GatedConfig(num=int(sys.argv[2]), gate=sys.argv[3], hold_from=int(sys.argv[4]))
spec = harness.prepare(gated.PRODUCT, cfg, out=sys.argv[1], seed=2)
print(json.dumps(harness.execute(spec, workers=2, progress=False).summary()))
"""


def _driver(code: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-5000:]}"
    return json.loads(out.strip().splitlines()[-1]), out + err


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process reads the store too (cards, lineage, doctor run on the driver side)."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return s3_server


def _no_secrets(where: str, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert SECRET.encode() not in data and KEY_ID.encode() not in data, f"credentials leaked into {where}"


def test_a_dataset_with_rejects_on_s3_card_lineage_doctor_and_no_credentials_anywhere(
        ray_cluster, s3_env, prefect_api_url, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from datagen.store import doctor, lance_io, lineage
    from flows import card
    from flows.cli import app

    s3 = s3_env
    bucket = s3.create_bucket("unimontage-e2e")
    uri = f"{bucket}/datasets/toy.lance"
    summary, output = _finish(_driver(TOY_FLOW, [uri, "30"], ray_cluster.env(PREFECT_API_URL=prefect_api_url)))
    assert summary["uri"] == uri and summary["rows"] + summary["rejects"] >= 30 and summary["rejects"] > 0
    assert summary["audit"]["failed"] == 0

    node = lineage.dataset_node(uri)
    acc = node["accounting"]
    assert acc["items"] == 30 == acc["items_with_samples"] + acc["items_rejected"]
    assert node["rejects"]["uri"] == f"{bucket}/datasets/toy_rejects.lance"
    assert lance_io.open_dataset(node["rejects"]["uri"]).count_rows() == summary["rejects"]
    assert lineage.verify_dataset(uri)["ok"]
    findings = doctor.diagnose(uri)
    assert doctor.report(findings)["status"] == "ok", [f.line() for f in findings]
    keys = s3.keys("unimontage-e2e")
    assert not _leftovers(keys), keys
    assert any("/_unimontage/lineage/v" in k for k in keys)  # the sidecar beside the commit

    md = card.render_card(uri)
    assert "toy" in md and "too_dark" in md
    runner = CliRunner()
    shown = runner.invoke(app, ["lineage", uri, "--verify"])
    assert shown.exit_code == 0 and '"ok": true' in shown.stdout, shown.output[-2000:]
    checked = runner.invoke(app, ["doctor", uri, "--json"])
    assert checked.exit_code == 0 and json.loads(checked.stdout)["status"] == "ok"

    # No credentials: not in the records, the card, the CLI's output, the flow run's logs,
    # any object in the bucket, or the Ray cluster's logs.
    _no_secrets("the lineage record", json.dumps(node))
    _no_secrets("the rejects' lineage", json.dumps(lineage.dataset_node(node["rejects"]["uri"])))
    _no_secrets("the card", md)
    _no_secrets("the CLI output", shown.output + checked.output)
    _no_secrets("the driver's output", output)
    flow_run_id = node["flow_runs"][0]["id"]

    async def logs() -> str:
        async with get_client() as client:
            found = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return "\n".join(log.message for log in found)

    import asyncio

    flow_logs = asyncio.run(logs())
    assert "committed" in flow_logs
    _no_secrets("the flow run's logs", flow_logs)
    client = s3.client()
    for key in keys:
        _no_secrets(f"s3://unimontage-e2e/{key}", client.get_object(Bucket="unimontage-e2e", Key=key)["Body"].read())
    for log in (ray_cluster.temp_dir / "session_latest" / "logs").rglob("*"):
        if log.is_file():
            _no_secrets(f"the Ray log {log.name}", log.read_bytes())


def _leftovers(keys: list[str]) -> list[str]:
    """Staging and lease objects. pyarrow keeps an empty `dir/` marker for a folder it emptied:
    those hold nothing and are not counted."""
    return [k for k in keys if ("/_unimontage/staging/" in k or k.endswith("lease.json")) and not k.endswith("/")]


def _markers(s3, bucket: str, prefix: str) -> list[str]:
    return [k for k in s3.keys(bucket, prefix) if "/_unimontage/staging/" in k and k.endswith(".json")]


@pytest.mark.slow  # make test-slow: tests/test_kill_and_resume.py covers kill -9 + resume locally in make test
def test_a_run_killed_mid_way_on_s3_resumes_to_the_same_bytes_without_duplicates(ray_cluster, s3_env, tmp_path):
    import lance

    s3 = s3_env
    bucket = s3.create_bucket("unimontage-resume")
    env = ray_cluster.env(TQDM_DISABLE="1")
    num, shards = 16, 4  # shard size 4: shards 0-2 finish, shard 3 waits at the gate
    reference, _ = _finish(_driver(GATED_RUN, [f"{bucket}/reference.lance", str(num), "", "0"], env))

    gate = tmp_path / "gate"
    gate.touch()
    uri = f"{bucket}/killed.lance"
    args = [uri, str(num), str(gate), str(num - 4)]
    proc = _driver(GATED_RUN, args, env)
    deadline = time.monotonic() + 300
    while len(_markers(s3, "unimontage-resume", "killed.lance/")) < shards - 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the held run did not finish its first shards"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, mid-run: its finished shards are on S3
    proc.wait()
    keys = s3.keys("unimontage-resume", "killed.lance/")
    assert not [k for k in keys if "/_versions/" in k], "nothing may be committed by a killed run"
    assert any(k.endswith("_unimontage/lease.json") for k in keys)  # the dead run's lease stays behind

    gate.unlink()
    resumed, _ = _finish(_driver(GATED_RUN, args, env))
    assert resumed["resumed_shards"] == shards - 1 and resumed["ran_shards"] == 1
    assert resumed["content_hash"] == reference["content_hash"]
    indices = lance.dataset(uri).to_table(columns=["index"]).column("index").to_pylist()
    assert sorted(indices) == list(range(num))  # nothing lost, nothing twice
    left = s3.keys("unimontage-resume", "killed.lance/")
    assert not _leftovers(left), left


def test_a_run_of_many_small_shards_is_compacted_and_keeps_its_lineage(ray_local, tmp_path):
    """One fragment per shard reads slowly at scale (benchmarks/scale.py): past
    COMPACT_ABOVE_FRAGMENTS the run merges them in a maintenance commit; the rows, their hash,
    the lineage and the up-to-date check survive it."""
    import cloudpickle
    import lance

    import tests.toy_product as toy
    from compute import harness
    from datagen.store import doctor, lance_io, lineage

    cloudpickle.register_pickle_by_value(toy)  # the private Ray's workers need not import tests/
    n = 2 * (lance_io.COMPACT_ABOVE_FRAGMENTS + 4)
    spec = harness.prepare(toy.PRODUCT, toy.ToyConfig(num=n), out=str(tmp_path / "many.lance"), shard_size=2)
    res = harness.execute(spec, workers=2, progress=False)
    committed = lance.dataset(res.uri, version=res.lineage["content_version"])
    assert len(committed.get_fragments()) > lance_io.COMPACT_ABOVE_FRAGMENTS
    ds = lance.dataset(res.uri)
    assert ds.version == res.version > committed.version and len(ds.get_fragments()) == 1
    node = lineage.dataset_node(res.uri)
    assert node["content_hash"] == res.content_hash and node["maintenance"]["content_version"] == committed.version
    assert lineage.verify_dataset(res.uri)["ok"] and doctor.report(doctor.diagnose(res.uri))["status"] == "ok"
    again = harness.execute(harness.prepare(toy.PRODUCT, toy.ToyConfig(num=n), out=res.uri, shard_size=2),
                            workers=2, progress=False)
    assert again.up_to_date and again.version == res.version
