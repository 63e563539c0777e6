"""The app's side of the read models: their view, their projector, when to catch up.

One process per database keeps the models in the background: the one that
holds the backend's projector lead (:class:`stemlog.store.base.Leadership`:
an advisory lock on PostgreSQL, a file lock beside a SQLite file). It catches
up after commits (lingering briefly so one transaction covers many commits),
and reads the facts this process committed from memory rather than the
database (:class:`CommittedHere`). Every process still catches up
synchronously, under the same lock, before a query that must see the log's
head (``get_run``, ``list_runs``, ...); two projectors never apply a page
twice (the page's position is checked in its transaction).
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
from stemlog.store.base import Appended, Leadership, LoggedFact, Share
from stemlog.store.events import RunStore

T = TypeVar("T")

logger = logging.getLogger("stemlog.projections")

_LINGER = 0.5
"""Seconds the background projector waits after a commit, to batch more commits (the
models' staleness in the background only: queries catch up to the head first)."""
_POLL = 1.0
"""Seconds between the leader's catch-ups when nothing in this process wrote."""
LEAD_RETRY_SECONDS = 5.0
"""How often a process that does not lead asks again (the leader may have gone)."""
_REMEMBERED = 100_000
"""Facts committed here kept for the projector at most (beyond: read from the store)."""


@final
class CommittedHere:
    """A partition of the log as its projector reads it: the facts this process
    committed from memory, anything else (other processes' facts, gaps) from the
    store."""

    def __init__(self, store: RunStore, partition: int = 0) -> None:
        self._store = store
        self._partition = partition
        self._facts: dict[int, LoggedFact] = {}
        self.keeping = False

    def remember(self, appended: Appended) -> None:
        """Keep this process's committed facts of the partition (while it leads it)."""
        if not (self.keeping and appended.local):
            return
        if len(self._facts) > _REMEMBERED:
            self._facts.clear()
        for logged in appended.facts:
            if logged.partition == self._partition:
                self._facts[logged.position] = logged

    def forget(self) -> None:
        """Drop everything kept (the lead is gone)."""
        self.keeping = False
        self._facts.clear()

    def head(self) -> int:
        return self._store.head(self._partition)

    def read(
        self, start: int, limit: int, stop: int | None = None, share: Share | None = None
    ) -> list[LoggedFact]:
        """Facts from ``start`` on: from memory while they follow each other there."""
        if share is not None:
            return self._store.read(start, limit, stop, self._partition, share)
        page: list[LoggedFact] = []
        position = start
        while len(page) < limit and (stop is None or position <= stop):
            logged = self._facts.pop(position, None)
            if logged is None:
                break
            page.append(logged)
            position += 1
        if page:
            return page
        for old in [p for p in self._facts if p < start]:
            del self._facts[old]
        return self._store.read(start, limit, stop, self._partition)


@final
class ReadSide:
    """Owns the read models' view and its projectors (one per partition) for one app."""

    def __init__(self, view: RunsView, store: RunStore) -> None:
        self.view = view
        view.partitions = store.partitions
        self.committed = [CommittedHere(store, p) for p in range(store.partitions)]
        self.projectors = [
            Projector(self.committed[p], view, partition=p) for p in range(store.partitions)
        ]
        self.store = store
        self._store = store
        self._lock = anyio.Lock()
        self._moved = anyio.Event()

    @classmethod
    def create(cls, store: RunStore) -> ReadSide:
        """Build (and create the tables of) the view in the log's own database (blocking)."""
        view = cast(RunsView, store.tracking_recorder(view_class(store.backend.name)))
        view.ensure_models()  # a model whose version changed is rebuilt from the log
        return cls(view, store)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking view method (in a worker thread unless in memory)."""
        return await self._store.blocking(function, *args)

    def appended(self, appended: Appended) -> None:
        """Facts reached the log: keep this process's, and catch up soon."""
        for committed in self.committed:
            committed.remember(appended)
        self._moved.set()

    def log_moved(self) -> None:
        """Another process may have appended: catch up soon."""
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
        await self._catch_up(self.projectors)

    async def _catch_up(self, projectors: list[Projector]) -> None:
        async with self._lock:
            try:
                for projector in projectors:
                    await self.call(projector.catch_up)
            except StoreWriteError as error:
                logger.warning("read models are behind the log: %s", error.reason)

    async def follow(
        self, leadership: Leadership, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the models of the partitions this process leads in the background,
        until cancelled; ask every ``LEAD_RETRY_SECONDS`` which those are.

        While the store is away (or refuses writes) the models stay where they
        are and the next round tries again; queries wait or fail on their own.
        """
        task_status.started()
        try:
            while True:
                led = await anyio.to_thread.run_sync(leadership.lead)
                for number, committed in enumerate(self.committed):
                    if number in led:
                        committed.keeping = True
                    else:
                        committed.forget()
                if not led:
                    await anyio.sleep(LEAD_RETRY_SECONDS)
                    continue
                await self._follow_while_leading([self.projectors[p] for p in sorted(led)])
        finally:
            for committed in self.committed:
                committed.forget()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(leadership.resign)

    async def _follow_while_leading(self, projectors: list[Projector]) -> None:
        with anyio.move_on_after(LEAD_RETRY_SECONDS):  # then ask which partitions it leads
            while True:
                with anyio.move_on_after(_POLL):
                    await self._moved.wait()
                self._moved = anyio.Event()
                await anyio.sleep(_LINGER)
                try:
                    await self._catch_up(projectors)
                except (StoreUnavailableError, StoreWriteError):
                    await anyio.sleep(_POLL)
