"""``sbihep train CONFIG.toml -o DIR``: the command-line face of :mod:`sbihep.estimators.run`.

Kept outside the estimators package so that mounting the command costs no torch import: ``sbihep --help``
stays fast; the estimators load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["register"]


def register(app) -> None:
    """Add the ``train`` command to a typer app."""
    import typer

    @app.command("train")
    def train_command(
        config: str = typer.Argument(..., help="Training configuration (TOML); see sbihep.estimators.run for the fields."),
        output: str = typer.Option(..., "-o", "--output", help="Output directory (estimator, metrics.json, optional ONNX)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Train a likelihood-ratio or score estimator (or an ensemble) and print its validation metrics."""
        from sbihep.errors import SbihepError
        from sbihep.estimators.run import load_train_config, run_training, summary_table

        path = Path(config)
        if not path.is_file():
            typer.echo(f"error: training configuration {config!r} does not exist", err=True)
            raise typer.Exit(2)
        try:
            metrics = run_training(load_train_config(path), output, quiet=quiet)  # checks -o before any work
        except SbihepError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(summary_table(metrics))
        typer.echo(f"wrote {output}")

