"""The in-process store (``memory://``): eventsourcing's POPO recorders.

Everything lives in this process: no other process can write, so there is no
tail to follow, leases stay here, and store calls run on the event loop (they
are pure CPU work).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import final
from uuid import UUID

from eventsourcing.application import Application

from stemlog.clock import Clock
from stemlog.store.base import (
    AppendListener,
    Leases,
    LogTail,
    NoGuard,
    StoreCore,
    WorkerGuard,
    no_lock,
)
from stemlog.store.leases import LocalLeases

_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


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
