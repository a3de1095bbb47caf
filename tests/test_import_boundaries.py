"""Layering: data and model code never pull in the orchestrators.

`datagen/` and `models/` are pure libraries; `flows/workers/` is what every Ray actor
unpickles, so Prefect there would cost each actor its import time (~1.2 s) at start-up.
"""

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
import {package}
names = [m.name for m in pkgutil.walk_packages({package}.__path__, "{package}.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": len(names), "loaded": sorted(m for m in ("prefect", "ray") if m in sys.modules)}}))
"""


@pytest.mark.parametrize("package", ["datagen", "models", "flows.workers"])
def test_package_imports_neither_prefect_nor_ray(package):
    out = subprocess.run([sys.executable, "-c", PROBE.format(package=package)], capture_output=True, text=True,
                         check=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["modules"] > 0
    assert report["loaded"] == [], f"{package} imports {report['loaded']}"
