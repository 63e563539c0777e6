"""The embedded app: the public API, a thin facade over an open runtime.

``async with WorkflowApp.open(url) as app`` opens the log and its read
models and starts the background tasks (projector, tail, and the worker
unless ``worker=False``) in the app's one task group; leaving the block
stops them and closes the store. Closing and reopening on the same SQLite
file or PostgreSQL database continues every run where its log stands.

The facade is put together from one module per kind of call: opening and
registration (:mod:`~stemlog.app.core`), writes to runs
(:mod:`~stemlog.app.runs`), histories (:mod:`~stemlog.app.histories`) and
queries (:mod:`~stemlog.app.queries`).
"""

from __future__ import annotations

from typing import final

from stemlog.app.histories import RunHistories
from stemlog.app.queries import RunQueries
from stemlog.app.runs import RunCommands

__all__ = ["WorkflowApp"]


@final
class WorkflowApp(RunCommands, RunHistories, RunQueries):
    """A stemlog engine embedded in your process. Create it with :meth:`open`."""
