"""datagen.weights: the one missing-weights error and the lookup every model-backed step uses."""

from __future__ import annotations

import json
import pickle

import pytest

from datagen.weights import (
    MissingWeights,
    TINY_MARKER,
    is_tiny_random,
    require_any,
    require_files,
    require_hf_folder,
    resolve_dir,
)


def test_the_error_names_file_and_folder_in_its_message_and_its_fields(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeights) as err:
        require_hf_folder(tmp_path, "VLM")
    e = err.value
    assert isinstance(e, FileNotFoundError)
    assert str(e).startswith(f"VLM: none of ['model.safetensors', 'pytorch_model.bin'] found in folder {tmp_path}; ")
    assert (e.what, e.missing, e.folder) == ("VLM", ["model.safetensors or pytorch_model.bin"], tmp_path)
    assert "huggingface-cli download" in e.hint


def test_require_files_lists_every_absent_file_at_once(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"x")
    with pytest.raises(MissingWeights) as err:
        require_files("hed", tmp_path, ["a.pth", "b.pth", ("c.safetensors", "c.bin")], hint="get them")
    assert err.value.missing == ["b.pth", "c.safetensors or c.bin"]
    assert str(err.value) == f"hed needs b.pth, c.safetensors or c.bin, not found in {tmp_path.resolve()}; get them"
    (tmp_path / "c.bin").write_bytes(b"x")
    (tmp_path / "b.pth").write_bytes(b"x")
    found = require_files("hed", tmp_path, ["a.pth", "b.pth", ("c.safetensors", "c.bin")])
    assert found == {"a.pth": tmp_path / "a.pth", "b.pth": tmp_path / "b.pth", "c.safetensors": tmp_path / "c.bin"}
    with pytest.raises(MissingWeights, match="the folder does not exist"):
        require_files("hed", tmp_path / "nowhere", ["a.pth"])


def test_the_error_survives_pickling_with_its_fields(tmp_path):
    """Ray ships a worker's exception to the driver by pickle."""
    e = MissingWeights("m", what="w", missing=["f"], folder=tmp_path, hint="h")
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.what, back.missing, back.folder, back.hint) == ("m", "w", ["f"], tmp_path, "h")


def test_lookup_order_and_sharded_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIMONTAGE_WEIGHTS", str(tmp_path))
    assert resolve_dir(None, "Annotators") == tmp_path / "Annotators"
    assert resolve_dir(tmp_path / "mine", "Annotators") == tmp_path / "mine"
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    assert require_any(tmp_path, ["model.safetensors"], "VLM") == tmp_path / "model.safetensors.index.json"


def test_tiny_random_marker_in_a_config_or_a_file(tmp_path):
    assert not is_tiny_random(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({TINY_MARKER: True}))
    assert is_tiny_random(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    assert not is_tiny_random(tmp_path)
    (tmp_path / TINY_MARKER).write_text("random weights")
    assert is_tiny_random(tmp_path)


def test_a_ray_job_reports_missing_weights_as_itself():
    """A cluster run's plan fails like a local one: the CLI maps FileNotFoundError to exit code 2."""
    from compute.ray_jobs import ERROR_MARK, _outcome

    line = ERROR_MARK + json.dumps({"type": "MissingWeights", "message": "VLM: model folder /w does not exist"})
    with pytest.raises(MissingWeights, match="model folder /w does not exist") as err:
        _outcome("job-1", "FAILED", "log line\n" + line)
    assert isinstance(err.value, FileNotFoundError)
