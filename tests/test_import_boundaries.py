"""Layering: flows -> training -> compute -> {datagen, models}; no arrow runs back up.

Two checks. Statically, every `import` in every module (function-level ones included) of
each package names only the packages its layer may use. At run time, importing all of
`datagen`, `models` and what every Ray actor unpickles (`compute.harness`,
`compute.shard_runner`, the product packages) loads neither Prefect nor Ray: Prefect there
would cost each actor its import time (~1.2 s) at start-up.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"datagen", "models", "compute", "training", "flows"}
# What each package may import of ours and of the two orchestrators.
ALLOWED = {
    "datagen": {"datagen"},
    "models": {"models"},
    "compute": {"compute", "datagen", "models", "ray"},
    "training": {"training", "compute", "datagen", "models", "ray"},
    "flows": OURS | {"ray", "prefect"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & (OURS | {"ray", "prefect"})


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_its_layer_and_below(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    bad = {}
    for f in files:
        extra = _imports(f) - ALLOWED[package]
        if extra:
            bad[str(f.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"imports across the layering: {bad}"


PROBE = """
import importlib, json, pkgutil, sys
top = importlib.import_module("{package}")
names = [m.name for m in pkgutil.walk_packages(getattr(top, "__path__", []), "{package}.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": 1 + len(names), "loaded": sorted(m for m in ("prefect", "ray") if m in sys.modules)}}))
"""


@pytest.mark.parametrize("package", ["datagen", "models", "compute.harness", "compute.shard_runner"])
def test_package_loads_neither_prefect_nor_ray(package):
    out = subprocess.run([sys.executable, "-c", PROBE.format(package=package)], capture_output=True, text=True,
                         check=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["modules"] >= 1
    assert report["loaded"] == [], f"{package} imports {report['loaded']}"


def test_training_loads_no_prefect():
    code = "import training.job, training.report, sys; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
