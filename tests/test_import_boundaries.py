"""Layering: data and model code never pull in the orchestrators.

`datagen/` and `models/` are pure libraries; `flows/workers/` is what every Ray actor
unpickles (with the harness's shard runner), so Prefect there would cost each actor its import time (~1.2 s) at start-up.
"""

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
top = importlib.import_module("{package}")
names = [m.name for m in pkgutil.walk_packages(getattr(top, "__path__", []), "{package}.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": 1 + len(names), "loaded": sorted(m for m in ("prefect", "ray") if m in sys.modules)}}))
"""


# flows.harness and flows.shard_work: what every actor unpickles besides its worker.
@pytest.mark.parametrize("package", ["datagen", "models", "flows.workers", "flows.harness", "flows.shard_work"])
def test_package_imports_neither_prefect_nor_ray(package):
    out = subprocess.run([sys.executable, "-c", PROBE.format(package=package)], capture_output=True, text=True,
                         check=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["modules"] >= 1
    assert report["loaded"] == [], f"{package} imports {report['loaded']}"
