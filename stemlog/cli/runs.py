"""Commands that read runs: ``runs``, ``show``, ``history``, ``waiters``, ``import``, ``replay``."""

from __future__ import annotations

from pathlib import Path

import typer

from stemlog import Fact, InvalidPayloadError, ReplayReport, RunView, UnknownRunError
from stemlog.cli.common import AppOption, JsonOption, load_definitions, open_app, resolve_run, run
from stemlog.cli.format import format_replay, format_run, format_runs, format_timeline, run_json
from stemlog.cli.output import console, fail, note, print_json, print_table, say


def runs(
    status: str | None = typer.Option(None, help="running, suspended, completed, ..."),
    workflow: str | None = typer.Option(None, help="only runs of this workflow"),
    limit: int = typer.Option(100, help="how many runs"),
    after: str | None = typer.Option(None, help="the last run id of the previous page"),
    app_target: str | None = AppOption,
    wide: bool = typer.Option(False, "--wide", help="every column in full, whatever the width"),
    as_json: bool = JsonOption,
) -> None:
    """List runs in start order (blocked runs show when --app is given).

    Run ids are never cut: on a narrow terminal the other columns are shortened
    ("…") or left out (updated, v, step first); --wide shows them all in full.
    """

    async def main() -> None:
        definitions = load_definitions(app_target) if app_target else []
        async with open_app(worker=bool(definitions), definitions=definitions) as app:
            views = await app.list_runs(workflow, status, limit, after)
        if as_json:
            print_json([run_json(view) for view in views])
        else:
            print_table(format_runs(views, None if wide else console.width), wide=wide)

    run(main)


def show(run_id: str, as_json: bool = JsonOption) -> None:
    """A run's status, current step, wait, lease, error and timeline of facts."""

    async def main() -> tuple[RunView, list[Fact] | InvalidPayloadError]:
        async with open_app() as app:
            view = await app.get_run(await resolve_run(app, run_id))
            if view is None:
                raise UnknownRunError(run_id)
            try:
                return view, await app.history(view.run_id)
            except InvalidPayloadError as error:  # a blocked run: its facts cannot be read
                return view, error

    view, history = run(main)
    if isinstance(history, InvalidPayloadError):
        if as_json:
            print_json({"run": run_json(view), "facts": None, "error": str(history)})
        else:
            console.print(format_run(view))
        fail(str(history), 1, type(history).__name__)
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
            try:
                run_id_ = await resolve_run(app, run_id)
                facts = await app.history(run_id_)
                lines = await app.export_json_lines(run_id_) if as_json else []
            except InvalidPayloadError as error:  # a stored fact that cannot be read
                fail(str(error), 1, type(error).__name__)
        if as_json:
            for line in lines:
                say(line.decode())
        else:
            console.print(format_timeline(facts))

    run(main)


def waiters(topic: str, as_json: bool = JsonOption) -> None:
    """The runs suspended on TOPIC now (--json: a list of ids; none: a note on stderr)."""

    async def main() -> None:
        async with open_app() as app:
            run_ids = await app.runs_waiting_on(topic)
        if as_json:
            print_json(run_ids)
        else:
            for run_id in run_ids:
                say(run_id)
        if not run_ids:
            note(f"no run is waiting on {topic}", topic=topic)

    run(main)


def import_(
    path: Path = typer.Argument(..., exists=True, dir_okay=False), as_json: bool = JsonOption
) -> None:
    """Import histories exported with ``history RUN --json`` (runs keep their ids).

    Every line is checked first (its size, its form, its run's order); a bad
    one is reported by number and nothing is written. --json: [{"run_id", "facts"}].
    """

    async def main() -> dict[str, int]:
        with path.open("rb") as source:
            async with open_app(create=True) as app:
                return await app.import_json_lines(source)

    imported = run(main)
    if as_json:
        print_json([{"run_id": run_id, "facts": count} for run_id, count in imported.items()])
        return
    for run_id, count in imported.items():
        say(f"imported {run_id} ({count} facts)")


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
            run_id_ = await resolve_run(app, run_id)
            report = await app.replay(run_id_, until=until)
            facts = await app.history(run_id_)
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
