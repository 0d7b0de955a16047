"""``sbihep surrogate``: train and check ONNX likelihood surrogates (a typer sub-app).

Mount with ``app.add_typer(surrogates.cli.app, name="surrogate")`` in :mod:`sbihep.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

__all__ = ["app"]

app = typer.Typer(name="surrogate", help="Likelihood surrogates of pyhf workspaces (ONNX).",
                  no_args_is_help=True, add_completion=False)


def _parse_bounds(text: Optional[str]) -> Optional[list[list[float]]]:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--bounds must look like LOW,HIGH, got {text!r}") from None
    return [[lo, hi]]


@app.command("train")
def train(
    workspace: Path = typer.Argument(..., exists=True, dir_okay=False, help="pyhf workspace JSON (background-only with --patch)."),
    output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    patch: Optional[str] = typer.Option(None, "--patch", help="Patch name in the PatchSet (signal-strength surrogate)."),
    patchset: Optional[Path] = typer.Option(None, "--patchset", help="PatchSet JSON (default: patchset.json beside WORKSPACE)."),
    region: Optional[List[str]] = typer.Option(None, "--region", help="Signal region (channel) for a yields surrogate; repeatable."),
    bounds: Optional[str] = typer.Option(None, "--bounds", help="Training range of mu as LOW,HIGH (default: the POI bounds)."),
    n_points: int = typer.Option(60, "--n-points", min=5, help="Input points to label (two fits each per data set)."),
    n_starts: int = typer.Option(2, "--n-starts", min=1, max=2, help="Starts per label (the lowest converged fit is kept)."),
    n_workers: Optional[int] = typer.Option(None, "--n-workers", min=1, help="Worker processes for labels."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Label a workspace with MINUIT fits, train an ensemble and export it to ONNX."""
    from sbihep.errors import SbihepError
    from sbihep.surrogates.likelihood import train_surrogate

    from sbihep._outputs import check_output, is_onnx_surrogate

    try:
        check_output(output, kind="file", suffixes=(".onnx",), is_ours=is_onnx_surrogate, what="ONNX surrogate")
        path, metrics = train_surrogate(
            workspace, output=output, patch=patch, patchset=patchset, regions=region or None,
            bounds=_parse_bounds(bounds), n_points=n_points, n_starts=n_starts, seed=seed,
            n_workers=n_workers, quiet=quiet,
        )
    except SbihepError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {path}")
    typer.echo(json.dumps(metrics.get("held_out", {}), indent=1))


@app.command("check")
def check(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, help="ONNX surrogate file."),
    limit: bool = typer.Option(False, "--limit", help="Also print mu-hat and the 95% CLs upper limit."),
) -> None:
    """Print the metadata and re-validate the stored test vectors."""
    from sbihep.errors import SbihepError
    from sbihep.surrogates.loader import SurrogateLikelihood

    try:
        s = SurrogateLikelihood(model)
    except SbihepError as exc:
        typer.echo(f"REFUSED: {exc}", err=True)
        raise typer.Exit(1)
    for key, value in s.metadata.items():
        if key == "test_vectors":
            typer.echo(f"{key}: {len(value['inputs'])} vectors")
        else:
            typer.echo(f"{key}: {json.dumps(value)}")
    typer.echo("test vectors: OK")
    if limit and s.mode == "mu":
        typer.echo(f"mu_hat = {s.mu_hat():.6g}")
        typer.echo(f"CLs 95% upper limit on mu = {s.upper_limit():.6g}")
