"""The ``stemlog`` console script."""

from __future__ import annotations

import typer

from stemlog.cli import control, runs
from stemlog.cli.common import DEFAULT_DB, Options, configure_logging
from stemlog.cli.demo import demo
from stemlog.cli.group import OneLineErrors
from stemlog.cli.models import projections_app
from stemlog.cli.start import start
from stemlog.cli.worker import worker

cli = typer.Typer(
    cls=OneLineErrors,
    help="stemlog: durable workflows on an event-sourced log.\n\n"
    "Exit codes: 0 fine; 1 the thing asked about failed or diverged, or the store "
    "failed the command; 2 bad usage or bad input. Every command takes --json; "
    "errors are one line on standard error (JSON under --json).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@cli.callback()
def _options(
    db: str = typer.Option(
        DEFAULT_DB, "--db", envvar="STEMLOG_DB", help="store URL (sqlite:///..., postgresql://...)"
    ),
    store_timeout: float = typer.Option(
        30.0, "--store-timeout", help="seconds to wait for a store that is away"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log what stemlog does"),
) -> None:
    Options.db = db
    Options.store_timeout = store_timeout
    configure_logging(verbose=verbose)


cli.command()(demo)
cli.command()(runs.runs)
cli.command()(runs.show)
cli.command()(runs.history)
cli.command()(runs.waiters)
cli.command("import")(runs.import_)
cli.command()(runs.replay)
cli.command()(start)
cli.command()(control.emit)
cli.command()(control.send)
cli.command()(control.cancel)
cli.command()(control.rewind)
cli.command()(control.fork)
cli.command()(worker)
cli.command()(control.manifest)
cli.add_typer(projections_app, name="projections")


def main() -> None:
    """Entry point of the ``stemlog`` console script."""
    cli()


if __name__ == "__main__":
    main()
