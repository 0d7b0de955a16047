"""The ``sbihep`` command-line program."""

from __future__ import annotations

from typing import Optional

import typer

from sbihep import __version__

__all__ = ["app"]

app = typer.Typer(
    name="sbihep",
    help="Simulation-based inference and EFT fitting for particle physics.",
    no_args_is_help=True,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sbihep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """sbihep: differentiable matrix elements, learned likelihoods and EFT fits."""


@app.command("processes")
def list_processes() -> None:
    """List the processes sbihep ships, with their SMEFT operators."""
    from sbihep.physics.processes import PROCESSES

    for name, cls in PROCESSES.items():
        typer.echo(f"{name:12s} {cls.collider:2s}  operators: {', '.join(cls.operators):28s} {cls.description}")
