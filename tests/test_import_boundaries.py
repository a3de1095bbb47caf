"""Layering: flows -> training -> compute -> {datagen, models}; no arrow runs back up.

Two checks. Statically, every `import` in every module (function-level ones included) of
each package names only the packages its layer may use, plus the leaf modules in `LEAVES`
(named whole: `from datagen.weights import X`, never `from datagen import weights`). At run time, importing all of
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
# Single modules a package may import from a package it may not otherwise use. They import
# nothing of ours themselves: `datagen.weights` is the one missing-weights error and lookup,
# which the model loaders raise too.
LEAVES = {"models": {"datagen.weights"}}


def _imports(path: Path) -> set[str]:
    """The full module names `path` imports (of ours and the orchestrators)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in OURS | {"ray", "prefect"}}


def _outside_layer(package: str, modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] not in ALLOWED[package] and m not in LEAVES.get(package, set())}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_its_layer_and_below(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    bad = {}
    for f in files:
        extra = _outside_layer(package, _imports(f))
        if extra:
            bad[str(f.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"imports across the layering: {bad}"


def test_only_tests_and_benchmarks_use_the_testing_builders():
    users = [str(f.relative_to(ROOT)) for package in OURS for f in sorted((ROOT / package).rglob("*.py"))
             if not f.is_relative_to(ROOT / "datagen" / "testing")
             and any(m == "datagen.testing" or m.startswith("datagen.testing.") for m in _imports(f))]
    assert users == [], f"product modules import the test-only builders: {users}"


def test_a_leaf_module_is_allowed_by_its_whole_name_only():
    assert _outside_layer("models", {"datagen.weights", "models.dit"}) == set()
    assert _outside_layer("models", {"datagen", "datagen.images", "datagen.weights.x"}) == {
        "datagen", "datagen.images", "datagen.weights.x"}
    for leaf in set().union(*LEAVES.values()):  # a leaf imports nothing of ours but its own package's root
        path = ROOT / (leaf.replace(".", "/") + ".py")
        assert _imports(path) == set(), f"{leaf} is no leaf: it imports {sorted(_imports(path))}"


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


def test_models_load_of_datagen_only_its_leaves():
    code = ("import importlib, pkgutil, sys, models\n"
            "for m in pkgutil.walk_packages(models.__path__, 'models.'): importlib.import_module(m.name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'datagen'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == str(sorted({"datagen"} | LEAVES["models"]))


def test_training_loads_no_prefect():
    code = "import training.job, training.report, sys; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
