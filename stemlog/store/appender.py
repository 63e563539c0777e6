"""Putting a batch of submissions into the store: one transaction for the facts of
every run in it and their run-index rows. After a conflict, the submissions of
the runs whose versions the store found taken are told so, and the rest of the
batch is written together again.

Blocking: the group commit calls :meth:`Appender.write` on the event loop or in
the writer's thread (:mod:`stemlog.store.group_commit`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol, final
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from stemlog.clock import Clock, to_micros
from stemlog.store.group_commit import CONFLICT, Submission
from stemlog.store.index import AppendConflict, AppendResult, IndexedRecorder, IndexEntry
from stemlog.store.log import RunLog


class AppendTarget(Protocol):
    """What the appender needs of the store."""

    clock: Clock
    index: IndexedRecorder
    owner: str | None
    lease: timedelta
    logs: list[RunLog]

    def partition_of(self, uuid: UUID) -> int: ...

    def log_of(self, uuid: UUID) -> RunLog: ...


@final
class Appender:
    """Writes batches of submissions for one store."""

    def __init__(self, store: AppendTarget) -> None:
        self._store = store

    def write(self, batch: list[Submission]) -> None:
        """Write the batch in one transaction; after a conflict, tell the submissions of
        the runs that conflicted so and write the rest together again. Store faults
        are raised (the caller retries the unwritten ones)."""
        together = [s for s in batch if s.positions is None and s.outcome is None]
        for submission in together:
            submission.tries += 1
        while together:
            together = self._write_together(together)

    def _write_together(self, batch: list[Submission]) -> list[Submission]:
        """Write ``batch`` in one transaction; after a conflict, what to write together
        again (see :meth:`_write_around`)."""
        now = self._store.clock.now()
        for submission in batch:
            submission.entries = [
                IndexEntry.of(run, mode, now) for run, mode in zip(submission.runs,
                                                                   submission.modes, strict=True)
            ]  # fmt: skip
        try:
            positions, result = self._put(
                [event for submission in batch for event in submission.events],
                [entry for submission in batch for entry in submission.entries],
            )
        except IntegrityError as error:
            taken = error.run_ids if isinstance(error, AppendConflict) else frozenset[UUID]()
            return self._write_around(batch, taken)
        for submission in batch:
            submission.positions, positions = (
                positions[: len(submission.events)],
                positions[len(submission.events) :],
            )
            submission.held = result.held
            submission.claimable = result.claimable
        return []

    def _put(
        self, events: list[Any], entries: list[IndexEntry]
    ) -> tuple[list[tuple[int, int]], AppendResult]:
        """Insert the facts and settle their index rows in one transaction (one round
        trip on PostgreSQL), across every partition the facts live in: what
        ``Application.save`` would do, without its per-event runtime protocol
        checks, plus the index. Returns each event's ``(partition, position)``."""
        parts = [self._store.partition_of(event.originator_id) for event in events]
        order = sorted(range(len(events)), key=parts.__getitem__)  # stable: a run's in order
        stored = [self._store.logs[parts[i]].mapper.to_stored_event(events[i]) for i in order]
        now = self._store.clock.now()
        result = self._store.index.append(
            stored, [parts[i] for i in order], entries, self._store.owner,
            to_micros(now + self._store.lease), to_micros(now),
        )  # fmt: skip
        placed: list[tuple[int, int]] = [(0, 0)] * len(events)
        for index, position in zip(order, result.positions, strict=True):
            placed[index] = (parts[index], position)
        return placed, result

    def _write_around(self, batch: list[Submission], taken: frozenset[UUID]) -> list[Submission]:
        """After a conflict, settle the submissions touching a run whose version another
        writer took, and return the rest, to be written together again: one more
        transaction, where writing every submission alone cost one each.

        On its first try a submission touching a taken version conflicted; after
        a store fault it may have been stored by the try whose reply was lost, so
        it is written alone to tell. When the store named no run of the batch
        (two submissions of the batch took the same version), every submission
        goes alone.
        """
        touching: list[Submission] = []
        rest: list[Submission] = []
        for submission in batch:
            touched = any(event.originator_id in taken for event in submission.events)
            (touching if touched else rest).append(submission)
        if not touching:
            for submission in batch:
                self._write_alone(submission)
            return []
        for submission in touching:
            if submission.tries == 1:
                submission.outcome = CONFLICT
            else:
                self._write_alone(submission)
        return rest

    def _write_alone(self, submission: Submission) -> None:
        try:
            positions, result = self._put(submission.events, submission.entries)
        except IntegrityError:
            if self._already_stored(submission.events):
                submission.positions = []  # stored by an earlier try whose reply was lost
            else:
                submission.outcome = CONFLICT
            return
        submission.positions = positions
        submission.held = result.held
        submission.claimable = result.claimable

    def _already_stored(self, events: list[Any]) -> bool:
        # A commit whose reply was lost (PostgreSQL retries on a dropped
        # connection) comes back as IntegrityError: check whether it was ours.
        for event in events:
            log = self._store.log_of(event.originator_id)
            mapper, recorder = log.mapper, log.recorder
            version = event.originator_version
            stored = recorder.select_events(event.originator_id, gt=version - 1, lte=version)
            mine = mapper.to_stored_event(event)
            if not stored or stored[0].state != mine.state or stored[0].topic != mine.topic:
                return False
        return True
