"""`unimontage` command line: dataset flows, cards, lineage, reviews.

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
    flags = [p.flag] if p.type is not bool else [f"{p.flag}/{p.off_flag}"]
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
    uri: str = typer.Argument(..., help="Dataset URI, optionally @VERSION or @TAG (e.g. @reviewed)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the full markdown card (with images) here."),
    publish: bool = typer.Option(False, "--publish", help="Also publish it as the dataset's keyed Prefect artifact "
                                 "(in a small `publish-dataset-card` flow run)."),
) -> None:
    """Print a dataset card: counts per task, rejects by reason, examples, scores, schema, lineage."""
    from flows import card

    try:
        markdown = card.render_card(uri)
    except FileNotFoundError as exc:
        fail(str(exc))
    if out:
        out.write_text(markdown)
        typer.echo(f"wrote {out} ({len(markdown):,} bytes)", err=True)
    if publish:
        key = card.publish_card_flow(uri)
        typer.echo(f"published as Prefect artifact {key!r}", err=True)
    typer.echo(card.strip_images(markdown))


LINEAGE_FORMATS = ("text", "json", "svg", "png", "dot")


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="Dataset URI[@VERSION|@TAG] or a checkpoint/training-run directory."),
    fmt: str = typer.Option("text", "--format", help="text (each node once), json (the walked tree), svg or png "
                            "(the picture the cards show; drawn with matplotlib, no Graphviz needed) or dot "
                            "(Graphviz source)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file (needed for png) instead of stdout."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the dataset's content hash from its rows, or "
                                "re-hash a checkpoint's files against its lineage."),
) -> None:
    """The lineage graph back to flow runs and sources: as text, JSON or a picture."""
    from datagen.report import lineage_picture
    from datagen.store import lineage

    fmt = "json" if as_json else fmt
    if fmt not in LINEAGE_FORMATS:
        fail(f"--format {fmt!r}: one of {', '.join(LINEAGE_FORMATS)}")
    if fmt == "png" and out is None:
        fail("--format png writes a binary file: add --out FILE.png")
    tree = lineage.walk(ref)
    if tree["node"].get("kind") == "missing":
        fail(tree["node"]["error"])
    rendered: str | bytes
    if fmt == "json":
        rendered = json.dumps(tree, indent=1, default=str)
    elif fmt == "text":
        rendered = lineage.render(tree)
    else:
        graph = lineage.graph(tree)
        rendered = {"svg": lineage_picture.to_svg, "png": lineage_picture.to_png, "dot": lineage_picture.to_dot}[fmt](graph)
    if out is not None:
        out.write_bytes(rendered) if isinstance(rendered, bytes) else out.write_text(rendered)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(rendered)
    if verify:
        res = lineage.verify(ref)
        typer.echo(json.dumps(res, indent=1))
        if not res["ok"]:
            if res.get("error"):
                typer.secho(f"error: {res['error']}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)


def _prefect_server() -> str | None:
    """The Prefect API this process talks to (env or profile); None means an ephemeral one."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@app.command("review")
def review_cmd(
    ref: str = typer.Argument(..., help="Dataset URI, optionally @VERSION (default: the latest version)."),
    approve: Optional[bool] = typer.Option(None, "--approve/--reject", help="Decide here instead of in the "
                                           "Prefect UI: approve lets training pin URI@reviewed, reject does not."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Your name (required with --approve/--reject)."),
    flag: list[str] = typer.Option([], "--flag", help="SAMPLE_ID=REASON: leave this sample out of training "
                                   "(repeatable)."),
    comment: str = typer.Option("", "--comment", help="A note recorded with the decision."),
    sample_size: int = typer.Option(12, "--sample", help="Random rows shown to the reviewer.", min=1, max=200),
    seed: int = typer.Option(0, "--seed", help="Seed of the random rows."),
    timeout_hours: float = typer.Option(24.0, "--timeout-hours", help="How long to wait for a decision in the UI."),
) -> None:
    """Approve or reject a dataset version after looking at its card and a random sample.

    Without --approve/--reject the run pauses until a reviewer resumes it in the Prefect UI
    (needs PREFECT_API_URL pointing at a server, e.g. `make ui`)."""
    from flows.review import review_flow

    decision = None
    if approve is not None:
        if not reviewer:
            fail("--reviewer NAME is required with --approve/--reject")
        flags = []
        for item in flag:
            sample_id, sep, reason = item.partition("=")
            if not sep or not sample_id.strip() or not reason.strip():
                fail(f"--flag {item!r}: write SAMPLE_ID=REASON")
            flags.append({"sample_id": sample_id.strip(), "reason": reason.strip()})
        decision = {"decision": "approve" if approve else "reject", "reviewer": reviewer, "flags": flags,
                    "comment": comment}
    elif reviewer or flag or comment:
        fail("--reviewer/--flag/--comment go with --approve or --reject (or decide in the Prefect UI)")
    elif not _prefect_server():
        fail("without --approve/--reject the review waits for a decision in the Prefect UI, which needs a Prefect "
             "server: start one (`make ui`) and set PREFECT_API_URL, or decide here with --approve/--reject "
             "--reviewer NAME")
    _run_flow(review_flow, dataset=ref, sample_size=sample_size, seed=seed, timeout_hours=timeout_hours,
              decision=decision)


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
