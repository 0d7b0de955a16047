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


def _parse_range(text: str, what: str) -> list[float]:
    sep = ":" if ":" in text else ","
    parts = text.split(sep)
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = (float(v) for v in parts)
    except ValueError:
        raise typer.BadParameter(f"{what} must be LOW:HIGH (or LOW,HIGH), got {text!r}", param_hint="--bounds") from None
    if not (lo < hi) or not all(map(lambda v: v == v and abs(v) != float("inf"), (lo, hi))):
        raise typer.BadParameter(f"{what} needs finite LOW < HIGH, got {text!r}", param_hint="--bounds")
    return [lo, hi]


def _parse_bounds(texts: Optional[List[str]]) -> list[list[float]] | dict[str, list[float]] | None:
    """``--bounds`` values → (k, 2) ranges in input order, or {input name: range}.

    Each value is ``LOW:HIGH`` (or ``LOW,HIGH``; the k-th applies to the k-th input, and a single one
    to every input) or ``NAME=LOW:HIGH`` (that input; the others keep their default).  The two forms
    cannot be mixed; a name given twice is an error.
    """
    if not texts:
        return None
    named: dict[str, list[float]] = {}
    ranges: list[list[float]] = []
    for text in texts:
        name, eq, rng = text.rpartition("=")
        if eq:
            name = name.strip()
            if not name:
                raise typer.BadParameter(f"NAME=LOW:HIGH needs a name before '=', got {text!r}", param_hint="--bounds")
            if name in named:
                raise typer.BadParameter(f"input {name!r} is given twice", param_hint="--bounds")
            named[name] = _parse_range(rng.strip(), f"the range of {name!r}")
        else:
            ranges.append(_parse_range(text.strip(), "a range"))
    if named and ranges:
        raise typer.BadParameter("give every --bounds as LOW:HIGH (in input order) or every one as NAME=LOW:HIGH, not both",
                                 param_hint="--bounds")
    return named or ranges


#: exit status of ``train`` when the surrogate was written but misses its validation targets
EXIT_VALIDATION_FAILED = 3


@app.command("train")
def train(
    workspace: Path = typer.Argument(..., exists=True, dir_okay=False, help="pyhf workspace JSON (background-only with --patch)."),
    output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    patch: Optional[str] = typer.Option(None, "--patch", help="Patch name in the PatchSet (signal-strength surrogate)."),
    patchset: Optional[Path] = typer.Option(None, "--patchset", help="PatchSet JSON (default: patchset.json beside WORKSPACE)."),
    region: Optional[List[str]] = typer.Option(None, "--region", help="Signal region (channel) for a yields surrogate; repeatable."),
    bounds: Optional[List[str]] = typer.Option(
        None, "--bounds",
        help="Training range, repeatable: LOW:HIGH once per input in input order (a single one applies to every "
             "input), or NAME=LOW:HIGH for the inputs named (e.g. --bounds SR_A=0:20 --bounds SR_B=0:40). Default: the "
             "POI bounds (--patch), or per bin 0 to ~5 sigma of that bin's background and uncertainty (--region)."),
    n_points: int = typer.Option(60, "--n-points", min=5, help="Training input points to label (box edges, mu=0 and the best fit included)."),
    n_check: Optional[int] = typer.Option(None, "--n-check", min=0, help="Check-grid points over the box for validation (default max(10, n-points/3))."),
    n_starts: int = typer.Option(2, "--n-starts", min=1, max=2, help="Starts per label (the lowest converged fit is kept)."),
    prefit: bool = typer.Option(True, "--prefit/--no-prefit", help="Also learn the pre-fit Asimov data (spey's a priori expected limits)."),
    n_workers: Optional[int] = typer.Option(None, "--n-workers", min=1, help="Worker processes for labels."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Label a workspace with MINUIT fits, train an ensemble, validate it and export it to ONNX.

    Prints the expected label time before labelling.  Exit status 0: written and validated; 2: bad
    input; 3: written, but the validation missed its targets (|dt| < 0.1 where t < 10 on held-out
    labels and on a check grid over the box, t >= -0.01 on a dense grid); the reasons are printed.
    """
    import warnings

    from sbihep.errors import SbihepError, SurrogateValidationWarning
    from sbihep.surrogates.likelihood import train_surrogate

    from sbihep._outputs import check_output, is_onnx_surrogate

    parsed = _parse_bounds(bounds)
    try:
        check_output(output, kind="file", suffixes=(".onnx",), is_ours=is_onnx_surrogate, what="ONNX surrogate")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SurrogateValidationWarning)  # reported below, with the exit status
            path, metrics = train_surrogate(
                workspace, output=output, patch=patch, patchset=patchset, regions=region or None,
                bounds=parsed, n_points=n_points, n_check=n_check, n_starts=n_starts, prefit=prefit, seed=seed,
                n_workers=n_workers, quiet=quiet,
            )
    except SbihepError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {path}")
    summary = {k: metrics[k] for k in ("held_out", "check_grid", "min_t_on_check_grid", "t_at_best_fit") if k in metrics}
    typer.echo(json.dumps(summary, indent=1))
    if not metrics["passed"]:
        typer.echo(f"error: {path} misses its validation targets (stored in it as validation.passed = false):", err=True)
        for failure in metrics["failures"]:
            typer.echo(f"  - {failure}", err=True)
        typer.echo("  more labels (--n-points) or a narrower box (--bounds) usually help", err=True)
        raise typer.Exit(EXIT_VALIDATION_FAILED)


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
