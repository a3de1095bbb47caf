"""One Prefect flow per registered product, derived from its declaration.

    from flows.datasets import flow_for
    flow_for("collage")(out="data/collage.lance", num=100, seed=0, workers=2)

`flows.datasets.<name>_flow` (dashes as underscores) is the same flow, for deployment
entrypoints (`flows/datasets.py:collage_flow`). A flow's parameters are the run options
(`out`, `seed`, `workers`, `shard_size`, `progress`) followed by the product's config
fields, with their types, defaults and help: the deployment form in the UI shows them.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from typing import Any

from prefect import Flow, flow

from compute.ray_jobs import jobs_address
from datagen import products
from datagen.params import REQUIRED, Param, check_bounds
from datagen.product import Product
from flows.tasks import audit_dataset, generate_dataset, generate_on_cluster, log_lineage, plan_dataset, publish_card

# The run options every dataset flow takes before its product's own parameters.
RUN_OPTIONS: list[Param] = [
    Param("out", str, REQUIRED, "Lance dataset URI to write (local path or s3://...). Rejects go to "
          "<name>_rejects.lance beside it.", None, None, None, "--out", False, False),
    Param("seed", int, 0, "Dataset seed. Sample i draws from an RNG seeded by (seed, i).", 0, None, None, "--seed",
          False, False),
    Param("workers", int, 1, "Ray workers (actors or tasks, 1 CPU each). Output bytes do not depend on this.", 1,
          None, None, "--workers", False, False),
    Param("shard_size", int | None, None, "Inputs per shard, the unit of resume (default: the product's).", 1, None,
          None, "--shard-size", False, True),
    Param("item_timeout", float, 600.0, "Seconds an item may take before it becomes a `timeout` reject (a "
          "worker's setup gets its own allowance).", 1.0, 86400.0, None, "--item-timeout", False, True),
    Param("overwrite", bool, False, "Replace a dataset of another product (or one without UniMontage lineage) "
          "at --out with a new version.", None, None, None, "--overwrite", False, True),
    Param("progress", bool, True, "Show a progress bar.", None, None, None, "--progress", False, True),
]
RUN_OPTION_NAMES = {p.name for p in RUN_OPTIONS}
_FLOWS: dict[str, Flow] = {}


def run_dataset(product: Product, config: dict[str, Any], *, out: str, seed: int = 0, workers: int = 1,
                shard_size: int | None = None, item_timeout: float = 600.0, overwrite: bool = False,
                progress: bool = True) -> dict[str, Any]:
    """The body of every dataset flow: plan -> generate -> audit -> card -> lineage."""
    for p in RUN_OPTIONS:
        check_bounds(p.name, locals()[p.name], {"min": p.min, "max": p.max})
    address = jobs_address(os.environ.get("RAY_ADDRESS"))
    if address:  # a remote cluster's dashboard: the run goes there as a Ray Job
        result = generate_on_cluster(address, product.name, config, out, seed, shard_size, workers,
                                     item_timeout=item_timeout, overwrite=overwrite)
    else:
        spec = plan_dataset(product.name, config, out, seed, shard_size)
        result = generate_dataset(spec, workers, progress, item_timeout=item_timeout, overwrite=overwrite)
    extra: dict[str, Any] = {}
    if product.check is not None:
        extra["audit"] = audit_dataset(product.name, result.uri, result.version)
    extra["card"] = publish_card(result.uri, result.version)
    log_lineage(f"{result.uri}@{result.version}")
    return result.summary() | extra


def flow_parameters(product: Product) -> list[Param]:
    clash = RUN_OPTION_NAMES & {p.name for p in product.config.params()}
    if clash:
        raise ValueError(f"product {product.name}: config fields {sorted(clash)} clash with the run options")
    return RUN_OPTIONS + product.config.params()


def _flow_type(tp: Any) -> Any:
    """A list field also takes the CLI's comma-separated text (the config parses it)."""
    base = tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        base = args[0] if len(args) == 1 else tp
    if typing.get_origin(base) is tuple:
        return tp | str
    return tp


def _signature(params: list[Param]) -> inspect.Signature:
    ordered = [p for p in params if p.required] + [p for p in params if not p.required]
    return inspect.Signature([
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=_flow_type(p.type),
                          default=inspect.Parameter.empty if p.required else p.default)
        for p in ordered])


def _docstring(product: Product, params: list[Param]) -> str:
    lines = [product.summary, "", "Args:"]
    lines += [f"    {p.name}: {p.help}" for p in params]
    return "\n".join(lines)


def make_dataset_flow(product: Product) -> Flow:
    params = flow_parameters(product)

    def dataset_flow(**values: Any) -> dict[str, Any]:
        options = {k: values.pop(k) for k in list(values) if k in RUN_OPTION_NAMES}
        return run_dataset(product, values, **options)

    dataset_flow.__signature__ = _signature(params)  # type: ignore[attr-defined]
    dataset_flow.__annotations__ = {p.name: _flow_type(p.type) for p in params} | {"return": dict[str, Any]}
    dataset_flow.__doc__ = _docstring(product, params)
    dataset_flow.__name__ = dataset_flow.__qualname__ = f"{product.name.replace('-', '_')}_flow"
    dataset_flow.__module__ = __name__
    return flow(name=f"{product.name}-dataset", description=product.summary, log_prints=True)(dataset_flow)


def flow_for(name: str) -> Flow:
    if name not in _FLOWS:
        _FLOWS[name] = make_dataset_flow(products.get(name))
    return _FLOWS[name]


def __getattr__(attr: str) -> Flow:
    """`flows.datasets.collage_flow` -> the collage flow (deployment entrypoints use this)."""
    if attr.endswith("_flow"):
        name = attr[: -len("_flow")]
        for candidate in (name, name.replace("_", "-")):
            if candidate in products.names():
                return flow_for(candidate)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
