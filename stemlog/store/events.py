"""The store: stemlog's eventsourcing application behind an async API.

Only this package calls eventsourcing's (blocking) recorders; it does it in
worker threads through a capacity limiter, or inline where a call is pure CPU
work (``memory://``).

Writes are *group commits*: facts submitted by many runs while a commit is
in progress are written together in the next one (one transaction,
one fsync), which is what makes many concurrent runs cheap on SQLite and
PostgreSQL. A batch is atomic; when it loses an optimistic-concurrency race,
each submission is retried on its own so only the run that conflicted is
told so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast, final
from uuid import UUID

import anyio
from anyio import CapacityLimiter
from eventsourcing.persistence import ApplicationRecorder, TrackingRecorder

from stemlog.clock import Clock, SystemClock, from_micros, to_micros
from stemlog.errors import (
    InvalidPayloadError,
    StoreUnavailableError,
    StoreWriteError,
    UnknownRunError,
)
from stemlog.model.facts import AnyFact, RunSnapshot, check_fields
from stemlog.model.fold import evolve, fold
from stemlog.model.ids import parse_run_id
from stemlog.model.run import Run
from stemlog.model.state import RunState
from stemlog.model.state_codec import state_from_json, state_to_json
from stemlog.store.appender import Appender
from stemlog.store.base import (
    Appended,
    AppendListener,
    Backend,
    LoggedFact,
    LogReader,
    Share,
    StoredRow,
    UnreadableFact,
)
from stemlog.store.faults import Fault, StoreHealth, classify, describe
from stemlog.store.group_commit import CONFLICT, GroupCommit, Submission, Write
from stemlog.store.index import (
    AppendResult,
    ClaimMode,
    ClaimRound,
    IndexedRecorder,
    IndexEntry,
)
from stemlog.store.log import RunLog, partition_name
from stemlog.store.transcoder import decode_notification, decode_page

T = TypeVar("T")
R = TypeVar("R", bound=TrackingRecorder)

_BACKOFF = 0.05
"""The first wait before trying an unavailable store again (it doubles, up to 1.6 s)."""


ClaimChoice = ClaimMode | Callable[[Run], ClaimMode]
"""What a commit does to the claims on its runs: one mode, or one per run."""


@final
class RunStore:
    """Loads runs and appends their facts, batching concurrent commits."""

    def __init__(
        self, backend: Backend, *, store_timeout: float = 30.0, clock: Clock | None = None
    ) -> None:
        self.backend = backend
        self.store_timeout = store_timeout
        self.clock: Clock = clock or SystemClock()
        self.where = backend.where
        self.health = StoreHealth(self.where)
        self.log = RunLog(env=dict(backend.env))
        self.logs: list[RunLog] = [self.log]
        """One eventsourcing application per partition of the log (partition 0 first)."""
        try:
            self.partitions = backend.partition_count(self.log)
            for number in range(1, self.partitions):
                env = backend.partition_env(number, self.log)
                self.logs.append(RunLog(env=env, name=partition_name(number)))
            self.index = cast(IndexedRecorder, self.log.recorder)
            backend.prepare(self)
            self.catalog = backend.catalog(self)
        except BaseException:
            self.close()
            raise
        """The run index, written with every append (see :mod:`stemlog.store.index`)."""
        self.owner: str | None = None
        """The worker whose claims this process's appends take and give up."""
        self.lease = timedelta(seconds=30)
        self.limiter = CapacityLimiter(4)
        """Threads for reads and claims."""
        self.write_limiter = CapacityLimiter(1)
        """The thread for appends (one at a time: group commit), apart from the readers."""
        self._appender = Appender(self)
        self._group = GroupCommit(self._appender.write, self._write_in_thread, self._announce,
                                  inline_ok=backend.commits_inline_when_alone)  # fmt: skip
        self._listeners: list[AppendListener] = []
        self._local: set[tuple[int, int]] | None = None
        """``(partition, position)`` of this process's commits, kept only while a tail
        follows the log."""

    # -- reading ------------------------------------------------------------

    async def load(self, run_id: str) -> Run:
        """The run as stored now.

        Raises:
            UnknownRunError: no such run.
        """
        uuid = parse_run_id(run_id)
        run = await self.blocking(self._get, uuid)
        if run is None:
            raise UnknownRunError(str(run_id))
        return run

    def _get(self, uuid: UUID) -> Run | None:
        """The run from its latest snapshot and the facts after it, folded by stemlog."""
        try:
            state = self._snapshot_state(uuid)
            facts = self._read_facts(uuid, None if state is None else state.position)
            if state is None:
                if not facts:
                    return None
                state = fold(facts)
            else:
                for fact in facts:
                    evolve(state, fact)
        except Exception as error:
            if classify(error) is not None:
                raise
            raise InvalidPayloadError(
                f"history of run {uuid}", f"it cannot be read: {describe(error)}"
            ) from error
        return Run.restore(state)

    def partition_of(self, uuid: UUID) -> int:
        """The partition a run lives in: its id as an integer, modulo the partitions."""
        return uuid.int % self.partitions

    def log_of(self, uuid: UUID) -> RunLog:
        return self.logs[uuid.int % self.partitions]

    def _snapshot_state(self, uuid: UUID) -> RunState | None:
        snapshots = self.log_of(uuid).snapshots
        if snapshots is None:
            return None
        latest = list(snapshots.get(uuid, desc=True, limit=1))
        if not latest or not isinstance(latest[0], RunSnapshot):
            return None
        return state_from_json(latest[0].state)

    def _read_facts(self, uuid: UUID, after: int | None) -> list[AnyFact]:
        stored = self.log_of(uuid).recorder.select_events(uuid, gt=after)
        return [decode_notification(event) for event in stored]

    async def fast_forward(self, run: Run) -> Run:
        """The run with the facts appended after its version applied (one read).

        Raises:
            InvalidPayloadError: a fact after it cannot be read or folded.
        """
        uuid = run.id

        def read() -> list[AnyFact]:
            try:
                return self._read_facts(uuid, run.version)
            except Exception as error:
                if classify(error) is not None:
                    raise
                raise InvalidPayloadError(
                    f"history of run {uuid}", f"it cannot be read: {describe(error)}"
                ) from error

        run.fast_forward(await self.blocking(read))
        return run

    async def snapshot(self, run: Run) -> None:
        """Keep the run's state as a snapshot at its version (a later load starts there)."""
        snapshots = self.log_of(run.id).snapshots
        if snapshots is None or run.pending_events:
            return
        make: Any = RunSnapshot  # an eventsourcing event: a frozen dataclass of these fields
        snapshot = make(
            originator_id=run.id, originator_version=run.version,
            timestamp=run.modified_on, state=state_to_json(run.state),
        )  # fmt: skip
        await self.blocking(snapshots.put, [snapshot])

    async def facts(self, run_id: str) -> list[AnyFact]:
        """Every fact of a run, in order (empty for an unknown run)."""
        uuid = parse_run_id(run_id)

        def read() -> list[AnyFact]:
            try:
                events = self.log_of(uuid).events.get(uuid)
                facts = [cast("AnyFact", fact) for fact in events]
                for fact in facts:
                    check_fields(type(fact), fact.__dict__)
                return facts
            except Exception as error:
                if classify(error) is not None:
                    raise
                raise InvalidPayloadError(
                    f"history of run {uuid}", f"it cannot be read: {describe(error)}"
                ) from error

        return await self.blocking(read)

    def head(self, partition: int = 0) -> int:
        """The position of the last fact in a partition of the log (blocking)."""
        return self.logs[partition].recorder.max_notification_id() or 0

    def read(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        partition: int = 0,
        share: Share | None = None,
    ) -> list[LoggedFact]:
        """Facts of a partition from position ``start`` on, in log order (blocking);
        with a ``share``, only its runs' facts among them (the others are not decoded).

        A fact that cannot be decoded comes back as an
        :class:`~stemlog.store.base.UnreadableFact` in its place.
        """
        rows = self.backend.read_rows(self.logs[partition], start, limit, stop, share)
        return decode_page(rows, partition, self.partitions, _unreadable)

    def partition_recorder(self, number: int) -> ApplicationRecorder:
        """The eventsourcing recorder of one partition."""
        return self.logs[number].recorder

    def partition(self, number: int) -> LogReader:
        """A reader of one partition (what a projector follows)."""
        return _PartitionReader(self, number)

    # -- the run index ------------------------------------------------------------------

    def _claim_window(self) -> tuple[int, int]:
        now = self.clock.now()
        return to_micros(now), to_micros(now + self.lease)

    async def claim(self, limit: int, serves: Sequence[str]) -> ClaimRound:
        """Claim up to ``limit`` due runs of these workflow versions for :attr:`owner`."""
        assert self.owner is not None, "claims are taken by a worker"
        now, until = self._claim_window()
        return await self.blocking(self.index.claim, self.owner, now, until, limit, serves)

    async def renew(self) -> None:
        """Extend every claim :attr:`owner` holds by a full lease (one statement)."""
        assert self.owner is not None, "claims are renewed by a worker"
        await self.blocking(self.index.renew, self.owner, self._claim_window()[1])

    async def release_owners(self, owners: Sequence[str]) -> None:
        """Give up every claim of these owners."""
        await self.blocking(self.index.release_owners, list(owners))

    async def claimers(self) -> list[str]:
        """The owners holding claims."""
        return await self.blocking(self.index.claimers)

    async def waiting_on(self, topic: str) -> list[str]:
        """The runs waiting on ``topic`` as of the last commit (no read model involved)."""
        return await self.blocking(self.index.waiting_on, topic)

    async def holders(self, run_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """The live claims on these runs: ``(owner, until when)``."""
        if not run_ids:
            return {}
        now = to_micros(self.clock.now())
        found = await self.blocking(self.index.holders, list(run_ids), now)
        return {run_id: (owner, from_micros(until)) for run_id, (owner, until) in found.items()}

    async def settle(self, run: Run, mode: ClaimMode = ClaimMode.RELEASE) -> AppendResult:
        """Write the run's index row from its state without appending (a drive that
        ended without a write gives its claim up this way)."""
        now = self.clock.now()
        entry = IndexEntry.of(run, mode, now)
        until = to_micros(now + self.lease)
        return await self.blocking(self.index.put_index, [entry], self.owner, until,
                                   to_micros(now))  # fmt: skip

    def backfill_index(self, run_ids: Sequence[str]) -> int:
        """Fill the index from these runs' stored states, once (blocking): a store
        written before the index existed gets its rows. Returns the rows written."""
        if self.index.index_backfilled():
            return 0
        now = self.clock.now()
        entries: list[IndexEntry] = []
        for run_id in run_ids:
            run = self._get(parse_run_id(run_id))
            if run is not None and not run.state.status.is_terminal:
                entries.append(IndexEntry.of(run, ClaimMode.KEEP, now))
        for start in range(0, len(entries), 500):
            self.index.put_index(entries[start : start + 500], None, 0, to_micros(now),
                                 insert=True)  # fmt: skip
        self.index.mark_backfilled()
        return len(entries)

    def tracking_recorder(self, recorder_class: type[R]) -> R:
        """A tracking recorder (a read model's tables) in the log's own database."""
        return cast(R, self.log.factory.tracking_recorder(recorder_class))

    async def blocking(
        self, function: Callable[..., T], *args: Any, limiter: CapacityLimiter | None = None
    ) -> T:
        """Run a blocking store call: in a worker thread, or inline for ``memory://``
        (in-memory calls are pure CPU work, so a thread would only add a hop).

        While the store is away (a restarting database, a locked file) the call
        is tried again with backoff, up to ``store_timeout``.

        Raises:
            StoreUnavailableError: the store stayed away that long.
            StoreWriteError: the store refused a write (full disk, read-only).
        """
        deadline: float | None = None
        for attempt in range(1_000_000):
            try:
                if self.backend.inline_calls:
                    result = function(*args)
                else:
                    result = await anyio.to_thread.run_sync(
                        function, *args, limiter=limiter or self.limiter
                    )
            except Exception as error:
                fault = classify(error)
                if fault is None:
                    raise
                if fault is Fault.REFUSING:
                    raise StoreWriteError(self.where, describe(error)) from error
                self.health.lost(error)
                await anyio.to_thread.run_sync(self.backend.heal, self.log, limiter=self.limiter)
                now = anyio.current_time()
                deadline = now + self.store_timeout if deadline is None else deadline
                if now >= deadline:
                    raise StoreUnavailableError(
                        self.where, describe(error), self.store_timeout
                    ) from error
                await anyio.sleep(min(deadline - now, _BACKOFF * 2 ** min(attempt, 5)))
                continue
            if self.health.away:
                self.health.reached()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # -- commits --------------------------------------------------------------

    def add_listener(self, listener: AppendListener) -> None:
        """Call ``listener`` (in the event loop) with the facts of every commit."""
        self._listeners.append(listener)

    def track_local(self, on: bool = True) -> None:
        """Remember the positions of this process's commits from now on (a tail follows),
        or (``on=False``) stop and forget them."""
        if not on:
            self._local = None
        elif self._local is None:
            self._local = set()

    def take_local(self, partition: int, position: int) -> bool:
        """Whether this process committed the fact at ``position`` (forgets it)."""
        key = (partition, position)
        if self._local is not None and key in self._local:
            self._local.discard(key)
            return True
        return False

    def forget_local_through(self, partition: int, position: int) -> None:
        """Forget a partition's local positions up to ``position`` (a tail read past them)."""
        if self._local:
            self._local = {k for k in self._local if k[0] != partition or k[1] > position}

    def serve_claims(self, owner: str, lease: float) -> None:
        """Take and give up claims as worker ``owner`` from now on (claims last ``lease`` s)."""
        self.owner = owner
        self.lease = timedelta(seconds=lease)

    async def commit(self, *runs: Run, claim: ClaimChoice = ClaimMode.KEEP) -> bool:
        """Append the pending facts of ``runs`` atomically and durably, with their rows
        of the run index (``claim`` says what happens to the claims on them), in one
        transaction with whatever other runs commit at the same moment
        (:mod:`stemlog.store.group_commit`).

        Returns:
            ``False`` when another writer appended to one of the runs first;
            the run objects are then consumed and must be reloaded.
        """
        events: list[Any] = []
        for run in runs:
            events.extend(run.collect_events())
        if not events:
            return True
        modes = [claim if isinstance(claim, ClaimMode) else claim(run) for run in runs]
        submission = Submission(runs, events, modes)
        await self._group.submit(submission)
        if submission.outcome is CONFLICT:
            return False
        if isinstance(submission.outcome, BaseException):
            raise submission.outcome
        return True

    async def _write_in_thread(self, write: Write, batch: list[Submission]) -> None:
        await self.blocking(write, batch, limiter=self.write_limiter)

    def _announce(self, batch: list[Submission]) -> None:
        facts: list[LoggedFact] = []
        runs: dict[str, Run] = {}
        claims: dict[str, bool] = {}
        claimable = False
        for submission in batch:
            if submission.outcome is None and submission.positions is not None:
                stored = submission.positions  # empty: stored by an earlier try
                if stored:
                    facts.extend(
                        LoggedFact(position, event, partition, self.partitions)
                        for (partition, position), event in zip(stored, submission.events,
                                                                strict=True)
                    )  # fmt: skip
                if self._local is not None:
                    self._local.update(submission.positions)
                runs.update({run.state.run_id: run for run in submission.runs})
                for entry in submission.entries:
                    if entry.mode is not ClaimMode.KEEP:
                        claims[entry.run_id] = entry.run_id in submission.held
                claimable = claimable or submission.claimable
        if facts:
            appended = Appended(facts, runs, local=True, claims=claims, claimable=claimable)
            for listener in self._listeners:
                listener(appended)

    def close(self) -> None:
        """Close the database connections."""
        index = getattr(self, "index", None)
        if index is not None:
            index.close_writer()
        for log in reversed(self.logs):
            log.close()


def _unreadable(row: StoredRow, error: Exception) -> UnreadableFact:
    _, run_id, version, topic, _ = row
    uuid = run_id if isinstance(run_id, UUID) else UUID(run_id)
    return UnreadableFact(uuid, version, topic, describe(error))


@final
class _PartitionReader:
    """One partition of a store's log, as a :class:`~stemlog.store.base.LogReader`."""

    def __init__(self, store: RunStore, partition: int) -> None:
        self._store = store
        self._partition = partition

    def head(self) -> int:
        return self._store.head(self._partition)

    def read(
        self, start: int, limit: int, stop: int | None = None, share: Share | None = None
    ) -> list[LoggedFact]:
        return self._store.read(start, limit, stop, self._partition, share)
