"""Deployments a user runs from the Prefect UI.

`python -m flows.serve` (what `make ui` runs after starting the server) serves a deployment of
every dataset flow and of training. The test starts it against the session's Prefect server,
reads each deployment's stored parameter schema (the UI form: every product field with its
help text, every required field pre-filled), then does what the form's Run button does: a
flow run from the deployment with the form's values. The run goes to the two-node cluster
through the Ray Jobs API and writes to S3; the dataset, its card artifact and its lineage
(naming that flow run) are checked. `infra/prefect.yaml` is checked against the flows too.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(900)


# --------------------------------------------------------------------------- infra/prefect.yaml
def _flow_parameters(flow) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(flow.fn).parameters)


def test_prefect_yaml_loads_its_entrypoints_import_and_its_parameters_fit_the_flows():
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import validate

    from datagen import products

    raw = yaml.safe_load((ROOT / "infra" / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    assert model.prefect_version == "3.8.8"
    names = {d.name for d in model.deployments}
    assert names == set(products.built_in()) | {"train"}, names  # one per product, and training
    for dep, raw_dep in zip(model.deployments, raw["deployments"]):
        unknown = set(raw_dep) - set(DeploymentConfig.model_fields)
        assert not unknown, f"{dep.name}: keys prefect deploy would ignore: {unknown}"
        path, _, attr = dep.entrypoint.partition(":")
        assert (ROOT / path).is_file(), dep.entrypoint
        flow = load_flow_from_entrypoint(str(ROOT / path) + ":" + attr)
        expected = "train" if dep.name == "train" else f"{dep.name}-dataset"
        assert flow.name == expected, (dep.name, flow.name)
        params = _flow_parameters(flow)
        assert set(dep.parameters) <= set(params), f"{dep.name}: not parameters of the flow: " \
            f"{set(dep.parameters) - set(params)}"
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in dep.parameters]
        assert not missing, f"{dep.name}: required parameters without a value: {missing}"
        validate(dep.parameters, parameter_schema(flow).model_dump(), raise_on_error=True)
        pool = dep.work_pool
        assert pool.name == "unimontage-k8s" and pool.job_variables["image"].startswith("unimontage:")
        env = pool.job_variables["env"]
        assert env["RAY_ADDRESS"].startswith("http://"), "flows reach the cluster through the Ray Jobs API"
        assert not any(k.startswith("AWS_SECRET") for k in env), "credentials come from a secret, not the file"


# --------------------------------------------------------------------------- served deployments
async def _deployments(names: list[str], timeout_s: float = 300.0) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout_s
    found: dict = {}
    async with get_client() as client:
        while len(found) < len(names):
            for name in names:
                if name not in found:
                    try:
                        found[name] = await client.read_deployment_by_name(name)
                    except ObjectNotFound:
                        pass
            assert time.monotonic() < deadline, f"not served after {timeout_s:.0f} s: {set(names) - set(found)}"
            await asyncio.sleep(1.0)
    return found


async def _run_from_form(deployment, edits: dict, timeout_s: float = 600.0):
    """What the UI's Run button does: the form (the deployment's values, edited) -> a flow run."""
    from prefect.client.orchestration import get_client

    params = dict(deployment.parameters) | edits
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=params)
        deadline = time.monotonic() + timeout_s
        while True:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"flow run {run.id} still {run.state} after {timeout_s:.0f} s"
            await asyncio.sleep(2.0)


async def _artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return found


@pytest.mark.slow  # make test-slow: serving every flow and a Jobs run on the cluster take minutes
def test_every_flow_is_served_and_the_ui_run_button_makes_dataset_card_and_lineage(
        ray_cluster, s3_server, prefect_api_url, prefect_harness, tmp_path, monkeypatch):
    from datagen import products
    from datagen.store import lineage
    from flows import card
    from flows.datasets import flow_for, flow_parameters

    data = tmp_path / "data"
    env = ray_cluster.env(RAY_ADDRESS=ray_cluster.dashboard_url,  # runs go to the cluster as Ray Jobs
                          PREFECT_API_URL=prefect_api_url, PREFECT_RUNNER_POLL_FREQUENCY="2",
                          UNIMONTAGE_DATA=str(data), TQDM_DISABLE="1")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows.serve", "--no-sources", "--limit", "1"], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        names = [f"{n}-dataset/{n}" for n in products.built_in()] + ["train/train"]
        served = asyncio.run(_deployments(names))

        # The form: every product field, described; runnable as it stands (defaults under ./data).
        for name in products.built_in():
            dep = served[f"{name}-dataset/{name}"]
            props = dep.parameter_openapi_schema["properties"]
            for p in flow_parameters(products.get(name)):
                assert p.name in props, (name, p.name)
                assert props[p.name].get("description") == p.help, (name, p.name, props[p.name])
            required = dep.parameter_openapi_schema.get("required", [])
            assert set(required) <= set(dep.parameters), (name, required, dep.parameters)
            assert dep.parameters["out"] == str((data / f"{name.replace('-', '_')}.lance").resolve())
            params = inspect.signature(flow_for(name).fn).parameters
            assert set(dep.parameters) <= set(params)
        train = served["train/train"]
        assert train.parameters["config"] == "demo" and train.parameters["out"] == str((data / "runs").resolve())

        # Run: the collage form with a few fields edited, writing to object storage.
        bucket = s3_server.create_bucket("unimontage-ui")
        uri = f"{bucket}/datasets/collage.lance"
        run = asyncio.run(_run_from_form(served["collage-dataset/collage"],
                                         {"out": uri, "num": 8, "size": 64, "shard_size": 2}))
        assert run.state.is_completed(), (run.state, (tmp_path / "serve.log").read_text()[-5000:])

        for k, v in s3_server.env().items():  # read the result back as a reviewer's machine would
            monkeypatch.setenv(k, v)
        node = lineage.dataset_node(uri)
        assert node["rows"] == 8 and node["flow_runs"][0]["id"] == str(run.id)
        assert node["flow_runs"][0]["parameters"]["num"] == 8
        ids = set(ray_cluster.node_ids().values())
        assert set(node["shards"]["placement"]) <= ids  # the shards ran on the cluster
        assert lineage.verify_dataset(uri)["ok"]
        found = asyncio.run(_artifact(card.artifact_key(uri)))
        assert found and found[0].flow_run_id == run.id and "collage" in found[0].data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
