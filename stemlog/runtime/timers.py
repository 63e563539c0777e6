"""The worker's timers: one due time per run, the earliest first.

A run's due time comes from :func:`stemlog.model.schedule.next_due` of its
state (set by every commit this process makes, by the runs it observes from
other processes, and by the ``timers`` read model on open). The worker
sleeps until the earliest one through the clock and is woken when an earlier
one arrives, so nothing polls.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import final

import anyio


@final
class Timers:
    """Due times by run id, kept in a heap (stale heap entries are skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self.changed = anyio.Event()

    def set(self, run_id: str, due_at: datetime | None) -> None:
        """Fire ``run_id`` at ``due_at`` (``None`` forgets it)."""
        if due_at is None:
            self._due.pop(run_id, None)
            return
        if self._due.get(run_id) == due_at:
            return
        self._due[run_id] = due_at
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due_at, run_id))
        if earliest is None or due_at < earliest:
            self.changed.set()

    def set_earlier(self, run_id: str, due_at: datetime) -> None:
        """Fire ``run_id`` at ``due_at`` unless it is set to fire earlier."""
        current = self._due.get(run_id)
        if current is None or due_at < current:
            self.set(run_id, due_at)

    def pop_due(self, now: datetime) -> list[str]:
        """The runs whose time has come (they are forgotten)."""
        fired: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            due_at, run_id = heapq.heappop(self._heap)
            if self._due.get(run_id) == due_at:
                del self._due[run_id]
                fired.append(run_id)
        return fired

    def earliest(self) -> datetime | None:
        """The next due time, if any (may be a stale entry, which fires harmlessly)."""
        return self._heap[0][0] if self._heap else None

    def reset_changed(self) -> anyio.Event:
        """A fresh event, set when an earlier timer arrives."""
        self.changed = anyio.Event()
        return self.changed
