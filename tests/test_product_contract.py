"""The product contract: a product declared once (tests/toy_product.py, written outside the
package) gets its CLI command, Prefect flow, card parameter table and lineage record derived
from its config, and runs through the same harness as the five built-in products."""

from __future__ import annotations

import json

import cloudpickle
import pytest
from typer.testing import CliRunner

import tests.toy_product as toy
from datagen import products
from datagen.params import ProductConfig

cloudpickle.register_pickle_by_value(toy)


@pytest.fixture(scope="module")
def toy_cli():
    from flows import cli

    if "toy" not in products.names():
        products.register(toy.PRODUCT)
    if not any(c.name == "toy" for c in cli.datagen_app.registered_commands):
        cli.mount_product("toy")
    return cli.app


def test_config_validates_on_construction():
    cfg = toy.ToyConfig(num=3)
    assert (cfg.size, cfg.colour) == (32, "red")
    with pytest.raises(ValueError, match="size must be >= 16"):
        toy.ToyConfig(num=3, size=8)
    with pytest.raises(ValueError, match="colour: 'blue' is not one of"):
        toy.ToyConfig(num=3, colour="blue")
    with pytest.raises(ValueError, match="num: want an integer"):
        toy.ToyConfig.from_dict({"num": 2.5})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) sise; known: colour, num, size"):
        toy.ToyConfig.from_dict({"num": 2, "sise": 3})
    with pytest.raises(AttributeError):
        cfg.size = 64  # frozen: a config that exists stays valid
    assert toy.ToyConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.content() == {"size": 32, "colour": "red"}  # `num` decides which items exist, not their bytes


def test_every_registered_product_declares_a_valid_contract():
    for name in products.names():
        prod = products.get(name)
        assert issubclass(prod.config, ProductConfig) and prod.summary and prod.generator
        assert callable(prod.shard_size) or prod.shard_size >= 1  # a callable depends on the config
        for p in prod.config.params():
            assert p.help, f"{name}.{p.name} has no help text"


def test_flow_parameters_and_form_derive_from_the_config():
    from prefect.utilities.callables import parameter_schema

    from flows.datasets import make_dataset_flow

    schema = parameter_schema(make_dataset_flow(toy.PRODUCT)).model_dump()
    props = schema["properties"]
    assert {"out", "seed", "workers", "shard_size", "num", "size", "colour"} <= set(props)
    assert set(schema["required"]) == {"out", "num"}
    assert props["size"]["default"] == 32 and props["size"]["description"] == "Canvas side in pixels."
    assert props["colour"]["default"] == "red"


def test_toy_product_through_cli_flow_card_and_lineage(prefect_harness, ray_local, tmp_path, toy_cli):
    from datagen.store import lineage
    from flows import card

    out = str(tmp_path / "toy.lance")
    runner = CliRunner()
    help_text = runner.invoke(toy_cli, ["datagen", "toy", "--help"]).output
    assert "--colour" in help_text and "Canvas side in pixels." in help_text
    bad = runner.invoke(toy_cli, ["datagen", "toy", "--out", out, "--num", "4", "--size", "8"])
    assert bad.exit_code == 2 and "size must be >= 16" in bad.output
    res = runner.invoke(toy_cli, ["datagen", "toy", "--out", out, "--num", "20", "--size", "24", "--colour", "green",
                                  "--seed", "5", "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["rows"] + summary["rejects"] == 20 and summary["audit"]["failed"] == 0
    node = lineage.dataset_node(out)
    assert node["product"] == "toy" and node["config"] == {"num": 20, "size": 24, "colour": "green"}
    assert node["flow_runs"][0]["flow"] == "toy-dataset"
    md = card.render_card(out)
    assert "- `--size` = `24` (default `32`): Canvas side in pixels." in md
    assert "- `--colour` = `\"green\"` (default `\"red\"`): Colour of the square." in md
