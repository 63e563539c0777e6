"""Writes that come from outside a run: ``emit``, ``send`` and ``cancel``.

Each loads the runs it touches, decides on their folded state, and commits;
when another writer appended meanwhile (optimistic concurrency), it reloads
and decides again. ``emit`` commits the deliveries to all waiting runs in one
atomic append, so once it returns no delivery can be lost.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, final

from stemlog.clock import Clock
from stemlog.codec import JSONValue
from stemlog.errors import UnknownRunError
from stemlog.run import Run
from stemlog.session import ConflictError
from stemlog.store import RunStore, parse_run_id
from stemlog.views import ViewKeeper

if TYPE_CHECKING:
    from stemlog.worker import Worker

_ATTEMPTS = 50


@final
class Delivery:
    """Outside writes to runs, retried on optimistic-concurrency conflicts."""

    def __init__(self, store: RunStore, views: ViewKeeper, clock: Clock, worker: Worker | None):
        self._store = store
        self._views = views
        self._clock = clock
        self._worker = worker

    async def emit(self, topic: str, payload: JSONValue) -> list[str]:
        await self._views.catch_up()
        candidates = await self._views.call(self._views.view.waiting_on, topic)
        event_id = uuid.uuid4().hex
        for _ in range(_ATTEMPTS):
            runs: list[Run] = []
            for run_id in candidates:
                try:
                    run = await self._store.load(run_id)
                except UnknownRunError:
                    continue
                wait = run.state.wait
                if wait is not None and wait.topic == topic:
                    runs.append(run)
            at = self._clock.now()
            for run in runs:
                run.receive_event(topic, payload, event_id, at)
            try:
                await self._store.commit(*runs)
            except ConflictError:
                continue
            self._wake(runs)
            return [run.state.run_id for run in runs]
        raise RuntimeError(f"emit on {topic!r} kept conflicting with other writers")

    async def send(self, run_id: str, topic: str, payload: JSONValue) -> None:
        parse_run_id(run_id)
        event_id = uuid.uuid4().hex
        await self._update(run_id, lambda run, at: run.receive_event(topic, payload, event_id, at))

    async def cancel(self, run_id: str, reason: str | None) -> None:
        parse_run_id(run_id)
        await self._update(run_id, lambda run, at: run.cancel(reason, at))

    async def _update(self, run_id: str, change: _Change) -> None:
        for _ in range(_ATTEMPTS):
            run = await self._store.load(run_id)
            change(run, self._clock.now())
            try:
                await self._store.commit(run)
            except ConflictError:
                continue
            self._wake([run])
            return
        raise RuntimeError(f"run {run_id} kept conflicting with other writers")

    def _wake(self, runs: list[Run]) -> None:
        if self._worker is not None:
            for run in runs:
                self._worker.schedule(run.state.run_id, run)


if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    _Change = Callable[[Run, datetime], None]
