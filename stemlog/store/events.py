"""The store adapter: stemlog's eventsourcing application behind an async API.

This and the projection runner are the only modules that call eventsourcing's
(blocking) recorders; they do it in worker threads through a capacity limiter.

Writes are *group commits*: facts submitted by many runs while a commit is
in progress are written together in the next one (one transaction,
one fsync), which is what makes many concurrent runs cheap on SQLite and
PostgreSQL. A batch is atomic; when it loses an optimistic-concurrency race,
each submission is retried on its own so only the run that conflicted sees
:class:`~stemlog.execution.session.ConflictError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, final
from uuid import UUID

import anyio
from anyio import CancelScope, CapacityLimiter
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Transcoder
from eventsourcing.utils import Environment, EnvType

from stemlog.codec import OrjsonTranscoder
from stemlog.errors import UnknownRunError
from stemlog.execution.session import ConflictError
from stemlog.model.facts import AnyFact
from stemlog.model.run import Run
from stemlog.store.urls import StoreConfig

T = TypeVar("T")
CommitListener = Callable[[Sequence[AnyFact]], None]


class RunLog(Application[UUID]):
    """stemlog's eventsourcing application: one aggregate per run, one log."""

    name = "stemlog"
    log_section_size = 1000

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Configured by URL only: never let os.environ leak in (eventsourcing merges it).
        return Environment(name, dict(env or {}))

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()


def parse_run_id(run_id: str) -> UUID:
    """A run id as a UUID.

    Raises:
        UnknownRunError: ``run_id`` is not a UUID, so no such run can exist.
    """
    try:
        return UUID(str(run_id))
    except ValueError:
        raise UnknownRunError(str(run_id)) from None


@dataclass(slots=True)
class _Submission:
    events: list[Any]
    finished: bool = False
    error: BaseException | None = None
    wake: anyio.Event | None = None


@final
class RunStore:
    """Loads runs and appends their facts, batching concurrent commits."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.log = RunLog(env=config.env)
        self.limiter = CapacityLimiter(4)
        self._queue: list[_Submission] = []
        self._writing = False
        self._inline = config.backend == "memory"
        # On SQLite a lone writer commits on the event loop: a thread hop costs
        # ~0.1 ms, a third of an fsync. ``solo`` says whether the app is busy
        # with one run at most (the app sets it from its worker).
        self.solo: Callable[[], bool] = lambda: False
        self._listeners: list[CommitListener] = []

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener`` (in the event loop) with the facts of every commit."""
        self._listeners.append(listener)

    async def load(self, run_id: str) -> Run:
        """The run as stored now.

        Raises:
            UnknownRunError: no such run.
        """
        uuid = parse_run_id(run_id)
        run = await self.blocking(self._get, uuid)
        if run is None:
            raise UnknownRunError(run_id)
        return run

    def _get(self, uuid: UUID) -> Run | None:
        try:
            run: Run = self.log.repository.get(uuid)
        except AggregateNotFoundError:
            return None
        return run

    async def facts(self, run_id: str) -> list[AnyFact]:
        """Every fact of a run, in order (empty for an unknown run)."""
        uuid = parse_run_id(run_id)

        def read() -> list[AnyFact]:
            return [cast("AnyFact", fact) for fact in self.log.events.get(uuid)]

        return await self.blocking(read)

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call: in a worker thread, or inline for ``memory://``
        (in-memory calls are pure CPU work, so a thread would only add a hop)."""
        if self._inline:
            return function(*args)
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    async def commit(self, *runs: Run) -> None:
        """Append the pending facts of ``runs`` atomically and durably.

        Group commit without a committer task: the first submitter finding no
        write under way becomes the leader and writes everything queued in one
        transaction; submissions arriving meanwhile wait, and the next of them
        leads the following write. A started write is shielded from
        cancellation, so it always finishes and is reported.

        Raises:
            ConflictError: another writer appended to one of the runs first; the
                run objects are consumed and must be reloaded.
        """
        events: list[Any] = []
        for run in runs:
            events.extend(run.collect_events())
        if not events:
            return
        submission = _Submission(events)
        self._queue.append(submission)
        while not submission.finished:
            if self._writing:
                submission.wake = anyio.Event()
                await submission.wake.wait()
            else:
                await self._lead()
        if submission.error is not None:
            raise submission.error

    async def _lead(self) -> None:
        self._writing = True
        try:
            with CancelScope(shield=True):
                batch, self._queue = self._queue, []
                if len(batch) == 1 and self.config.backend == "sqlite" and self.solo():
                    self._write(batch)
                else:
                    await self.blocking(self._write, batch)
                for submission in batch:
                    submission.finished = True
                    if submission.wake is not None:
                        submission.wake.set()
                committed = [e for s in batch if s.error is None for e in s.events]
                for listener in self._listeners:
                    listener(committed)
        finally:
            self._writing = False
            if self._queue and self._queue[0].wake is not None:
                self._queue[0].wake.set()  # hand the lead to the next submitter

    def _write(self, batch: list[_Submission]) -> None:
        # events.put is what Application.save does for us (no snapshots, no
        # notify hooks), without its per-event runtime protocol checks.
        try:
            self.log.events.put([event for submission in batch for event in submission.events])
            return
        except IntegrityError:
            if len(batch) == 1:
                self._write_alone(batch[0])
                return
        except Exception as error:
            for submission in batch:
                submission.error = error
            return
        for submission in batch:
            self._write_alone(submission)

    def _write_alone(self, submission: _Submission) -> None:
        try:
            self.log.events.put(submission.events)
        except IntegrityError:
            if not self._already_stored(submission.events):
                submission.error = ConflictError()
        except Exception as error:
            submission.error = error

    def _already_stored(self, events: list[DomainEventProtocol[UUID]]) -> bool:
        # A commit whose reply was lost (PostgreSQL retries on a dropped
        # connection) comes back as IntegrityError: check whether it was ours.
        mapper, recorder = self.log.mapper, self.log.recorder
        for event in events:
            version = event.originator_version
            stored = recorder.select_events(event.originator_id, gt=version - 1, lte=version)
            mine = mapper.to_stored_event(event)
            if not stored or stored[0].state != mine.state or stored[0].topic != mine.topic:
                return False
        return True

    def close(self) -> None:
        """Close the database connections."""
        self.log.close()
