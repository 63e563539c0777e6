"""``stemlog worker APP``: drive the runs of APP's workflows until told to stop."""

from __future__ import annotations

import logging
import os
import signal
from urllib.parse import urlsplit, urlunsplit

import anyio
import typer

from stemlog.cli.common import JsonOption, configure_logging, load_definitions, open_app, run
from stemlog.cli.output import print_json, say


def redacted(url: str) -> str:
    """The store URL without its password: the serving line ends up in logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def worker(
    app_target: str = typer.Argument(..., metavar="APP", help="module:attribute"),
    concurrency: int = typer.Option(64, help="runs driven at once"),
    as_json: bool = JsonOption,
) -> None:
    """Drive the runs of APP's workflows on --db until Ctrl-C or SIGTERM (exit 0).

    Prints one line when it serves and one when it stops; logs go to stderr.
    --json: {"event": "serving", "workflows", "db", "concurrency", "pid"} and
    {"event": "stopped", "signal"} on stdout, log records as JSON lines on stderr.
    """
    definitions = load_definitions(app_target)
    verbose = logging.getLogger("stemlog").level == logging.DEBUG
    configure_logging(verbose=verbose, worker=True, as_json=as_json)
    names = sorted({definition.name for definition in definitions})

    async def main() -> str:
        # Signals are received, not raised: the app closes cleanly (its leases
        # released, its store closed) and the command exits 0.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            app = open_app(worker=True, definitions=definitions, concurrency=concurrency,
                           create=True)  # fmt: skip
            async with app:
                if as_json:
                    print_json({"event": "serving", "workflows": names, "db": redacted(app.url),
                                "concurrency": concurrency, "pid": os.getpid()})  # fmt: skip
                else:
                    where = redacted(app.url)
                    say(f"worker serving {', '.join(names)} on {where} (Ctrl-C to stop)")
                async for received in signals:
                    return signal.Signals(received).name
        return "none"  # the receiver never ends by itself

    try:
        stopped_by = run(main)
    except KeyboardInterrupt:  # before the receiver was in place
        stopped_by = "SIGINT"
    if as_json:
        print_json({"event": "stopped", "signal": stopped_by})
    else:
        say(f"worker stopped ({stopped_by})")
