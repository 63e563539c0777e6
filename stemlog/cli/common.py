"""What every command shares: the store URL, loading an app module, running, errors."""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import orjson
import typer

from stemlog import (
    Flow,
    InvalidPayloadError,
    StemlogError,
    StoreUnavailableError,
    StoreWriteError,
    WorkflowApp,
    WorkflowDefinition,
    WorkflowScript,
)
from stemlog.cli.output import fail

T = TypeVar("T")

DEFAULT_DB = "sqlite:///./stemlog.db"

_STORE_FAILED = (StoreUnavailableError, StoreWriteError)
"""The store failed or refused the command (not the user's input): exit 1."""


AppOption = typer.Option(None, "--app", help="module:attribute holding the workflows")
JsonOption = typer.Option(False, "--json", help="print JSON (errors too: one JSON line on stderr)")


class Options:
    """Global options, set by the callback of the top-level command."""

    db: str = os.environ.get("STEMLOG_DB", DEFAULT_DB)
    store_timeout: float = 30.0


def stemlog_command() -> str:
    """``stemlog `` and the ``--db`` this invocation used, unless it is the default,
    to start the commands the CLI suggests (they must reach the same store)."""
    return "stemlog " + ("" if Options.db == DEFAULT_DB else f"--db {shlex.quote(Options.db)} ")


_HEX = frozenset("0123456789abcdef-")


async def resolve_run(app: WorkflowApp, text: str) -> str:
    """The id of the run that ``text`` names: a run id, a run key, or a unique prefix
    of a run id of at least 8 characters (as it shows in ``stemlog runs``).

    A key that names a run wins over a prefix; anything that names no run is
    passed on as it is, so the command reports the unknown run.

    Raises:
        InvalidPayloadError: a prefix that more than one run id starts with.
    """
    named = await app.get_run(text)
    if named is not None:
        return named.run_id
    if len(text) < 8 or not set(text.lower()) <= _HEX:
        return text
    found = await app.list_runs(limit=2, include_expired=True, id_prefix=text.lower())
    if len(found) > 1:
        ids = ", ".join(view.run_id for view in found)
        raise InvalidPayloadError("run", f"{text!r} is the start of more than one run id: {ids}")
    return found[0].run_id if found else text


def exit_code_of(error: BaseException) -> int:
    """1 when the store failed the command or something unexpected broke, 2 when the
    input was wrong (an unknown run, a malformed payload, a bad URL...)."""
    if isinstance(error, _STORE_FAILED):
        return 1
    if isinstance(error, (StemlogError, OSError, ValueError)):
        return 2
    return 1


def run(function: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; every error becomes one line on standard error.

    ``typer.Exit`` (raised by :func:`fail` inside the command, after it printed
    its line) passes through untouched: it is a ``RuntimeError`` and would
    otherwise be reported a second time as unexpected.
    """
    try:
        return anyio.run(function)
    except typer.Exit:
        raise
    except Exception as error:
        code = exit_code_of(error)
        message = str(error)
        if not isinstance(error, StemlogError):
            prefix = "" if code == 2 else "unexpected "
            message = f"{prefix}{type(error).__name__}: {error}"
        fail(message, code, type(error).__name__)


def parse_json(text: str, what: str) -> Any:
    """JSON from the command line, or exit 2 naming what was malformed."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        fail(f"{what} is not valid JSON: {error}", 2, "InvalidPayloadError")


def _importable_here() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m``, uvicorn
    and celery do: the ``stemlog`` script's own entry is its bin directory, so
    ``--app myapp:app`` would not find ``./myapp.py`` without ``PYTHONPATH=.``."""
    here = os.getcwd()
    if not {"", ".", here} & set(sys.path):
        sys.path.insert(0, here)


def load_definitions(target: str | None, *, required: bool = True) -> list[WorkflowDefinition]:
    """The definitions of ``module:attr``: a WorkflowApp, a Flow/WorkflowScript, or a list.

    Without ``--app`` (or ``$STEMLOG_APP``): none when not ``required``, else exit 2.
    """
    target = target or os.environ.get("STEMLOG_APP")
    if not target:
        if not required:
            return []
        fail("this command needs the workflow definitions: pass --app module:attribute")
    module_name, _, attribute = target.partition(":")
    _importable_here()
    try:
        value: Any = importlib.import_module(module_name)
        for part in (attribute or "app").split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as error:
        fail(f"cannot load {target!r}: {error}")
    except Exception as error:  # the module itself raised while being imported
        fail(f"cannot load {target!r}: {type(error).__name__}: {error}")
    return _definitions_of(value, target)


def _definitions_of(value: Any, target: str) -> list[WorkflowDefinition]:
    if isinstance(value, WorkflowApp):
        return value.definitions()
    if isinstance(value, (Flow, WorkflowScript, WorkflowDefinition)):
        return [value.definition]
    if not isinstance(value, Sequence) or isinstance(value, str):
        fail(f"{target!r} is not a WorkflowApp, a workflow, or a list of workflows")
    return [item.definition for item in value]


def open_app(
    *,
    worker: bool = False,
    definitions: Sequence[WorkflowDefinition] = (),
    concurrency: int = 64,
    create: bool = False,
) -> WorkflowApp:
    """An app on ``--db`` with these definitions registered (open it with ``async with``).

    Only commands that start something (``demo``, ``start``, ``worker``,
    ``import``) create a missing store: any other command on a mistyped path
    is an error naming it, not a new empty database.
    """
    app = WorkflowApp.open(Options.db, worker=worker, concurrency=concurrency, create=create,
                           store_timeout=Options.store_timeout)  # fmt: skip
    app.register_workflows(list(definitions))
    return app


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON line (``time``, ``level``, ``logger``, ``message``),
    for ``worker --json``: a log collector reads it without a pattern."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }  # fmt: skip
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(*, verbose: bool, worker: bool = False, as_json: bool = False) -> None:
    """Send the ``stemlog`` loggers to standard error: a worker logs what it does
    (INFO), other commands stay quiet unless ``--verbose`` (their errors are the
    one line :func:`fail` prints)."""
    root = logging.getLogger("stemlog")
    for handler in list(root.handlers):
        if getattr(handler, "stemlog_cli", False):
            root.removeHandler(handler)
    if not (worker or verbose):
        root.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonLogFormatter() if as_json else plain)
    handler.stemlog_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
