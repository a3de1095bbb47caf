"""How every command reports bad input: one red line on stderr and exit code 2."""

from __future__ import annotations

import typer


def fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
