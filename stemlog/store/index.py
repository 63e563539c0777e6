"""The run index: written beside the facts, in the same transaction.

For each run an append touches, the index keeps one row that says

* whether, and from when, a worker must pick the run up (``ready_at``: since
  its start for a run that can move now, the end of a sleep, a deadline, a
  retry or a policy limit; none for a run waiting for outside input);
* which worker holds the run (its *claim*) and until when;
* ``due_at``: when a worker may claim it — ``ready_at`` while nobody holds
  it, the end of the claim while somebody does (so a claim that runs out
  makes the run claimable again: that is how a dead worker's runs are taken
  over);
* which topic the run waits on, which is what ``emit`` reads.

An ended run has no row. Rows are derived from the run's folded state
(:func:`stemlog.model.schedule.ready_at`, :func:`stemlog.model.schedule.waiting_topic`)
and written in the transaction of the facts that produced that state, so the
index can never disagree with the log. Workers claim due rows in batches
(one statement for a batch), renew all their claims with one statement, and
the append that suspends or ends a run gives its claim up.

Two more rules keep a parent waiting on a child from being forgotten: a
child's ending append makes its waiting parent due at once, and a parent
that starts waiting on a child that has already ended is due at once; the
worker that claims it delivers the child's outcome. Both happen inside the
append's transaction, so no crash between two writes can lose them.

:func:`settle` is the rule set in Python (the memory and SQLite stores run it
over the rows an append touches); PostgreSQL runs the same rules in the
store's append function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, final
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from stemlog.clock import to_micros
from stemlog.model.children import CHILD_TOPIC_PREFIX, child_topic
from stemlog.model.run import Run
from stemlog.model.schedule import ready_at, waiting_topic


class ClaimMode(Enum):
    """What an append does to the claim on a run's row."""

    KEEP = "keep"
    """Leave it as it is (a command of a process that does not drive the run)."""
    TAKE = "take"
    """Claim the run for the appending worker if nobody else holds it (a drive's
    commits, or a command whose run this process's worker will drive)."""
    RELEASE = "release"
    """Give up the appending worker's claim (its drive suspended the run)."""
    END = "end"
    """The run ended: its row goes (and with it any claim)."""


@final
@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What one append writes to the index for one run."""

    run_id: str
    version: int
    """The run's version (its last fact) the entry was derived at."""
    served: str
    """``workflow@version``: which workers may claim it (those that registered it)."""
    ready_at: int | None
    """Microseconds since the epoch (see :func:`stemlog.clock.to_micros`)."""
    waiting_on: str | None
    mode: ClaimMode
    waits_for_child: str | None = None
    """The child run this run waits on (due at once if that child has no row: it ended)."""
    wakes_parent: str | None = None
    """An ended run's parent, made due at once if it waits on this run."""

    @classmethod
    def of(cls, run: Run, mode: ClaimMode, now: datetime) -> IndexEntry:
        """The entry of ``run`` as committed; a claim taken for a run that cannot
        move now is a release (whoever claims it when it is due drives it)."""
        state = run.state
        served = served_key(state.workflow, state.workflow_version)
        if state.status.is_terminal:
            return cls(state.run_id, run.version, served, None, None, ClaimMode.END,
                       wakes_parent=state.parent_run_id)  # fmt: skip
        when = ready_at(state)
        if mode is ClaimMode.TAKE and (when is None or when > now):
            mode = ClaimMode.RELEASE
        topic = waiting_topic(state)
        child = None
        if topic is not None and topic.startswith(CHILD_TOPIC_PREFIX):
            child = topic.removeprefix(CHILD_TOPIC_PREFIX)
        return cls(state.run_id, run.version, served, None if when is None else to_micros(when),
                   topic, mode, waits_for_child=child)  # fmt: skip


def served_key(workflow: str, version: int) -> str:
    """The key a worker claims by: the workflow version it registered."""
    return f"{workflow}@{version}"


@final
@dataclass(frozen=True, slots=True)
class IndexRow:
    """One run's row in the index (times in microseconds since the epoch)."""

    run_id: str
    version: int
    served: str
    ready_at: int | None
    due_at: int | None
    claimed_by: str | None
    claim_expires: int | None
    waiting_on: str | None


