"""Run CLI invocations in one fresh interpreter and report what they started.

Bad configuration must fail with exit code 2 before any work: the report says whether Ray
was ever imported and whether a Prefect flow run ever began in that interpreter
(`RAY_ADDRESS` points nowhere, so reaching Ray could not pass unnoticed either).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from flows.cli import app
codes = []
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="unimontage")
    except SystemExit as exc:
        codes.append(exc.code)
flow_runs = "prefect.flow_engine" in sys.modules
print(json.dumps({"codes": codes, "ray": "ray" in sys.modules, "flow_runs": flow_runs}))
"""


def cli_probe(runs: list[list[str]], tmp_path) -> tuple[dict, str]:
    """(report, stderr) for `unimontage <args>` of each run, in order."""
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), TQDM_DISABLE="1", RAY_ADDRESS="127.0.0.1:1")
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(runs)], env=env, capture_output=True, text=True,
                         timeout=300)
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr
