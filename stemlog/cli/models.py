"""``stemlog projections list|rebuild|verify``: the read models, for operators and auditors."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stemlog import Difference
from stemlog.cli.common import console, fail, open_app, print_json, run
from stemlog.cli.format import format_models

projections_app = typer.Typer(
    help="List, rebuild and verify the read models.", no_args_is_help=True
)


@projections_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each model's name, version, position and lag behind the log."""

    async def main() -> None:
        async with open_app() as app:
            models = await app.read_models.status()
        if as_json:
            print_json([asdict(model) for model in models])
        else:
            console.print(format_models(models))

    run(main)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _as_of(value: str) -> tuple[int | None, datetime | None]:
    if value.isdigit():
        return int(value), None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of takes a log position or an ISO time, got {value!r}")
    if moment.tzinfo is None:
        fail("--as-of needs a time zone (e.g. 2030-01-01T12:00:00+00:00)")
    return None, moment


@projections_app.command()
def rebuild(
    name: str | None = typer.Argument(None, help="a model name (all models share one rebuild)"),
    as_of: str | None = typer.Option(None, "--as-of", help="a log position or an ISO time"),
    into: Path | None = typer.Option(None, "--into", help="new SQLite file for an as-of copy"),
) -> None:
    """Drop and replay the models from position 0, or write an as-of copy to --into."""
    if (as_of is None) != (into is None):
        fail("--as-of and --into go together")

    async def main() -> None:
        async with open_app() as app:
            models = app.read_models
            if name is not None and name not in {m.name for m in await models.status()}:
                fail(f"unknown model {name!r}")
            with _bar() as bar:
                task = bar.add_task("rebuilding", total=None, rate="")
                started = datetime.now()

                def progress(done: int, total: int) -> None:
                    seconds = (datetime.now() - started).total_seconds() or 1e-9
                    rate = f"{done / seconds:,.0f} facts/s"
                    bar.update(task, completed=done, total=total, rate=rate)

                if as_of is not None and into is not None:
                    position, moment = _as_of(as_of)
                    result = await models.rebuild_as_of(
                        into, position=position, moment=moment, progress=progress
                    )
                else:
                    result = await models.rebuild(progress)
        where = f" into {into}" if into else ""
        rate = f"{result.events_per_second:,.0f} facts/s"
        console.print(
            f"rebuilt{where} to position {result.position}: "
            f"{result.events} facts in {result.seconds:.2f}s ({rate})"
        )

    run(main)


@projections_app.command()
def verify(as_json: bool = typer.Option(False, "--json")) -> None:
    """Rebuild into a scratch store and compare row by row; exit 1 when rows differ."""

    async def main() -> list[Difference]:
        async with open_app() as app:
            return await app.read_models.verify()

    differences = run(main)
    if as_json:
        print_json([asdict(difference) for difference in differences])
    elif not differences:
        console.print("the read models match a fresh rebuild")
    else:
        for difference in differences:
            console.print(f"{difference.model}: live {difference.live}", markup=False)
            console.print(f"{difference.model}: rebuilt {difference.rebuilt}", markup=False)
    if differences:
        raise typer.Exit(1)
