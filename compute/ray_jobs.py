"""A dataset run submitted to a remote Ray cluster through the Ray Jobs API.

How a flow reaches a cluster it does not run on: `RAY_ADDRESS=http://HEAD:8265` (the
dashboard, as for `ray job submit`) makes the flow submit the run as a Ray Job. The job's
driver runs on the cluster (`python -m compute.ray_jobs REQUEST`): it plans, runs the shards
and commits, exactly as a local run, and prints its result. The flow process only waits,
forwards the job's log lines, and reads the committed dataset back from storage for the
card and lineage. The run survives the flow process (a Prefect worker pod may go away);
Ray Client (`ray://`), which ties the run to the client's connection, is not used:
Ray's docs steer long-running and Ray Train workloads to Jobs.

Credentials never travel with the job: nodes read object storage with their own (a
Kubernetes secret on the pods, the environment of `ray start` on a machine). The token of
a cluster with token auth is read from RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH by Ray itself.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any, Callable

from compute import harness

RESULT_MARK = "UNIMONTAGE_RESULT "
ERROR_MARK = "UNIMONTAGE_ERROR "
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
DEFAULT_TIMEOUT_S = 7 * 86400.0  # a run may take days; it never waits unbounded


def jobs_address(address: str | None) -> str | None:
    """The dashboard URL when `address` (RAY_ADDRESS) names one, else None."""
    if address and address.startswith(("http://", "https://")):
        return address.rstrip("/")
    return None


class JobFailed(RuntimeError):
    """The job ended without a result (its driver crashed, or it was stopped)."""


def _errors() -> dict[str, type[BaseException]]:
    """Errors the job reports by name and the flow re-raises as themselves (bad input,
    a busy dataset): the CLI maps them to exit code 2 as for a local run."""
    from datagen.store.lance_io import ConcurrentWrite
    from datagen.store.lease import DatasetBusy
    from datagen.weights import MissingWeights

    return {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError, "DatasetBusy": DatasetBusy,
            "ConcurrentWrite": ConcurrentWrite, "MissingWeights": MissingWeights}


def encode_request(request: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(request, sort_keys=True).encode()).decode()


def decode_request(text: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(text.encode()))


def submit_run(address: str, request: dict[str, Any], *, on_log: Callable[[str], None] | None = None,
               poll_s: float = 2.0, timeout_s: float = DEFAULT_TIMEOUT_S,
               python: str = "python") -> dict[str, Any]:
    """Submit `request` (product, config, out, seed, shard_size, workers, ...) as a Ray Job,
    wait for it, and return the job's result: the run summary with its lineage node."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    name = request.get("run_id") or "run"
    job_id = client.submit_job(entrypoint=f"{python} -m compute.ray_jobs {encode_request(request)}",
                               metadata={"unimontage": f"{request['product']} -> {request['out']}"[:200],
                                         "run_id": str(name)})
    deadline = time.monotonic() + timeout_s
    shown = 0
    try:
        while True:
            status = str(client.get_job_status(job_id).value)
            logs = client.get_job_logs(job_id)
            if on_log is not None:
                for line in logs[shown:].splitlines():
                    if line.strip() and not line.startswith((RESULT_MARK, ERROR_MARK)):
                        on_log(line)
            shown = len(logs)
            if status in TERMINAL:
                return _outcome(job_id, status, logs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray job {job_id} did not finish within {timeout_s:.0f} s; it was stopped")
            time.sleep(poll_s)
    except BaseException:  # time-out, the flow cancelled or interrupted: the cluster stops too
        if str(client.get_job_status(job_id).value) not in TERMINAL:
            client.stop_job(job_id)
        raise


def _outcome(job_id: str, status: str, logs: str) -> dict[str, Any]:
    for line in reversed(logs.splitlines()):
        if line.startswith(RESULT_MARK) and status == "SUCCEEDED":
            return json.loads(line[len(RESULT_MARK):]) | {"ray_job": job_id}
        if line.startswith(ERROR_MARK):
            err = json.loads(line[len(ERROR_MARK):])
            raise _errors().get(err["type"], JobFailed)(err["message"])
    tail = "\n".join(logs.splitlines()[-20:])
    raise JobFailed(f"Ray job {job_id} ended {status} without a result; its last log lines:\n{tail}")


# --------------------------------------------------------------------------- the job's driver
def run_request(request: dict[str, Any]) -> harness.RunResult:
    """On the cluster: the same plan -> shards -> commit as a local run."""
    spec = harness.plan_run(request["product"], out=request["out"], seed=request.get("seed", 0),
                            shard_size=request.get("shard_size"), **request.get("config", {}))
    result = harness.execute(spec, workers=request.get("workers", 1), run_id=request.get("run_id"),
                             flow_run=request.get("flow_run"), progress=False,
                             item_timeout_s=request.get("item_timeout", 600.0),
                             overwrite=request.get("overwrite", False))
    return result


def result_from_job(out: dict[str, Any]) -> harness.RunResult:
    """The job's printed result as the `RunResult` a local run returns."""
    fields = harness.RunResult.__dataclass_fields__
    return harness.RunResult(**{k: out[k] for k in fields})


def main(argv: list[str]) -> int:
    request = decode_request(argv[0])
    try:
        result = run_request(request)
    except tuple(_errors().values()) as exc:
        print(ERROR_MARK + json.dumps({"type": type(exc).__name__, "message": str(exc)}), flush=True)
        return 2
    print(RESULT_MARK + json.dumps(result.summary() | {"lineage": result.lineage}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
