"""The in-process store (``memory://``): eventsourcing's POPO recorders.

Everything lives in this process: no other process can write, so there is no
tail to follow, the run index is a dictionary beside the events, and store
calls run on the event loop (they are pure CPU work).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import final
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from stemlog.store.base import (
    Hints,
    Leadership,
    Share,
    SoleLeader,
    StoreCore,
    StoredRow,
    no_lock,
    rows_of_notifications,
)
from stemlog.store.catalog import Catalog, MemoryCatalog
from stemlog.store.index import (
    AppendConflict,
    AppendResult,
    ClaimRound,
    IndexEntry,
    IndexRow,
    taken_runs,
)
from stemlog.store.memory_index import MemoryIndex


class IndexedPOPORecorder(POPOApplicationRecorder):
    """eventsourcing's in-memory recorder with the run index beside its events
    (:class:`~stemlog.store.index.IndexedRecorder`), reading a run's facts after
    a version in the time of those facts (eventsourcing scans them all: a resume
    of a long run would cost its history)."""

    def __init__(self) -> None:
        super().__init__()
        self.index = MemoryIndex()

    def append(
        self,
        stored_events: Sequence[StoredEvent],
        partitions: Sequence[int],
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
    ) -> AppendResult:
        try:
            with self._database_lock:
                positions = self._insert_events(stored_events) or []
                settled = self.index.put(entries, owner, claim_until, now, appending=True)
        except IntegrityError as error:
            raise AppendConflict(str(error), taken_runs(self, stored_events)) from error
        return AppendResult(list(positions), settled.held, settled.claimable)

    def put_index(
        self,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        insert: bool = False,
    ) -> AppendResult:
        with self._database_lock:
            return self.index.put(entries, owner, claim_until, now, appending=insert)

    def claim(
        self, owner: str, now: int, claim_until: int, limit: int, serves: Sequence[str]
    ) -> ClaimRound:
        with self._database_lock:
            return self.index.claim(owner, now, claim_until, limit, serves)

    def renew(self, owner: str, claim_until: int) -> None:
        with self._database_lock:
            self.index.renew(owner, claim_until)

    def release_owners(self, owners: Sequence[str]) -> None:
        with self._database_lock:
            self.index.release_owners(owners)

    def claimers(self) -> list[str]:
        with self._database_lock:
            return self.index.claimers()

    def waiting_on(self, topic: str) -> list[str]:
        with self._database_lock:
            return self.index.waiting_on(topic)

    def holders(self, run_ids: Sequence[str], now: int) -> dict[str, tuple[str, int]]:
        with self._database_lock:
            return self.index.holders(run_ids, now)

    def index_rows(self) -> list[IndexRow]:
        with self._database_lock:
            return list(self.index.rows.values())

    def index_backfilled(self) -> bool:
        return True  # a memory store starts empty

    def mark_backfilled(self) -> None:
        """Nothing to record."""

    def close_writer(self) -> None:
        """Appends use the store's own connections: nothing of their own to close."""

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        if desc or lte is not None or limit is not None:
            return super().select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        with self._database_lock:
            index = self._stored_events_index[str(originator_id)]
            version = (gt or 0) + 1  # a run's versions run 1, 2, 3, ... without gaps
            found: list[StoredEvent] = []
            while version in index:
                found.append(self._stored_events[index[version]])
                version += 1
            return found


class IndexedPOPOFactory(POPOFactory):
    """eventsourcing's in-memory factory with :class:`IndexedPOPORecorder`."""

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return IndexedPOPORecorder()

    def application_recorder(self) -> ApplicationRecorder:
        return IndexedPOPORecorder()


_ENV = {"PERSISTENCE_MODULE": f"{__name__}:IndexedPOPOFactory"}


@final
@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """``memory://``: for tests and experiments; gone when the process ends."""

    url: str = "memory://"
    name: str = "memory"
    env: dict[str, str] = field(default_factory=lambda: dict(_ENV))
    inline_calls: bool = True
    commits_inline_when_alone: bool = True

    @property
    def where(self) -> str:
        return "memory://"

    def exists(self) -> bool:
        return True

    def read_rows(
        self,
        log: Application[UUID],
        start: int,
        limit: int,
        stop: int | None,
        share: Share | None = None,
    ) -> list[StoredRow]:
        return rows_of_notifications(log, start, limit, stop, share)

    def schema_lock(self) -> AbstractContextManager[None]:
        return no_lock()

    def partition_count(self, log: Application[UUID]) -> int:
        return 1  # partitions are for PostgreSQL: one writer lock is all there is here

    def partition_env(self, number: int, log: Application[UUID]) -> dict[str, str]:
        raise AssertionError("a store of one partition")  # pragma: no cover

    def prepare(self, store: StoreCore) -> None:
        """Nothing more to make in memory."""

    def heal(self, log: Application[UUID]) -> None:
        """Nothing to heal: no connections are kept across a fault."""

    def catalog(self, store: StoreCore) -> Catalog:
        return MemoryCatalog()  # asked once per store: it lives as long as the store

    def hints(self, store: StoreCore) -> Hints | None:
        return None  # no other process can write

    def leadership(self, store: StoreCore) -> Leadership:
        return SoleLeader()

    @property
    def tail_interval(self) -> float | None:
        return None