def due_of(ready: int | None, claimed_by: str | None, expires: int | None) -> int | None:
    """When a row may be claimed: when ready if nobody holds it, else once the claim
    runs out (and the run is ready)."""
    if claimed_by is None or expires is None:
        return ready
    return expires if ready is None else max(ready, expires)


@final
@dataclass(frozen=True, slots=True)
class Settled:
    """What :func:`settle` decided for one append."""

    rows: Mapping[str, IndexRow | None]
    """The rows to write (``None``: delete)."""
    held: frozenset[str]
    """Runs the appending worker holds after the append (of those it asked to take)."""
    claimable: bool
    """Whether some row the append wrote is due now and unclaimed (wake the workers)."""


def settle(
    entries: Sequence[IndexEntry],
    existing: Mapping[str, IndexRow],
    owner: str | None,
    claim_until: int,
    now: int,
    *,
    appending: bool = True,
) -> Settled:
    """Apply an append's entries to the rows they touch.

    ``existing`` holds the stored rows of the entries' runs, their children
    and their parents (a missing run has no row). Without an append
    (``appending=False``: a drive giving its claim up, a backfill), an entry
    older than its run's row changes only the claim, and an entry never
    brings back the row of a run that has none unless ``appending`` — the run
    may have ended since that state.
    """
    rows: dict[str, IndexRow | None] = dict(existing)
    held: set[str] = set()
    for entry in entries:
        if entry.mode is ClaimMode.END:
            rows[entry.run_id] = None
            parent = rows.get(entry.wakes_parent) if entry.wakes_parent else None
            if parent is not None and parent.waiting_on == child_topic(entry.run_id):
                rows[parent.run_id] = _made_due(parent, now)
            continue
        old = rows.get(entry.run_id)
        if old is None and not appending:
            continue
        claimed_by = None if old is None else old.claimed_by
        expires = None if old is None else old.claim_expires
        if entry.mode is ClaimMode.TAKE and owner is not None:
            if claimed_by is None or claimed_by == owner or (expires or 0) < now:
                claimed_by, expires = owner, claim_until
                held.add(entry.run_id)
        elif entry.mode is ClaimMode.RELEASE and claimed_by is not None and claimed_by == owner:
            claimed_by, expires = None, None
        if old is not None and old.version > entry.version:
            # Another writer moved the run on since this state: only the claim changes.
            rows[entry.run_id] = with_claim(old, claimed_by, expires)
            continue
        ready = entry.ready_at
        if entry.waits_for_child is not None and rows.get(entry.waits_for_child) is None:
            ready = now  # the child ended before this run waited on it
        rows[entry.run_id] = IndexRow(entry.run_id, entry.version, entry.served, ready,
                                      due_of(ready, claimed_by, expires), claimed_by, expires,
                                      entry.waiting_on)  # fmt: skip
    changed = {run_id: row for run_id, row in rows.items() if existing.get(run_id) != row}
    claimable = any(
        row is not None and row.claimed_by is None and row.due_at is not None
        and row.due_at <= now for row in changed.values()
    )  # fmt: skip
    return Settled(changed, frozenset(held), claimable)


def _made_due(row: IndexRow, now: int) -> IndexRow:
    ready = now if row.ready_at is None else min(row.ready_at, now)
    due = due_of(ready, row.claimed_by, row.claim_expires)
    return IndexRow(row.run_id, row.version, row.served, ready, due, row.claimed_by,
                    row.claim_expires, row.waiting_on)  # fmt: skip


def with_claim(row: IndexRow, claimed_by: str | None, expires: int | None) -> IndexRow:
    """The row with another claim (and the due time that follows from it)."""
    return IndexRow(row.run_id, row.version, row.served, row.ready_at,
                    due_of(row.ready_at, claimed_by, expires), claimed_by, expires,
                    row.waiting_on)  # fmt: skip


def touched_ids(entries: Sequence[IndexEntry]) -> list[str]:
    """The runs whose rows :func:`settle` needs: the entries', their children, parents."""
    ids: dict[str, None] = {}
    for entry in entries:
        ids[entry.run_id] = None
        if entry.waits_for_child is not None:
            ids[entry.waits_for_child] = None
        if entry.wakes_parent is not None:
            ids[entry.wakes_parent] = None
    return list(ids)


