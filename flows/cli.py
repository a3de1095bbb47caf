"""`unimontage` command line: dataset flows, cards, lineage.

Flows run under Prefect (an ephemeral local server unless PREFECT_API_URL points at one)
and Ray (local unless RAY_ADDRESS is set).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from datagen.params import Param
from flows.cli_errors import fail


app = typer.Typer(help="UniMontage: training data for unified many-to-many image generation and editing models.",
                  no_args_is_help=True, add_completion=False)
datagen_app = typer.Typer(help="Generate a dataset into Lance (one commit per run; re-run to resume).",
                          no_args_is_help=True)
app.add_typer(datagen_app, name="datagen")


def _run_flow(flow, **kwargs) -> None:
    """Run a flow and print its result; bad input (missing weights included: a
    FileNotFoundError) and a dataset busy with another run are a one-line error and exit
    code 2, not a traceback."""
    from datagen.store.lance_io import ConcurrentWrite
    from datagen.store.lease import DatasetBusy

    try:
        result = flow(**kwargs)
    except (ValueError, FileNotFoundError, DatasetBusy, ConcurrentWrite) as exc:
        fail(str(exc))
    typer.echo(json.dumps(result, indent=1, default=str))


def _cli_type(p: Param) -> Any:
    """What the command line parses: lists are comma-separated text, choices are text."""
    base, optional = p.type, False
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(base) if a is not type(None)]
        base, optional = args[0], True
    if typing.get_origin(base) is tuple or typing.get_origin(base) is typing.Literal or dataclasses.is_dataclass(base):
        return Optional[str]
    return Optional[base] if optional or p.required else base


def _cli_default(p: Param) -> Any:
    if p.required:
        return ...
    if isinstance(p.default, tuple):
        return ",".join(map(str, p.default)) or None
    if dataclasses.is_dataclass(p.default):
        return None  # nested rules: given as JSON on the command line, defaults otherwise
    return p.default


def _option(p: Param) -> Any:
    flags = [p.flag] if p.type is not bool else [f"{p.flag}/--no-{p.flag[2:]}"]
    extra = f" One of: {', '.join(map(str, p.choices))}." if p.choices else ""
    if dataclasses.is_dataclass(p.default):
        extra += f" JSON object of its fields, e.g. '{json.dumps(dataclasses.asdict(p.default))[:120]}'."
    return typer.Option(_cli_default(p), *flags, help=p.help + extra,
                        rich_help_panel="Advanced" if p.advanced else None)


def dataset_command(name: str) -> Callable[..., None]:
    """`unimontage datagen <name>`: options derived from the product's run options and config."""
    from datagen import products
    from flows.datasets import RUN_OPTION_NAMES, flow_for, flow_parameters

    product = products.get(name)
    params = flow_parameters(product)

    nested = {p.name for p in params if dataclasses.is_dataclass(p.default)}

    def command(**values: Any) -> None:
        values = {k: v for k, v in values.items() if not (v is None and k not in RUN_OPTION_NAMES)}
        for k in nested & set(values):
            try:
                values[k] = json.loads(values[k])
            except json.JSONDecodeError as exc:
                fail(f"--{k.replace('_', '-')}: not a JSON object ({exc})")
        config = {k: v for k, v in values.items() if k not in RUN_OPTION_NAMES}
        try:  # bad configuration and missing weights fail before Prefect or Ray start
            cfg = product.make_config(config)
            if product.preflight is not None:
                product.preflight(cfg)
            typed = cfg.to_dict()
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        options = {k: v for k, v in values.items() if k in RUN_OPTION_NAMES}
        _run_flow(flow_for(name), **options, **{k: typed[k] for k in config})

    ordered = [p for p in params if p.required] + [p for p in params if not p.required]
    command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=_option(p), annotation=_cli_type(p))
        for p in ordered])
    command.__annotations__ = {p.name: _cli_type(p) for p in ordered}
    command.__doc__ = product.summary
    return command


def mount_product(name: str) -> None:
    """Add `unimontage datagen <name>` for a registered product (all registered ones are mounted at import)."""
    from datagen import products

    datagen_app.command(name, help=products.get(name).summary)(dataset_command(name))


def _mount_products() -> None:
    from datagen import products

    for name in products.names():
        mount_product(name)


@app.command("card")
def card_cmd(
    uri: str = typer.Argument(..., help="Dataset URI, optionally @VERSION."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the full markdown card (with images) here."),
    publish: bool = typer.Option(False, "--publish", help="Also publish it as the keyed Prefect artifact."),
) -> None:
    """Print a dataset card: counts per task, rejects by reason, schema, how to load, lineage."""
    from flows import card

    try:
        markdown = card.render_card(uri)
    except FileNotFoundError as exc:
        fail(str(exc))
    if out:
        out.write_text(markdown)
        typer.echo(f"wrote {out} ({len(markdown):,} bytes)", err=True)
    if publish:
        from prefect.artifacts import create_markdown_artifact

        from datagen.store.lance_io import split_version

        create_markdown_artifact(key=card.artifact_key(split_version(uri)[0]), markdown=markdown)
    typer.echo(card.strip_images(markdown))


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="Dataset URI[@VERSION] or a checkpoint/training-run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the graph as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the dataset's content hash from its rows."),
) -> None:
    """Print the lineage graph back to flow runs and sources."""
    from datagen.store import lineage

    tree = lineage.walk(ref)
    if tree["node"].get("kind") == "missing":
        fail(tree["node"]["error"])
    typer.echo(json.dumps(tree, indent=1, default=str) if as_json else lineage.render(tree))
    if verify:
        res = lineage.verify_dataset(ref)
        typer.echo(json.dumps(res, indent=1))
        if not res["ok"]:
            raise typer.Exit(1)


@app.command("doctor")
def doctor_cmd(
    ref: str = typer.Argument(..., help="Dataset URI, optionally @VERSION."),
    quick: bool = typer.Option(False, "--quick", help="Skip re-hashing every row."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Check a dataset: fragments, lineage, rejects pairing, accounting, content hash, leftovers."""
    from datagen.store import doctor

    try:
        findings = doctor.diagnose(ref, verify=not quick)
    except FileNotFoundError as exc:
        fail(str(exc))
    rep = doctor.report(findings)
    typer.echo(json.dumps(rep, indent=1) if as_json else "\n".join(f.line() for f in findings))
    if rep["status"] == "error":
        raise typer.Exit(1)


@app.command("clean")
def clean_cmd(
    uri: str = typer.Argument(..., help="Dataset URI."),
    older_than_days: float = typer.Option(0.0, "--older-than-days", help="Only what is at least this old."),
) -> None:
    """Drop staging of runs that never committed and delete orphan data files (committed versions stay)."""
    from datagen.store import cleanup
    from datagen.store.lease import DatasetBusy

    try:
        typer.echo(json.dumps(cleanup.clean(uri, older_than_s=older_than_days * 86400.0), indent=1))
    except DatasetBusy as exc:
        fail(str(exc))


def _mount_training() -> None:
    """`train` and `sample` live with the trainer; the main CLI mounts them."""
    from flows.train_cli import sample, train

    app.command("train", help=train.__doc__)(train)
    app.command("sample", help=sample.__doc__)(sample)


_mount_products()
_mount_training()


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="unimontage")


if __name__ == "__main__":
    sys.exit(main())
