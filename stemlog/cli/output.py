"""Where output goes: results on standard output, everything else on standard error.

Scripts read standard output: a table or plain lines for people, JSON with
``--json``. Progress, hints and errors go to standard error so they never mix
with a result; under ``--json`` they are JSON lines too (an error is
``{"error", "type", "exit_code"}``), so a script can parse both streams.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

console = Console()
"""Standard output for people (its width is read from the terminal or ``$COLUMNS``
each time, so it follows the environment a test sets)."""


class Output:
    """Whether this invocation asked for ``--json``; set before the command runs
    (see :mod:`stemlog.cli.group`), so errors raised while parsing it are JSON too."""

    as_json: bool = False


def print_json(value: Any) -> None:
    """One JSON document on standard output, flushed (a worker's first line is read
    through a pipe while it keeps running)."""
    sys.stdout.write(orjson.dumps(value, default=str).decode() + "\n")
    sys.stdout.flush()


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def one_line(message: str) -> str:
    """A message with its line breaks folded: an error is always one line."""
    return " ".join(message.split())


def report_error(message: str, code: int, kind: str) -> None:
    """The one line an error prints on standard error (JSON under ``--json``)."""
    text = one_line(message)
    if Output.as_json:
        _stderr_line(orjson.dumps({"error": text, "type": kind, "exit_code": code}).decode())
    else:
        _stderr_line(f"error: {text}")


def fail(message: str, code: int = 2, kind: str = "UsageError") -> NoReturn:
    """Report an error and exit with ``code`` (2 bad usage or input, 1 failed)."""
    report_error(message, code, kind)
    raise typer.Exit(code)


def note(message: str, **fields: Any) -> None:
    """Progress or a hint on standard error: text for people, with ``--json`` a JSON
    line ``{"note": message, **fields}`` (standard output keeps the result)."""
    if Output.as_json:
        _stderr_line(orjson.dumps({"note": message, **fields}, default=str).decode())
    else:
        _stderr_line(message)


def say(text: str) -> None:
    """A plain line on standard output, never wrapped (an id in it stays whole)."""
    typer.echo(text)


def print_table(table: Table, *, wide: bool = False) -> None:
    """Print a table on standard output; ``wide`` prints it at its natural width
    whatever the terminal's, for ``--wide`` (lines longer than the terminal wrap
    in it, but no cell is cut)."""
    if not wide:
        console.print(table)
        return
    width = Measurement.get(console, console.options.update_width(1 << 20), table).maximum
    Console(width=max(width, 1)).print(table)
