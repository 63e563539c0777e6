"""The app's side of the read models: which view class, and when to catch up.

The projector runs in the background after commits (lingering briefly so one
transaction covers many commits), and synchronously, under the same lock,
before any query that must see the log's head (``emit``, ``get_run``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast, final

import anyio
from anyio.abc import TaskStatus

from projections.projector import Projector
from projections.rows import RunRow
from projections.view import RunsView
from projections.views.memory import POPORunsView
from projections.views.sql import PostgresRunsView, SQLiteRunsView
from stemlog.store.events import RunStore

if TYPE_CHECKING:
    from stemlog.runtime.worker import Worker

T = TypeVar("T")
PageListener = Callable[[Sequence[Any], Sequence[RunRow]], None]

_LINGER = 0.02
"""Seconds the background projector waits after a commit, to batch more commits."""
_POLL = 1.0
"""Seconds between catch-ups when nothing in this process wrote (other writers)."""

_VIEW_CLASSES: dict[str, type[Any]] = {
    "memory": POPORunsView,
    "sqlite": SQLiteRunsView,
    "postgres": PostgresRunsView,
}


@final
class ViewKeeper:
    """Owns the view and its projector for one app."""

    def __init__(self, view: RunsView, projector: Projector, store: RunStore) -> None:
        self.view = view
        self.projector = projector
        self._store = store
        self._lock: anyio.Lock | None = None
        self._moved: anyio.Event | None = None
        self._on_page: PageListener | None = None

    @classmethod
    def create(cls, store: RunStore) -> ViewKeeper:
        """Build (and create the tables of) the view in the log's own database."""
        view_class = _VIEW_CLASSES[store.config.backend]
        view = cast(RunsView, store.log.factory.tracking_recorder(view_class))
        view.ensure_models()  # a model whose version changed is rebuilt from the log
        return cls(view, Projector(store.log, view), store)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking view method (in a worker thread unless in memory)."""
        return await self._store.blocking(function, *args)

    def log_moved(self) -> None:
        """Something was committed: catch up soon."""
        if self._moved is not None:
            self._moved.set()

    @property
    def lock(self) -> anyio.Lock:
        """Held while the projector writes (catch-ups and rebuilds)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def catch_up(self) -> None:
        """Bring the view to the log's head as of now."""
        async with self.lock:
            pages = await self.call(self.projector.catch_up)
        if self._on_page is not None:
            for page in pages:
                self._on_page(page.facts, page.rows)

    async def run(
        self, on_page: PageListener, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the log in the background until cancelled."""
        self._on_page = on_page
        self._moved = anyio.Event()
        task_status.started()
        while True:
            with anyio.move_on_after(_POLL):
                await self._moved.wait()
            self._moved = anyio.Event()
            await anyio.sleep(_LINGER)
            await self.catch_up()

    async def recover(self, worker: Worker) -> None:
        """After opening: resume runs left running and re-arm every timer."""
        await self.catch_up()
        for run_id in await self.call(self.view.runnable, 1_000_000):
            worker.schedule(run_id)
        far = datetime(9999, 1, 1, tzinfo=UTC)
        for run_id, due_at in await self.call(self.view.due, far, 1_000_000):
            worker.set_timer(run_id, due_at)
