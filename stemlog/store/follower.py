"""Following the facts other processes append, to wake this process's worker.

Facts this process commits reach its worker and ``wait_for`` callers at once
(the commit listener); the follower tails the log for the others: a run
started, emitted to or cancelled from another process (a CLI, a web server,
another worker). On PostgreSQL it rides eventsourcing's LISTEN/NOTIFY
subscription, so a fact is seen within milliseconds; on SQLite, which has no
subscriptions, it polls. A memory store lives in one process and needs none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import final
from uuid import UUID

import anyio
import psycopg
from anyio.abc import TaskStatus
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from projections.projector import decode_notification
from stemlog.model.facts import AnyFact
from stemlog.store.events import RunStore

FactsListener = Callable[[Sequence[AnyFact]], None]

POLL_SECONDS = 0.2
"""How often a SQLite follower looks for facts of other processes."""
FALLBACK_POLL_SECONDS = 1.0
"""On PostgreSQL, how long to wait for a NOTIFY before looking anyway."""


@final
class LogFollower:
    """Delivers the facts appended by other processes, in log order."""

    def __init__(self, store: RunStore, listener: FactsListener) -> None:
        self._store = store
        self._listener = listener
        self._position = 0
        self._local: set[tuple[UUID, int]] = set()
        self._woken: anyio.Event | None = None
        self._stopped = False

    def committed_here(self, facts: Sequence[AnyFact]) -> None:
        """Remember facts this process committed, so they are not delivered twice."""
        self._local.update((fact.originator_id, fact.originator_version) for fact in facts)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the log from its head now until cancelled."""
        recorder = self._store.log.recorder
        head: int | None = await self._store.blocking(recorder.max_notification_id)
        self._position = head or 0
        task_status.started()
        if not isinstance(recorder, PostgresApplicationRecorder):
            while True:
                await anyio.sleep(POLL_SECONDS)
                await self._catch_up()
        woken = self._woken = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(partial(anyio.to_thread.run_sync, self._listen, recorder,
                                     abandon_on_cancel=True))  # fmt: skip
            while True:
                with anyio.move_on_after(FALLBACK_POLL_SECONDS):
                    await woken.wait()
                woken = self._woken = anyio.Event()
                await self._catch_up()

    def _listen(self, recorder: PostgresApplicationRecorder) -> None:
        """In a worker thread: LISTEN on the log's channel and wake the follower.

        NOTIFY is only a wake-up (eventsourcing sends one per append); the
        follower then reads the log after its position, so nothing is missed.
        The connection is its own (not the pool's), closed when the app stops.
        """
        kwargs = recorder.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
        settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
        with psycopg.connect(autocommit=True, **settings) as connection:
            connection.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))
            while not self._stopped:
                for _ in connection.notifies(timeout=0.25, stop_after=1):
                    anyio.from_thread.run_sync(self._wake)

    def stop(self) -> None:
        """Let the LISTEN thread end (within a quarter of a second)."""
        self._stopped = True

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    async def _catch_up(self) -> None:
        recorder = self._store.log.recorder
        while True:
            page = await self._store.blocking(
                recorder.select_notifications, self._position + 1, 1000
            )
            if not page:
                return
            self._deliver(page)

    def _deliver(self, notifications: Sequence[Notification]) -> None:
        facts: list[AnyFact] = []
        for notification in notifications:
            self._position = max(self._position, notification.id)
            key = (notification.originator_id, notification.originator_version)
            if key in self._local:
                self._local.discard(key)
                continue
            facts.append(decode_notification(notification))
        if facts:
            self._listener(facts)
