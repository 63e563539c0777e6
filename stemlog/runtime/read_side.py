"""The app's side of the read models: their view, their projector, when to catch up.

The projector runs in the background after commits (lingering briefly so one
transaction covers many commits), and synchronously, under the same lock,
before any query that must see the log's head (``emit``, ``get_run``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast, final

import anyio
from anyio.abc import TaskStatus

from projections.projector import Projector
from projections.view import RunsView
from projections.views import view_class
from stemlog.errors import StoreUnavailableError, StoreWriteError
from stemlog.store.events import RunStore

T = TypeVar("T")

logger = logging.getLogger("stemlog.projections")

_LINGER = 0.02
"""Seconds the background projector waits after a commit, to batch more commits."""
_POLL = 1.0
"""Seconds between catch-ups when nothing in this process wrote (other writers)."""


@final
class ReadSide:
    """Owns the read models' view and projector for one app."""

    def __init__(self, view: RunsView, projector: Projector, store: RunStore) -> None:
        self.view = view
        self.projector = projector
        self._store = store
        self._lock = anyio.Lock()
        self._moved = anyio.Event()

    @classmethod
    def create(cls, store: RunStore) -> ReadSide:
        """Build (and create the tables of) the view in the log's own database (blocking)."""
        view = cast(RunsView, store.tracking_recorder(view_class(store.backend.name)))
        view.ensure_models()  # a model whose version changed is rebuilt from the log
        return cls(view, Projector(store, view), store)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking view method (in a worker thread unless in memory)."""
        return await self._store.blocking(function, *args)

    def log_moved(self) -> None:
        """Something was appended: catch up soon."""
        self._moved.set()

    @property
    def lock(self) -> anyio.Lock:
        """Held while the projector writes (catch-ups and rebuilds)."""
        return self._lock

    async def catch_up(self) -> None:
        """Bring the view to the log's head as of now.

        When the store refuses writes (a full disk) the models cannot move: the
        query that asked reads them as they stand rather than failing, and the
        models catch up once writes are taken again.
        """
        async with self._lock:
            try:
                await self.call(self.projector.catch_up)
            except StoreWriteError as error:
                logger.warning("read models are behind the log: %s", error.reason)

    async def follow(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the log in the background until cancelled.

        While the store is away (or refuses writes) the models stay where they
        are and the next round tries again; queries wait or fail on their own.
        """
        task_status.started()
        while True:
            with anyio.move_on_after(_POLL):
                await self._moved.wait()
            self._moved = anyio.Event()
            await anyio.sleep(_LINGER)
            try:
                await self.catch_up()
            except (StoreUnavailableError, StoreWriteError):
                await anyio.sleep(_POLL)
