"""Leases kept in this process: for stores that one worker process serves.

A worker claims a run before driving it, renews its claims with a heartbeat
while it holds them (also through a step longer than the lease), and releases
a claim when the drive ends (completion or suspension). A claim whose holder
stopped renewing expires, and another worker may take the run over; the step
that was running then runs again as its next attempt. PostgreSQL keeps the
same claims in a table (:class:`stemlog.store.postgres.TableLeases`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import final

from stemlog.clock import Clock


@final
class LocalLeases:
    """Claims by owner, kept in this process (memory and SQLite stores).

    Several owners may share one instance: a claim succeeds when nobody holds
    the run, the claimant already does, or the holder's lease has expired.
    """

    def __init__(self, owner: str, duration: float, clock: Clock) -> None:
        self.owner = owner
        self.duration = timedelta(seconds=duration)
        self._clock = clock
        self._claims: dict[str, tuple[str, datetime]] = {}
        self.taken_over: dict[str, tuple[str, datetime]] = {}

    def as_owner(self, owner: str) -> LocalLeases:
        """A view of the same claims for another owner (as a second worker sees them)."""
        other = LocalLeases(owner, self.duration.total_seconds(), self._clock)
        other._claims = self._claims
        return other

    async def claim(self, run_id: str) -> bool:
        now = self._clock.now()
        held = self._claims.get(run_id)
        if held is not None and held[0] != self.owner:
            if held[1] >= now:
                return False
            self.taken_over[run_id] = held
        self._claims[run_id] = (self.owner, now + self.duration)
        return True

    async def release(self, run_id: str) -> None:
        held = self._claims.get(run_id)
        if held is not None and held[0] == self.owner:
            del self._claims[run_id]

    async def renew(self) -> None:
        until = self._clock.now() + self.duration
        for run_id, (owner, _) in self._claims.items():
            if owner == self.owner:
                self._claims[run_id] = (owner, until)

    async def holder(self, run_id: str) -> tuple[str, datetime] | None:
        return (await self.holders([run_id])).get(run_id)

    async def holders(self, run_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        now = self._clock.now()
        return {r: held for r in run_ids if (held := self._claims.get(r)) and held[1] >= now}
