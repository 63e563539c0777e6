"""The store adapter: stemlog's eventsourcing application behind an async API.

This and the projection runner are the only modules that call eventsourcing's
(blocking) recorders; they do it in worker threads through a capacity limiter.

Writes go through a *group committer*: facts submitted by many runs while a
commit is in progress are written together in the next one (one transaction,
one fsync), which is what makes many concurrent runs cheap on SQLite and
PostgreSQL. A batch is atomic; when it loses an optimistic-concurrency race,
each submission is retried on its own so only the run that conflicted sees
:class:`~stemlog.session.ConflictError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, final
from uuid import UUID

import anyio
from anyio import CancelScope, CapacityLimiter
from anyio.abc import TaskStatus
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Transcoder
from eventsourcing.utils import Environment, EnvType

from stemlog.codec import OrjsonTranscoder
from stemlog.errors import UnknownRunError
from stemlog.facts import AnyFact
from stemlog.run import Run
from stemlog.session import ConflictError
from stemlog.urls import StoreConfig

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
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@final
class RunStore:
    """Loads runs and appends their facts, batching concurrent commits."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.log = RunLog(env=config.env)
        self.limiter = CapacityLimiter(4)
        self._queue: list[_Submission] = []
        self._wakeup = anyio.Event()
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
        run = await anyio.to_thread.run_sync(self._get, uuid, limiter=self.limiter)
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

        return await anyio.to_thread.run_sync(read, limiter=self.limiter)

    async def commit(self, *runs: Run) -> None:
        """Append the pending facts of ``runs`` atomically and durably.

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
        self._wakeup.set()
        await submission.done.wait()
        if submission.error is not None:
            raise submission.error

    async def run_committer(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The group-commit loop; runs in the app's task group until cancelled."""
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            with CancelScope(shield=True):  # a started commit finishes and is reported
                await anyio.to_thread.run_sync(self._write, batch, limiter=self.limiter)
                committed = [e for s in batch if s.error is None for e in s.events]
                for submission in batch:
                    submission.done.set()
                for listener in self._listeners:
                    listener(committed)

    def _write(self, batch: list[_Submission]) -> None:
        try:
            self.log.save(*[event for submission in batch for event in submission.events])
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
            self.log.save(*submission.events)
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
