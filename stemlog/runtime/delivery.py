"""Writes that come from outside a run: ``emit``, ``send``, ``cancel``,
``rewind``, ``fork`` and the delivery of a child's outcome to its parent.

Each loads the runs it touches, decides on their folded state, and commits;
when another writer appended meanwhile (optimistic concurrency), it reloads
and decides again. ``emit`` commits the deliveries to all waiting runs in one
atomic append, so once it returns no delivery can be lost.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, final

from stemlog.clock import Clock
from stemlog.codec import JSONValue
from stemlog.errors import RunEndedError, UnknownRunError, UnknownStepError
from stemlog.execution.session import ConflictError
from stemlog.model.children import child_end_event_id, child_outcome, child_topic
from stemlog.model.facts import StepStarted
from stemlog.model.run import Run
from stemlog.runtime.views import ViewKeeper
from stemlog.store.events import RunStore, parse_run_id

if TYPE_CHECKING:
    from stemlog.runtime.starter import Starter
    from stemlog.runtime.worker import Worker

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
        """Cancel the run, then its children that are still going (depth first)."""
        parse_run_id(run_id)
        run = await self._update(run_id, lambda run, at: run.cancel(reason, at))
        await self._cascade(run_id, reason)
        if run.state.parent_run_id is not None:
            await self.deliver_child_outcome(run_id)

    async def _cascade(self, parent_run_id: str, reason: str | None) -> None:
        await self._views.catch_up()
        for child in await self._views.call(self._views.view.children, parent_run_id):
            with contextlib.suppress(RunEndedError, UnknownRunError):
                await self.cancel(child, reason or f"parent {parent_run_id} cancelled")

    async def rewind(self, run_id: str, step: str) -> None:
        parse_run_id(run_id)
        await self._update(run_id, lambda run, at: run.rewind(step, at))

    async def fork(self, starter: Starter, run_id: str, step: str) -> Run:
        """A new run with this run's history up to the first start of ``step``."""
        source = await self._store.load(run_id)
        facts = await self._store.facts(run_id)
        upto = next(
            (i for i, f in enumerate(facts) if isinstance(f, StepStarted) and f.step == step),
            None,
        )
        if upto is None:
            raise UnknownStepError(run_id, step)
        return await starter.fork(source.state, facts, upto)

    async def deliver_child_outcome(self, child_run_id: str) -> None:
        """Tell the parent how its child ended (idempotent; a no-op while it runs)."""
        try:
            child = (await self._store.load(child_run_id)).state
        except UnknownRunError:
            return
        parent = child.parent_run_id
        if parent is None or not child.status.is_terminal:
            return
        error = None if child.error is None else child.error.to_json()
        outcome = child_outcome(str(child.status), child.result, error)
        topic, event_id = child_topic(child_run_id), child_end_event_id(child_run_id)
        with contextlib.suppress(RunEndedError, UnknownRunError):
            await self._update(
                parent, lambda run, at: run.receive_event(topic, outcome, event_id, at)
            )

    async def _update(self, run_id: str, change: _Change) -> Run:
        for _ in range(_ATTEMPTS):
            run = await self._store.load(run_id)
            change(run, self._clock.now())
            try:
                await self._store.commit(run)
            except ConflictError:
                continue
            self._wake([run])
            return run
        raise RuntimeError(f"run {run_id} kept conflicting with other writers")

    def _wake(self, runs: list[Run]) -> None:
        if self._worker is not None:
            for run in runs:
                self._worker.schedule(run.state.run_id, run)


if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    _Change = Callable[[Run, datetime], None]
