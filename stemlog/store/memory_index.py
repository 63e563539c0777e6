"""The run index of a ``memory://`` store: rows in a dictionary, due times in a heap.

The rules are :func:`stemlog.store.index.settle`'s; this module only keeps
the rows and answers queries. Callers hold the recorder's lock.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import final

from stemlog.store.index import (
    AppendResult,
    Claimed,
    ClaimRound,
    IndexEntry,
    IndexRow,
    settle,
    touched_ids,
    with_claim,
)


@final
class MemoryIndex:
    """Index rows by run id, with a heap of due times (stale heap entries are skipped)."""

    def __init__(self) -> None:
        self.rows: dict[str, IndexRow] = {}
        self._waiting: dict[str, dict[str, None]] = {}
        self._due: list[tuple[int, str]] = []

    def put(
        self,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        appending: bool,
    ) -> AppendResult:
        """Settle the entries and keep the rows (see :func:`stemlog.store.index.settle`)."""
        existing = {r: row for r in touched_ids(entries) if (row := self.rows.get(r)) is not None}
        settled = settle(entries, existing, owner, claim_until, now, appending=appending)
        for run_id, row in settled.rows.items():
            self._write(run_id, row)
        return AppendResult([], settled.held, settled.claimable)

    def _write(self, run_id: str, row: IndexRow | None) -> None:
        old = self.rows.pop(run_id, None)
        if old is not None and old.waiting_on is not None:
            waiters = self._waiting.get(old.waiting_on)
            if waiters is not None:
                waiters.pop(run_id, None)
                if not waiters:
                    del self._waiting[old.waiting_on]
        if row is None:
            return
        self.rows[run_id] = row
        if row.waiting_on is not None:
            self._waiting.setdefault(row.waiting_on, {})[run_id] = None
        if row.due_at is not None:
            heapq.heappush(self._due, (row.due_at, run_id))
            if len(self._due) > 4 * len(self.rows) + 1024:
                self._due = [item for item in self._due if self._current(item)]
                heapq.heapify(self._due)

    def claim(
        self, owner: str, now: int, claim_until: int, limit: int, serves: Sequence[str]
    ) -> ClaimRound:
        """Claim due rows, earliest first (see :meth:`IndexedRecorder.claim`)."""
        wanted = set(serves)
        claimed: list[Claimed] = []
        kept: list[tuple[int, str]] = []
        while self._due and self._due[0][0] <= now and len(claimed) < limit:
            due_at, run_id = heapq.heappop(self._due)
            row = self.rows.get(run_id)
            if row is None or row.due_at != due_at:
                continue  # a stale heap entry
            if row.served not in wanted:
                kept.append((due_at, run_id))
                continue
            previous = None
            if row.claimed_by is not None and row.claimed_by != owner:
                previous = (row.claimed_by, row.claim_expires or 0)
            self._write(run_id, with_claim(row, owner, claim_until))
            claimed.append(Claimed(run_id, previous, row.version))
        for item in kept:
            heapq.heappush(self._due, item)
        return ClaimRound(claimed, self._next_due(wanted, now))

    def _next_due(self, wanted: set[str], now: int) -> int | None:
        heap = self._due
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        if not heap:
            return None
        top = self.rows[heap[0][1]]
        if top.served in wanted and heap[0][0] > now:
            return heap[0][0]
        live = (row.due_at for row in self.rows.values() if row.served in wanted)
        return min((due for due in live if due is not None and due > now), default=None)

    def _current(self, item: tuple[int, str]) -> bool:
        row = self.rows.get(item[1])
        return row is not None and row.due_at == item[0]

    def renew(self, owner: str, claim_until: int) -> None:
        """Extend every claim ``owner`` holds."""
        for run_id, row in list(self.rows.items()):
            if row.claimed_by == owner:
                self._write(run_id, with_claim(row, owner, claim_until))

    def release_owners(self, owners: Sequence[str]) -> None:
        """Give up every claim of these owners."""
        gone = set(owners)
        for run_id, row in list(self.rows.items()):
            if row.claimed_by in gone:
                self._write(run_id, with_claim(row, None, None))

    def claimers(self) -> list[str]:
        """The owners holding claims."""
        return sorted({row.claimed_by for row in self.rows.values() if row.claimed_by})

    def waiting_on(self, topic: str) -> list[str]:
        """The runs waiting on ``topic``."""
        return list(self._waiting.get(topic, ()))

    def holders(self, run_ids: Sequence[str], now: int) -> dict[str, tuple[str, int]]:
        """The live claims on these runs."""
        found: dict[str, tuple[str, int]] = {}
        for run_id in run_ids:
            row = self.rows.get(run_id)
            if row is not None and row.claimed_by is not None and (row.claim_expires or 0) >= now:
                found[run_id] = (row.claimed_by, row.claim_expires or 0)
        return found
