"""Commands that act: ``start``, ``emit``, ``send``, ``cancel``, ``rewind``, ``fork``,
``worker``, ``manifest``."""

from __future__ import annotations

import logging

import anyio
import typer

from stemlog import RunStatus
from stemlog.cli.common import (
    configure_logging,
    console,
    load_definitions,
    open_app,
    parse_json,
    print_json,
    run,
)
from stemlog.cli.format import format_manifest, run_json

AppOption = typer.Option(None, "--app", help="module:attribute holding the workflows")


def start(
    name: str,
    params: str = typer.Option("{}", help="the run's params as a JSON object"),
    wait: bool = typer.Option(False, help="drive the run here and wait for it to end"),
    timeout: float | None = typer.Option(None, help="seconds to wait with --wait"),
    app_target: str | None = AppOption,
) -> None:
    """Start a run (its definition comes from --app); print its id, or its result with --wait."""
    values = parse_json(params, "--params")

    async def main() -> RunStatus | None:
        definitions = load_definitions(app_target)
        async with open_app(worker=wait, definitions=definitions, create=True) as app:
            run_id = await app.start(name, values)
            if not wait:
                typer.echo(run_id)
                return None
            result = await app.wait_for(run_id, timeout=timeout)
            view = await app.get_run(run_id)
        if view is not None:
            print_json(run_json(view))
        return result.status

    status = run(main)
    if status is not None and status is not RunStatus.COMPLETED:
        raise typer.Exit(1)


def emit(topic: str, payload: str) -> None:
    """Deliver a JSON payload to every run waiting on TOPIC; print the runs reached."""
    value = parse_json(payload, "the payload")

    async def main() -> None:
        async with open_app() as app:
            for run_id in await app.emit(topic, value):
                typer.echo(run_id)

    run(main)


def send(run_id: str, topic: str, payload: str) -> None:
    """Deliver a JSON payload to one run (kept until it waits on TOPIC)."""
    value = parse_json(payload, "the payload")

    async def main() -> None:
        async with open_app() as app:
            await app.send(run_id, topic, value)

    run(main)


def cancel(run_id: str, reason: str | None = typer.Option(None, help="why")) -> None:
    """Cancel a run and its running children."""

    async def main() -> None:
        async with open_app() as app:
            await app.cancel(run_id, reason)

    run(main)


def rewind(run_id: str, step: str) -> None:
    """Run STEP and the steps after it again (nothing is deleted)."""

    async def main() -> None:
        async with open_app() as app:
            await app.rewind(run_id, step)

    run(main)


def fork(run_id: str, step: str) -> None:
    """Start a new run with this run's history up to STEP; print its id."""

    async def main() -> None:
        async with open_app() as app:
            typer.echo(await app.fork(run_id, step))

    run(main)


def worker(
    app_target: str = typer.Argument(..., metavar="APP", help="module:attribute"),
    concurrency: int = typer.Option(64, help="runs driven at once"),
) -> None:
    """Drive the runs of APP's workflows on --db until interrupted."""
    definitions = load_definitions(app_target)
    configure_logging(verbose=logging.getLogger("stemlog").level == logging.DEBUG, worker=True)

    async def main() -> None:
        app = open_app(worker=True, definitions=definitions, concurrency=concurrency,
                       create=True)  # fmt: skip
        async with app:
            names = ", ".join(sorted({d.name for d in definitions}))
            typer.echo(f"worker serving {names} on {app.url} (Ctrl-C to stop)")
            await anyio.sleep_forever()

    try:
        run(main)
    except KeyboardInterrupt:
        console.print("worker stopped")


def manifest(
    app_target: str | None = AppOption, as_json: bool = typer.Option(False, "--json")
) -> None:
    """The workflows of --app: kinds, versions, declared steps, fingerprints."""
    definitions = load_definitions(app_target)
    entries = [definition.manifest() for definition in definitions]
    if as_json:
        print_json(entries)
    else:
        console.print(format_manifest(entries))
