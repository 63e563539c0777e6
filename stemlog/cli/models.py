"""``stemlog projections list|rebuild|verify``: the read models, for operators and auditors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stemlog import Difference, RebuildResult
from stemlog.cli.common import JsonOption, open_app, run
from stemlog.cli.format import format_models
from stemlog.cli.output import Output, console, fail, print_json, say

projections_app = typer.Typer(
    help="List, rebuild and verify the read models.", no_args_is_help=True
)
progress_console = Console(stderr=True)
"""The rebuild's progress bar: standard error, so standard output keeps the result."""


@projections_app.command("list")
def list_models(as_json: bool = JsonOption) -> None:
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
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=progress_console,
        disable=Output.as_json,
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


def _progress(bar: Progress) -> Callable[[int, int], None]:
    """A rebuild's progress callback that moves ``bar`` and shows the rate."""
    task = bar.add_task("rebuilding", total=None, rate="")
    started = datetime.now()

    def progress(done: int, total: int) -> None:
        seconds = (datetime.now() - started).total_seconds() or 1e-9
        bar.update(task, completed=done, total=total, rate=f"{done / seconds:,.0f} facts/s")

    return progress


@projections_app.command()
def rebuild(
    name: str | None = typer.Argument(None, help="a model name (all models share one rebuild)"),
    as_of: str | None = typer.Option(None, "--as-of", help="a log position or an ISO time"),
    into: Path | None = typer.Option(None, "--into", help="new SQLite file for an as-of copy"),
    as_json: bool = JsonOption,
) -> None:
    """Drop and replay the models from position 0, or write an as-of copy to --into.

    The progress bar goes to stderr (none with --json). --json: {"position",
    "events", "seconds", "events_per_second", "into", "as_of"}.
    """
    if (as_of is None) != (into is None):
        fail("--as-of and --into go together")
    position, moment = (None, None) if as_of is None else _as_of(as_of)

    async def main() -> RebuildResult:
        async with open_app() as app:
            models = app.read_models
            if name is not None and name not in {m.name for m in await models.status()}:
                fail(f"unknown model {name!r}")
            with _bar() as bar:
                if into is not None:
                    return await models.rebuild_as_of(
                        into, position=position, moment=moment, progress=_progress(bar)
                    )
                return await models.rebuild(_progress(bar))

    result = run(main)
    if as_json:
        print_json({"position": result.position, "events": result.events,
                    "seconds": result.seconds, "events_per_second": result.events_per_second,
                    "into": None if into is None else str(into), "as_of": as_of})  # fmt: skip
        return
    where = f" into {into}" if into else ""
    say(f"rebuilt{where} to position {result.position}: {result.events} facts "
        f"in {result.seconds:.2f}s ({result.events_per_second:,.0f} facts/s)")  # fmt: skip


@projections_app.command()
def verify(as_json: bool = JsonOption) -> None:
    """Rebuild into a scratch store and compare row by row; exit 1 when rows differ.

    --json: a list of differences ({"model", "live", "rebuilt"}), [] when none.
    """

    async def main() -> list[Difference]:
        async with open_app() as app:
            return await app.read_models.verify()

    differences = run(main)
    if as_json:
        print_json([asdict(difference) for difference in differences])
    elif not differences:
        say("the read models match a fresh rebuild")
    else:
        for difference in differences:
            console.print(f"{difference.model}: live {difference.live}", markup=False)
            console.print(f"{difference.model}: rebuilt {difference.rebuilt}", markup=False)
    if differences:
        raise typer.Exit(1)
