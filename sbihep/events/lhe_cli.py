"""``sbihep import-lhe``: read a Les Houches event file (with reweighting weights) into an EventSet file.

The lead's ``sbihep/cli.py`` mounts it with ``register(app)``.  Example::

    sbihep import-lhe unweighted_events.lhe.gz --params cHW=smeft:7 --params cHWtil=smeft:8 -o events.nc

``--params NAME`` keeps an operator that the reweighting lines set by name (``set param_card NAME
VALUE``); ``--params NAME=BLOCK:ID`` maps a param-card entry (``set param_card BLOCK ID VALUE``) to
that operator.  Without ``--params`` every parameter the weights set becomes an operator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register", "parse_params"]


def parse_params(items: list[str]) -> tuple[list[str] | None, dict[str, str]]:
    """``["cHW=smeft:7", "cHq3"]`` → (operators ["cHW", "cHq3"], param_map {"smeft 7": "cHW"}).

    Raises:
        typer.BadParameter: an item that is neither ``NAME`` nor ``NAME=BLOCK:ID``.
    """
    if not items:
        return None, {}
    operators: list[str] = []
    param_map: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        name = name.strip()
        if not name or (sep and not target.strip()):
            raise typer.BadParameter(f"--params must look like NAME or NAME=BLOCK:ID, got {item!r}")
        if sep:
            parts = target.replace(":", " ").split()
            if len(parts) < 2 or not all(p.lstrip("-").isdigit() for p in parts[1:]):
                raise typer.BadParameter(f"--params {item!r}: the param-card entry must look like BLOCK:ID, e.g. smeft:7")
            param_map[" ".join([parts[0].lower(), *parts[1:]])] = name
        if name in operators:
            raise typer.BadParameter(f"--params names {name!r} twice")
        operators.append(name)
    return operators, param_map


def register(app: typer.Typer) -> None:
    """Add the ``import-lhe`` command to ``app``."""

    @app.command("import-lhe")
    def import_lhe(
        file: str = typer.Argument(..., help="LHE file (.lhe or .lhe.gz)."),
        output: str = typer.Option(..., "-o", "--output", help="Output EventSet file (.nc or .zarr)."),
        params: list[str] = typer.Option(
            [], "--params", help="Operator NAME, or NAME=BLOCK:ID for 'set param_card BLOCK ID VALUE' lines; repeatable."
        ),
        order: str = typer.Option("quadratic", "--order", help="EFT order solved for: linear or quadratic."),
        benchmarks: Optional[str] = typer.Option(
            None, "--benchmarks", help="JSON file {weight id: {operator: value}} when the header does not declare the points."
        ),
        event_norm: str = typer.Option("auto", "--event-norm", help="auto, sum (Σ weights = σ) or average (mean weight = σ)."),
        no_weights: bool = typer.Option(False, "--no-weights", help="Ignore reweighting weights (nominal weights only)."),
        max_events: Optional[int] = typer.Option(None, "--max-events", help="Read at most this many events."),
    ) -> None:
        """Import a Les Houches event file with EFT reweighting weights into an EventSet (exact per-event coefficients)."""
        from sbihep.errors import InvalidInputError, SbihepError
        from sbihep.events.eventset import EventSet
        from sbihep.events.lhe import read_lhe

        operators, param_map = parse_params(params)
        try:
            EventSet.check_save_path(output, what="-o")  # before any reading: a bad -o fails at once
            if not Path(file).is_file():
                raise InvalidInputError(f"FILE: no such LHE file: {file}")
            points = None
            if benchmarks is not None:
                try:
                    points = json.loads(Path(benchmarks).read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise typer.BadParameter(f"--benchmarks {benchmarks!r}: {exc}") from None
                if not isinstance(points, dict) or not all(isinstance(v, dict) for v in points.values()):
                    raise typer.BadParameter("--benchmarks must hold a JSON object {weight id: {operator: value}}")
            events = read_lhe(
                file,
                operators=operators,
                order=order,
                benchmarks=points,
                param_map=param_map,
                weights="none" if no_weights else ("required" if operators or points else "auto"),
                event_norm=event_norm,
                max_events=max_events,
            )
            path = events.save(output)
        except SbihepError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        attrs = events.data.attrs
        typer.echo(f"{events} written to {path}")
        n_bench = len(json.loads(attrs.get("lhe_benchmarks", "{}")))
        if n_bench:
            typer.echo(
                f"  {n_bench} benchmark weights -> {events.order} coefficients, morphing condition number "
                f"{float(attrs['morphing_condition_number']):.3g}"
            )
        typer.echo(f"  sigma(nominal point) = {events.sigma(json.loads(attrs.get('theta_gen', '{}'))):.6g} pb "
                   f"(event weights {attrs.get('lhe_event_norm')} to sigma in the file)")
