"""Leases: which worker executes a run, until when.

A worker claims a run before driving it, renews its claims with a heartbeat
while it holds them (also through a step longer than the lease), and releases
a claim when the drive ends (completion or suspension). A claim whose holder
stopped renewing expires, and another worker takes the run over; the step
that was running then runs again as its next attempt.

* :class:`LocalLeases` — one worker per store (memory, SQLite): claims live in
  the worker's process (SQLite refuses a second worker process, see
  :mod:`stemlog.store.worker_lock`).
* :class:`TableLeases` — PostgreSQL: claims are rows of ``stemlog_leases``,
  taken with one atomic upsert, so any number of worker processes share runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, final

from projections.views.schema import micros, moment
from stemlog.clock import Clock
from stemlog.store.events import RunStore

_CLAIM = (
    "INSERT INTO {leases} AS l (run_id, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE l.owner = excluded.owner OR l.expires_at < ? RETURNING owner"
)


class Leases(Protocol):
    """What a worker needs from a lease store."""

    owner: str
    duration: timedelta

    async def claim(self, run_id: str) -> bool:
        """Take (or keep) the run for this worker; ``False`` when another holds it."""
        ...

    async def release(self, run_id: str) -> None:
        """Give the run up."""
        ...

    async def renew(self) -> None:
        """Extend every claim this worker holds (the heartbeat)."""
        ...

    async def holder(self, run_id: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` of a live claim on the run, if any."""
        ...

    async def holders(self, run_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        """The live claims on these runs."""
        ...


@final
class LocalLeases:
    """Claims kept in this process (one worker per store)."""

    def __init__(self, owner: str, duration: float, clock: Clock) -> None:
        self.owner = owner
        self.duration = timedelta(seconds=duration)
        self._clock = clock
        self._held: dict[str, datetime] = {}

    async def claim(self, run_id: str) -> bool:
        self._held[run_id] = self._clock.now() + self.duration
        return True

    async def release(self, run_id: str) -> None:
        self._held.pop(run_id, None)

    async def renew(self) -> None:
        until = self._clock.now() + self.duration
        for run_id in self._held:
            self._held[run_id] = until

    async def holder(self, run_id: str) -> tuple[str, datetime] | None:
        until = self._held.get(run_id)
        return None if until is None else (self.owner, until)

    async def holders(self, run_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        return {r: (self.owner, self._held[r]) for r in run_ids if r in self._held}


@final
class TableLeases:
    """Claims as rows of the store's ``stemlog_leases`` table (PostgreSQL)."""

    def __init__(self, owner: str, duration: float, clock: Clock, store: RunStore, view: Any):
        self.owner = owner
        self.duration = timedelta(seconds=duration)
        self._clock = clock
        self._store = store
        self._view = view
        self._held: set[str] = set()

    def _execute(self, template: str, params: tuple[Any, ...]) -> list[Any]:
        with self._view.transaction(commit=True) as cursor:
            cursor.execute(self._view.render(template), params)
            return list(cursor.fetchall()) if cursor.description else []

    async def claim(self, run_id: str) -> bool:
        now = self._clock.now()
        params = (run_id, self.owner, micros(now + self.duration), micros(now))
        rows = await self._store.blocking(self._execute, _CLAIM, params)
        if rows:
            self._held.add(run_id)
        return bool(rows)

    async def release(self, run_id: str) -> None:
        self._held.discard(run_id)
        sql = "DELETE FROM {leases} WHERE run_id = ? AND owner = ?"
        await self._store.blocking(self._execute, sql, (run_id, self.owner))

    async def renew(self) -> None:
        if not self._held:
            return
        until = micros(self._clock.now() + self.duration)
        sql = "UPDATE {leases} SET expires_at = ? WHERE owner = ?"
        await self._store.blocking(self._execute, sql, (until, self.owner))

    async def holder(self, run_id: str) -> tuple[str, datetime] | None:
        return (await self.holders([run_id])).get(run_id)

    async def holders(self, run_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        sql = f"SELECT * FROM {{leases}} WHERE run_id IN ({marks}) AND expires_at >= ?"
        params = (*run_ids, micros(self._clock.now()))
        rows = await self._store.blocking(self._execute, sql, params)
        found: dict[str, tuple[str, datetime]] = {}
        for row in rows:
            expires_at = moment(row["expires_at"])
            assert expires_at is not None
            found[str(row["run_id"])] = (str(row["owner"]), expires_at)
        return found
