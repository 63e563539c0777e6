"""Commands that read runs: ``runs``, ``show``, ``history``, ``waiters``, ``import``, ``replay``."""

from __future__ import annotations

from pathlib import Path

import typer

from stemlog import Fact, InvalidPayloadError, ReplayReport, RunView, UnknownRunError
from stemlog.cli.common import console, fail, load_definitions, open_app, print_json, run
from stemlog.cli.format import format_replay, format_run, format_runs, format_timeline, run_json

AppOption = typer.Option(None, "--app", help="module:attribute holding the workflows")
JsonOption = typer.Option(False, "--json", help="print JSON instead of tables")


def runs(
    status: str | None = typer.Option(None, help="running, suspended, completed, ..."),
    workflow: str | None = typer.Option(None, help="only runs of this workflow"),
    limit: int = typer.Option(100, help="how many runs"),
    after: str | None = typer.Option(None, help="the last run id of the previous page"),
    app_target: str | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs in start order (blocked runs show when --app is given)."""

    async def main() -> None:
        definitions = load_definitions(app_target) if app_target else []
        async with open_app(worker=bool(definitions), definitions=definitions) as app:
            views = await app.list_runs(workflow, status, limit, after)
        if as_json:
            print_json([run_json(view) for view in views])
        else:
            console.print(format_runs(views))

    run(main)


def show(run_id: str, as_json: bool = JsonOption) -> None:
    """A run's status, current step, wait, lease, error and timeline of facts."""

    async def main() -> tuple[RunView, list[Fact] | InvalidPayloadError]:
        async with open_app() as app:
            view = await app.get_run(run_id)
            if view is None:
                raise UnknownRunError(run_id)
            try:
                return view, await app.history(run_id)
            except InvalidPayloadError as error:  # a blocked run: its facts cannot be read
                return view, error

    view, history = run(main)
    if isinstance(history, InvalidPayloadError):
        if as_json:
            print_json({"run": run_json(view), "facts": None, "error": str(history)})
        else:
            console.print(format_run(view))
        fail(str(history), 1)
    if as_json:
        print_json({"run": run_json(view), "facts": [_fact_json(f) for f in history]})
        return
    console.print(format_run(view))
    console.print(format_timeline(history))


def _fact_json(fact: object) -> dict[str, object]:
    return {name: getattr(fact, name) for name in ("type", "position", "timestamp", "data")}


def history(run_id: str, as_json: bool = JsonOption) -> None:
    """Every fact of a run; with --json one JSON line per fact (input for ``import``)."""

    async def main() -> None:
        async with open_app() as app:
            facts = await app.history(run_id)
            lines = await app.export_json_lines(run_id) if as_json else []
        if as_json:
            for line in lines:
                typer.echo(line.decode())
        else:
            console.print(format_timeline(facts))

    run(main)


def waiters(topic: str, as_json: bool = JsonOption) -> None:
    """The runs suspended on a topic."""

    async def main() -> None:
        async with open_app() as app:
            run_ids = await app.runs_waiting_on(topic)
        if as_json:
            print_json(run_ids)
        else:
            for run_id in run_ids:
                typer.echo(run_id)

    run(main)


def import_(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Import histories exported with ``history RUN --json`` (runs keep their ids).

    Every line is checked first (its size, its form, its run's order); a bad
    one is reported by number and nothing is written.
    """

    async def main() -> dict[str, int]:
        with path.open("rb") as source:
            async with open_app(create=True) as app:
                return await app.import_json_lines(source)

    for run_id, count in run(main).items():
        typer.echo(f"imported {run_id} ({count} facts)")


def replay(
    run_id: str,
    app_target: str | None = AppOption,
    until: int | None = typer.Option(None, help="replay facts 1..N only (time travel)"),
    as_json: bool = JsonOption,
) -> None:
    """Replay a run against the current code; exit 1 when it diverges."""

    async def main() -> tuple[ReplayReport, list[Fact]]:
        definitions = load_definitions(app_target)
        async with open_app(definitions=definitions) as app:
            report = await app.replay(run_id, until=until)
            facts = await app.history(run_id)
        return report, facts

    report, facts = run(main)
    divergence = report.divergence
    if as_json:
        print_json({
            "run_id": report.run_id, "status": report.final.status,
            "requested": [list(key) for key in report.requested],
            "divergence": None if divergence is None else {
                "position": divergence.position, "recorded": divergence.recorded,
                "requested": divergence.requested, "message": str(divergence)},
        })  # fmt: skip
    else:
        console.print(format_replay(report))
        console.print(format_timeline(facts[: len(report.states)]))
        if divergence is not None:
            console.print(f"[red]diverges:[/red] {divergence}")
        else:
            console.print(f"replayed {len(report.states)} facts: no divergence")
    if divergence is not None:
        raise typer.Exit(1)
