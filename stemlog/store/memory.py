"""The in-process store (``memory://``): eventsourcing's POPO recorders.

Everything lives in this process: no other process can write, so there is no
tail to follow, leases stay here, and store calls run on the event loop (they
are pure CPU work).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import final
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import AggregateRecorder, ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from stemlog.clock import Clock
from stemlog.store.base import (
    AppendListener,
    Leases,
    LogTail,
    NoGuard,
    StoreCore,
    StoredRow,
    WorkerGuard,
    no_lock,
    rows_of_notifications,
)
from stemlog.store.leases import LocalLeases


class IndexedPOPORecorder(POPOApplicationRecorder):
    """eventsourcing's in-memory recorder, reading a run's facts after a version
    in the time of those facts (eventsourcing scans them all: a resume of a long
    run would cost its history)."""

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
            return super().select_events(
                originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
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
        self, log: Application[UUID], start: int, limit: int, stop: int | None
    ) -> list[StoredRow]:
        return rows_of_notifications(log, start, limit, stop)

    def schema_lock(self) -> AbstractContextManager[None]:
        return no_lock()

    def prepare(self, log: Application[UUID]) -> None:
        """No side tables in memory."""

    def worker_guard(self) -> WorkerGuard:
        return NoGuard()

    def leases(self, owner: str, duration: float, clock: Clock, store: StoreCore) -> Leases:
        return LocalLeases(owner, duration, clock)

    def lease_reader(self, clock: Clock, store: StoreCore) -> Leases | None:
        return None

    def tail(self, store: StoreCore, listener: AppendListener) -> LogTail | None:
        return None
