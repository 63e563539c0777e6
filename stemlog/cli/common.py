"""What every command shares: the store URL, loading an app module, output, errors."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import anyio
import orjson
import typer
from rich.console import Console

from stemlog import (
    Flow,
    StemlogError,
    StoreUnavailableError,
    StoreWriteError,
    WorkflowApp,
    WorkflowDefinition,
    WorkflowScript,
)

T = TypeVar("T")

DEFAULT_DB = "sqlite:///./stemlog.db"
console = Console()
errors = Console(stderr=True, soft_wrap=True)


class Options:
    """Global options, set by the callback of the top-level command."""

    db: str = os.environ.get("STEMLOG_DB", DEFAULT_DB)
    store_timeout: float = 30.0


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to standard error and exit with ``code``."""
    errors.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def run(function: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; every error becomes one line on standard error.

    Exit code 1 when the store failed the command (unavailable, refusing
    writes) or something unexpected went wrong, 2 for bad usage or input.
    """
    try:
        return anyio.run(function)
    except (StoreUnavailableError, StoreWriteError) as error:
        fail(str(error), 1)
    except StemlogError as error:
        fail(str(error), 2)
    except (OSError, ValueError) as error:
        fail(f"{type(error).__name__}: {error}", 2)
    except Exception as error:
        fail(f"unexpected {type(error).__name__}: {error}", 1)


def parse_json(text: str, what: str) -> Any:
    """JSON from the command line, or exit 2 naming what was malformed."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        fail(f"{what} is not valid JSON: {error}")


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, default=str).decode() + "\n")


def load_definitions(target: str | None) -> list[WorkflowDefinition]:
    """The definitions of ``module:attr``: a WorkflowApp, a Flow/WorkflowScript, or a list."""
    target = target or os.environ.get("STEMLOG_APP")
    if not target:
        fail("this command needs the workflow definitions: pass --app module:attribute")
    module_name, _, attribute = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in (attribute or "app").split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as error:
        fail(f"cannot load {target!r}: {error}")
    return _definitions_of(value, target)


def _definitions_of(value: Any, target: str) -> list[WorkflowDefinition]:
    if isinstance(value, WorkflowApp):
        return value.definitions()
    if isinstance(value, (Flow, WorkflowScript, WorkflowDefinition)):
        return [value.definition]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item.definition for item in value]
    fail(f"{target!r} is not a WorkflowApp, a workflow, or a list of workflows")


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


def configure_logging(*, verbose: bool, worker: bool = False) -> None:
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
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.stemlog_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
