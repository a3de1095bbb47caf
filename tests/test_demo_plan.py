"""The demo's plan (flows/demo_plan.py) is one table read by the demo, the UI's forms and the
same-bytes check: it must name every built-in product and only parameters the products have."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagen import products
from flows import demo_plan, serve
from flows.datasets import RUN_OPTION_NAMES, flow_parameters


@pytest.mark.parametrize("size", sorted(demo_plan.SIZES))
def test_every_product_is_planned_with_parameters_it_has(size, tmp_path):
    plan = demo_plan.product_params(tmp_path, size, collage_ref=f"{tmp_path / 'collage.lance'}@1")
    assert set(plan) == set(products.built_in()) == set(demo_plan.DATASETS)
    for name, params in plan.items():
        product = products.get(name)
        assert set(params) <= {p.name for p in flow_parameters(product)}, name
        product.make_config({k: v for k, v in params.items() if k not in RUN_OPTION_NAMES})  # refuses a bad value
        assert params["out"] == str(tmp_path / f"{demo_plan.DATASETS[name]}.lance")
    assert plan["conditions"]["images"].endswith("collage.lance@1")
    assert set(demo_plan.TRAIN_ON) <= set(demo_plan.DATASETS.values())


def test_command_line_flags_are_each_parameters_own():
    plan = demo_plan.product_params(Path("d"), "demo")
    assert demo_plan.cli_args("multiview", plan["multiview"]) == [
        "multiview", "--out", "d/multiview.lance", "--captures", "d/sources/captures", "--per-capture", "3"]
    assert "--with-references" in demo_plan.cli_args("conditions", plan["conditions"])
    assert "--no-with-references" in demo_plan.cli_args("conditions", plan["conditions"] | {"with_references": False})


def test_the_ui_forms_default_to_the_demo_plan(tmp_path):
    forms = serve.dataset_defaults(tmp_path)
    plan = demo_plan.product_params(tmp_path.resolve())
    assert {name: {k: v for k, v in form.items() if k != "workers"} for name, form in forms.items()} == plan
    assert serve.train_defaults(tmp_path)["datasets"] == [str(tmp_path.resolve() / f"{n}.lance")
                                                          for n in demo_plan.TRAIN_ON]
