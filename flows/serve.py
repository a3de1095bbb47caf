"""`make ui`: the Prefect server on 127.0.0.1 and a served deployment of every flow.

    python -m flows.serve --start-server      # server on 127.0.0.1:4200 + deployments (make ui)
    python -m flows.serve                     # deployments only, on PREFECT_API_URL's server

Each dataset product gets a deployment `<product>-dataset/<product>`, training gets
`train/train`; their parameter forms in the UI are the flows' typed parameters (the product
configs, with help text), pre-filled with the embedded demo sources under ./data, so "pick a
flow, press Run" works on a fresh checkout. Runs execute in this process's runner, with its
environment: set RAY_ADDRESS (a cluster's GCS, or http://HEAD:8265 to submit Ray Jobs) and the
AWS_* variables before starting it to run on a cluster and write to object storage.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("UNIMONTAGE_DATA", "data"))


def dataset_defaults(data: Path) -> dict[str, dict[str, Any]]:
    """Form defaults per product: the demo's plan (flows/demo_plan.py) under `data`, absolute."""
    from flows import demo_plan

    return {name: params | {"workers": 2} for name, params in demo_plan.product_params(data.resolve()).items()}


def train_defaults(data: Path) -> dict[str, Any]:
    from flows import demo_plan

    d = data.resolve()
    return {"config": "demo", "out": str(d / "runs"), "datasets": [str(d / f"{n}.lance") for n in demo_plan.TRAIN_ON]}


def deployments(data: Path = DATA) -> list[Any]:
    """One runner deployment per dataset product, and training. A product outside the demo's plan
    (one registered by a plugin) gets a form with only its output filled in."""
    from prefect.deployments.runner import EntrypointType

    from datagen import products
    from flows.datasets import flow_for
    from flows.train_flow import train_flow

    defaults = dataset_defaults(data)
    out = []
    for name in products.names():
        params = defaults.get(name, {"out": str(data.resolve() / f"{name}.lance")})
        out.append(flow_for(name).to_deployment(name, parameters=params, tags=["dataset"],
                                                entrypoint_type=EntrypointType.MODULE_PATH))
    out.append(train_flow.to_deployment("train", parameters=train_defaults(data), tags=["training"],
                                        entrypoint_type=EntrypointType.MODULE_PATH))
    return out


# --------------------------------------------------------------------------- the server
def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def start_server(host: str, port: int, timeout_s: float = 180.0) -> subprocess.Popen | None:
    """`prefect server start` bound to `host` (None when one already answers there)."""
    api_url = f"http://{host}:{port}/api"
    if _healthy(api_url):
        return None
    prefect = str(Path(sys.executable).parent / "prefect")
    # The UI in the browser calls the API where this server is, whatever port it got.
    env = dict(os.environ, PREFECT_UI_API_URL=api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.Popen([prefect, "server", "start", "--host", host, "--port", str(port)], env=env,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not _healthy(api_url):
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"prefect server did not answer on {api_url} within {timeout_s:.0f} s")
        time.sleep(0.5)
    return proc


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--start-server", action="store_true", help="Start `prefect server` first (make ui).")
    ap.add_argument("--host", default="127.0.0.1", help="Where the started server binds (default 127.0.0.1).")
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--limit", type=int, default=1, help="Flow runs at once (default 1: one run fills 2 cores).")
    ap.add_argument("--no-sources", action="store_true", help="Do not make the embedded demo sources.")
    args = ap.parse_args(argv)

    # `kill PID` stops the server this started too (the finally below), as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = None
    if args.start_server:
        server = start_server(args.host, args.port)
        os.environ["PREFECT_API_URL"] = f"http://{args.host}:{args.port}/api"  # this runner and its runs
    try:
        if not args.no_sources:
            from flows import demo_plan

            demo_plan.make_sources(DATA / "sources")
        from prefect import serve

        deps = deployments(DATA)
        print(f"serving {len(deps)} deployments on {os.environ.get('PREFECT_API_URL', 'the configured server')}: "
              + ", ".join(f"{d.flow_name}/{d.name}" for d in deps), flush=True)
        serve(*deps, limit=args.limit, print_starting_message=False)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
