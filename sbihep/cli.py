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


def _mount_subcommands() -> None:
    from sbihep.surrogates.cli import app as surrogate_app

    app.add_typer(surrogate_app, name="surrogate", help="Likelihood surrogates: train from a pyhf workspace, check ONNX files.")
    from sbihep.events.lhe_cli import register as register_lhe

    register_lhe(app)
    from sbihep.train_cli import register as register_train

    register_train(app)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sbihep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        envvar="SBIHEP_THREADS",
        help="Torch threads per process (0: torch's default). One thread is the safe default: on small "
        "shared machines torch's default threading can be ~10x slower; use workers for parallelism.",
    ),
) -> None:
    """sbihep: differentiable matrix elements, learned likelihoods and EFT fits."""
    if threads < 0:
        raise typer.BadParameter("--threads must be ≥ 0")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


@app.command("processes")
def list_processes() -> None:
    """List the processes sbihep ships, with their SMEFT operators."""
    from sbihep.physics.processes import PROCESSES

    for name, cls in PROCESSES.items():
        typer.echo(f"{name:12s} {cls.collider:2s}  operators: {', '.join(cls.operators):28s} {cls.description}")


def _parse_assignments(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{what} must look like NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"value of {name} must be a number, got {text!r}") from None


@app.command("xsec")
def xsec(
    process: str = typer.Argument(..., help="Process name (see `sbihep processes`), or with --model a process in MadGraph syntax, e.g. \"u d~ > w+ z\"."),
    sqrts: float = typer.Option(13000.0, "--sqrts", help="Collider energy √s in GeV."),
    set_: list[str] = typer.Option([], "--set", help="Wilson coefficient NAME=VALUE (c/Λ², Λ = 1 TeV); repeatable."),
    order: str = typer.Option("quadratic", "--order", help="EFT order: linear or quadratic."),
    n_eval: int = typer.Option(20000, "--n-eval", min=100, help="Integrand evaluations per VEGAS iteration (≥ 100)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed (same seed, same result)."),
    option: list[str] = typer.Option([], "--option", help="Process option NAME=VALUE, e.g. charge=1; repeatable."),
    model: Optional[str] = typer.Option(None, "--model", help="UFO model directory: generate PROCESS from it (any tree-level process)."),
    restriction: Optional[str] = typer.Option(None, "--restriction", help="With --model: restriction card (path or file name in the model directory)."),
    operator: list[str] = typer.Option([], "--operator", help="With --model: a Wilson coefficient to keep as θ (default: those named in --set); repeatable."),
    orders: list[str] = typer.Option([], "--orders", help="With --model: coupling-order constraint NAME=VALUE, e.g. QCD=0 or NP==1; repeatable."),
) -> None:
    """Compute σ(θ) as a polynomial in the Wilson coefficients and evaluate it at --set values."""
    from sbihep.errors import SbihepError
    from sbihep.physics.processes import get_process
    from sbihep.physics.xsec import cross_section

    try:
        theta = {k: _number(v, k) for k, v in _parse_assignments(set_, "--set").items()}
        options = {k: _option_value(v) for k, v in _parse_assignments(option, "--option").items()}
        if model is None:
            if restriction or operator or orders:
                raise typer.BadParameter("--restriction, --operator and --orders need --model")
            proc = get_process(process, **options)
        else:
            from sbihep.physics.ufo.generated import generate_process

            if options:
                raise typer.BadParameter("--option is for the built-in processes; with --model use --orders / --operator")
            constraints = {}
            for item in orders:
                relation = "==" if "==" in item else "<="
                name, _, value = item.partition("==" if relation == "==" else "=")
                if "=" not in item or not name.strip() or not value.strip():
                    raise typer.BadParameter(f"--orders expects NAME=VALUE (at most) or NAME==VALUE (exactly), got {item!r}")
                constraints[name.strip()] = relation + value.strip()
            keep = list(dict.fromkeys([*operator, *theta]))
            proc = generate_process(process, model, keep, restriction=restriction, orders=constraints or None)
        proc.theta_vector(theta)  # reject unknown operators before integrating
        result = cross_section(proc, sqrts, order=order, n_evaluations=n_eval, seed=seed)
    except (SbihepError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(result.describe())
    value, error = result(theta)
    shown = ", ".join(f"{k}={v:g}" for k, v in theta.items()) or "SM"
    typer.echo(f"sigma({shown}) = {value:.6g} ± {error:.2g} pb")


def _option_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@app.command("demo")
def demo(
    output_dir: str = typer.Option("sbihep-demo", "--output-dir", help="Folder for the demo's outputs."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes (about a minute on one core) instead of the full demo."),
    n_events: Optional[int] = typer.Option(None, "--n-events", min=1, help="WH events to generate (default 500000; --quick 30000)."),
    n_eval: Optional[int] = typer.Option(None, "--n-eval", min=100, help="Integrand evaluations per VEGAS iteration for σ(θ)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed."),
) -> None:
    """The main demo: a WH → ℓνbb̄ SMEFT analysis end to end — σ(θ), events through a detector, a learned
    reco-level likelihood of cHW and cHWtil, and its expected 95% CL region against the exact parton-level
    limit and a histogram (see sbihep.demo)."""
    from dataclasses import replace

    from sbihep.demo import DemoSettings, run_demo
    from sbihep.errors import SbihepError

    typer.echo("Processes:")
    list_processes()
    typer.echo("")
    settings = DemoSettings.quick() if quick else DemoSettings()
    if n_eval is not None:
        settings = replace(settings, n_eval=int(n_eval))
    try:
        run_demo(output_dir, n_events=n_events, seed=seed, settings=settings, echo=typer.echo)
    except SbihepError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@app.command("sm-inputs")
def sm_inputs() -> None:
    """Print the Standard Model inputs ({G_F, m_W, m_Z} scheme) and the derived couplings."""
    from sbihep.physics.couplings import DEFAULT_SM, LAMBDA_GEV

    typer.echo(DEFAULT_SM.describe())
    typer.echo(f"{'Lambda':12s} = {LAMBDA_GEV:g} GeV (Wilson coefficients are c/Lambda^2)")
    for up in "uc":
        typer.echo("  ".join(f"V_{up}{down} = {DEFAULT_SM.ckm(up, down):+.5f}" for down in "ds"))


@app.command("simulate")
def simulate(
    card: str = typer.Argument(..., help="Simulation card (TOML); see sbihep.config for the fields."),
    output: str = typer.Option(..., "-o", "--output", help="Output EventSet file (.nc or .zarr)."),
) -> None:
    """Generate events with exact EFT weights (and a detector, if the card has one) into an EventSet file."""
    import json
    import time

    from sbihep.config import SimulationCard
    from sbihep.errors import SbihepError

    from sbihep._outputs import check_output, is_netcdf_file, is_zarr_store

    start = time.perf_counter()
    try:
        run_card = SimulationCard.from_toml(card)
        zarr = output.rstrip("/").lower().endswith(".zarr")
        check_output(output.rstrip("/") if zarr else output, kind="directory" if zarr else "file", suffixes=(".nc", ".zarr"),
                     is_ours=is_zarr_store if zarr else is_netcdf_file, what="EventSet " + ("store" if zarr else "file"))
        run_card.check()  # process, options, θ, systematics, detector: before any event is generated
        events = run_card.run()
        path = events.save(output)
    except (SbihepError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"{events} written to {path} ({time.perf_counter() - start:.1f} s)")
    for report in json.loads(events.data.attrs["generation"]):
        typer.echo(
            f"  {report['subprocess']:8s} sigma = {report['sigma_pb']:.5g} ± {report['sigma_error_pb']:.2g} pb, "
            f"unweighting efficiency {report['efficiency']:.3%}, {report['n_weighted']} weighted points"
        )
    if "passed" in events.data:
        typer.echo(f"  passed the detector selection: {float(events.data['passed'].mean()):.1%}")
    if "x" in events.data:
        typer.echo(f"  observables: {', '.join(map(str, events.data['observable'].values))}")


@app.command("fit")
def fit(
    config: str = typer.Argument(..., help="Fit configuration (TOML); see sbihep.fit.run for the fields."),
    output: str = typer.Option(..., "-o", "--output", help="Result file (netCDF, written atomically)."),
) -> None:
    """Fit a likelihood described by a TOML config; writes the result as netCDF and prints a summary."""
    from pathlib import Path

    from sbihep._atomic import atomic_destination
    from sbihep.errors import SbihepError
    from sbihep.fit.run import load_config, run_config, summary_table

    from sbihep._outputs import check_output, is_netcdf_file

    path = Path(config)
    if not path.is_file():
        typer.echo(f"error: fit configuration {config!r} does not exist", err=True)
        raise typer.Exit(2)
    try:
        check_output(output, kind="file", suffixes=(".nc",), is_ours=is_netcdf_file, what="fit result (netCDF)")
        result, rows = run_config(load_config(path), path.parent)
    except SbihepError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result.attrs = {k: (str(v) if isinstance(v, (list, dict)) else v) for k, v in result.attrs.items()}
    with atomic_destination(output) as tmp:
        result.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False)
    typer.echo(summary_table(rows))
    typer.echo(f"wrote {output}")


_mount_subcommands()
