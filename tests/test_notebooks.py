"""The notebooks run top to bottom against a real dataset made by the harness."""

from __future__ import annotations

from pathlib import Path

import cloudpickle
import nbformat
from nbclient import NotebookClient

import tests.toy_product as toy
from compute import harness

cloudpickle.register_pickle_by_value(toy)
ROOT = Path(__file__).resolve().parents[1]


def test_browse_dataset_notebook(ray_local, tmp_path, monkeypatch):
    out = tmp_path / "nb.lance"
    harness.execute(harness.prepare(toy.PRODUCT, toy.ToyConfig(num=12), out=str(out), seed=1, shard_size=4),
                    workers=1, progress=False)
    monkeypatch.setenv("UNIMONTAGE_DATASET", str(out))
    nb = nbformat.read(ROOT / "notebooks" / "browse_dataset.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "edit.add" in outputs and "'ok': True" in outputs