@final
@dataclass(frozen=True, slots=True)
class Claimed:
    """A run a worker just claimed; ``previous`` holds the claim that had run out."""

    run_id: str
    previous: tuple[str, int] | None = None
    """``(owner, claim_expires)`` of the worker whose claim had run out, if any."""
    version: int = 0
    """The run's version its row was at when claimed: a commit of an earlier (or the
    same) version that gave a claim up happened before this claim, whatever order
    the worker hears of the two in."""


@final
@dataclass(frozen=True, slots=True)
class ClaimRound:
    """What one claim statement returned."""

    claimed: list[Claimed]
    next_due: int | None
    """When the earliest row of these workflow versions that nobody may claim yet is due."""


@final
@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append returned: the facts' positions and the claims it settled."""

    positions: list[int]
    held: frozenset[str]
    claimable: bool


class AppendConflict(IntegrityError):
    """An append found a run's version taken: another writer appended to it first.

    ``run_ids`` are the runs whose versions were taken, as far as the store can
    tell (empty: it cannot); the other facts of the batch were not at fault.
    """

    def __init__(self, message: str, run_ids: frozenset[UUID]) -> None:
        super().__init__(message)
        self.run_ids = run_ids


class VersionReader(Protocol):
    """The part of an eventsourcing recorder :func:`taken_runs` needs."""

    def select_events(
        self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None,
        desc: bool = False, limit: int | None = None,
    ) -> Sequence[StoredEvent]: ...  # fmt: skip


def taken_runs(recorder: VersionReader, stored_events: Sequence[StoredEvent]) -> frozenset[UUID]:
    """The runs among ``stored_events`` whose first version is already stored.

    For stores without round trips (SQLite, memory), after an append failed on a
    taken version: a run's facts of one append have consecutive versions, so a
    run that conflicted has its first one taken. Two appends of one batch that
    both took the same version show no stored fact: not named.
    """
    first: dict[UUID, int] = {}
    for event in stored_events:
        first.setdefault(UUID(str(event.originator_id)), event.originator_version)
    return frozenset(
        uuid for uuid, version in first.items()
        if recorder.select_events(uuid, gt=version - 1, lte=version, limit=1)
    )  # fmt: skip


class IndexedRecorder(Protocol):
    """A recorder that appends facts with their index entries in one transaction,
    and answers the index's questions (blocking calls)."""

    def append(
        self,
        stored_events: Sequence[object],
        partitions: Sequence[int],
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
    ) -> AppendResult:
        """Insert the stored events, each into its partition (``partitions``: ascending,
        one per event), and settle the entries, atomically; the positions come back
        in the events' order.

        Raises:
            AppendConflict: a run's version was taken (another writer appended to
                it first); nothing is written. It names the runs that conflicted
                when the store can tell, so the rest of a batch is written again
                together.
        """
        ...

    def put_index(
        self,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        insert: bool = False,
    ) -> AppendResult:
        """Settle entries without facts: a drive that ended without writing gives its
        claim up, or (``insert``) a backfill writes rows of runs that have none."""
        ...

    def claim(
        self, owner: str, now: int, claim_until: int, limit: int, serves: Sequence[str]
    ) -> ClaimRound:
        """Claim up to ``limit`` due rows of the workflow versions this worker serves,
        earliest first, skipping rows other workers are claiming; one statement."""
        ...

    def renew(self, owner: str, claim_until: int) -> None:
        """Extend every claim ``owner`` holds (the heartbeat; one statement)."""
        ...

    def release_owners(self, owners: Sequence[str]) -> None:
        """Give up every claim of these owners (a worker closing, or dead ones)."""
        ...

    def claimers(self) -> list[str]:
        """The owners holding claims."""
        ...

    def waiting_on(self, topic: str) -> list[str]:
        """The runs waiting on ``topic`` as of the last commit."""
        ...

    def holders(self, run_ids: Sequence[str], now: int) -> dict[str, tuple[str, int]]:
        """The live claims on these runs: ``(owner, claim_expires)``."""
        ...

    def index_rows(self) -> list[IndexRow]:
        """Every row (for tests and audits)."""
        ...

    def index_backfilled(self) -> bool:
        """Whether the index holds every unfinished run (it was created on an empty
        log, or filled from the log since)."""
        ...

    def mark_backfilled(self) -> None:
        """Record that the index holds every unfinished run."""
        ...

    def close_writer(self) -> None:
        """Close what appends hold of their own (the store closes)."""
        ...
