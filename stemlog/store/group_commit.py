"""Group commit: the facts of many runs committing at the same moment go into one
transaction (one fsync, one round trip), which is what makes many concurrent
runs cheap on SQLite and PostgreSQL.

There is no committer task: the first submitter finding no write under way
becomes the leader; it lets the other ready tasks run once (so their commits
queue up), then writes everything queued in one transaction. Submissions
arriving meanwhile wait, and the next of them leads the following write. A
lone submission on a backend that allows it is written on the event loop (a
thread hop would cost more than it saves). A started write is shielded from
cancellation, so it always finishes and is reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, final

import anyio
from anyio import CancelScope

from stemlog.model.run import Run
from stemlog.store.faults import classify
from stemlog.store.index import ClaimMode, IndexEntry

CONFLICT = object()
"""A submission's outcome when another writer appended to one of its runs first."""

_QUIET_BEFORE_INLINE = 3
"""Lone writes in a thread that nobody joined before a lone write may go on the event loop."""
_PROBE_EVERY = 16
"""While writing on the event loop, one lone write in this many still goes through a
thread, so that other writers can show up and join it."""


@dataclass(slots=True)
class Submission:
    """One commit's runs and facts, and what became of them."""

    runs: Sequence[Run]
    events: list[Any]
    modes: list[ClaimMode]
    finished: bool = False
    tries: int = 0
    """Writes attempted (a store fault between them may have hidden a commit)."""
    outcome: object = None
    """``None`` (stored), ``CONFLICT``, or the exception the write raised."""
    positions: list[tuple[int, int]] | None = None
    """``(partition, position)`` of each event, once stored."""
    held: frozenset[str] = frozenset()
    claimable: bool = False
    wake: anyio.Event | None = None
    entries: list[IndexEntry] = field(default_factory=list)


Write = Callable[[list[Submission]], None]
"""Writes a batch in one transaction (blocking); store faults are raised."""
WriteInThread = Callable[[Write, list[Submission]], Awaitable[None]]
"""Runs a write in the writer's thread, retrying while the store is away."""
Announce = Callable[[list[Submission]], None]
"""Tells the listeners what a written batch stored."""


@final
class GroupCommit:
    """Batches concurrent submissions into one write each."""

    def __init__(
        self, write: Write, in_thread: WriteInThread, announce: Announce, *, inline_ok: bool
    ) -> None:
        self._write = write
        self._in_thread = in_thread
        self._announce = announce
        self._inline_ok = inline_ok
        self._queue: list[Submission] = []
        self._writing = False
        self._quiet = 0
        self._inline_writes = 0

    async def submit(self, submission: Submission) -> None:
        """Write ``submission`` with whatever else is queued; its outcome says how it went."""
        self._queue.append(submission)
        while not submission.finished:
            if self._writing:
                submission.wake = anyio.Event()
                await submission.wake.wait()
            else:
                await self._lead()

    async def _lead(self) -> None:
        self._writing = True
        try:
            batch, self._queue = self._queue, []
            if not self._settled_inline(batch):
                with CancelScope(shield=True):  # a write that went away always finishes
                    await self._write_away(batch)
            for submission in batch:
                submission.finished = True
                if submission.wake is not None:
                    submission.wake.set()
            self._announce(batch)
        finally:
            self._writing = False
            if self._queue and self._queue[0].wake is not None:
                self._queue[0].wake.set()  # hand the lead to the next submitter

    def _settled_inline(self, batch: list[Submission]) -> bool:
        """Write the batch on the event loop if :meth:`_inline` says so (no await, so
        nothing can cancel it: no shield to pay for): ``True`` once it is written or
        failed for good, ``False`` if it must go away (a thread, with retries)."""
        if not self._inline(batch):
            return False
        try:
            self._write(batch)
        except Exception as error:
            if classify(error) is None:
                _fail(batch, error)
                return True
            return False  # the store is away or refusing: go the way that waits and retries
        return True

    async def _write_away(self, batch: list[Submission]) -> None:
        """Write the batch in a thread, retrying while the store is away; a write that
        finally fails fails every submission."""
        try:
            await self._in_thread(self._write, batch)
            # Nobody joined or queued while this lone write was away: quiet.
            alone = len(batch) == 1 and not self._queue
            self._quiet = self._quiet + 1 if alone else 0
        except Exception as error:
            _fail(batch, error)

    def _inline(self, batch: list[Submission]) -> bool:
        """Whether to write this batch on the event loop: a lone submission while the
        store has been quiet, except for a regular probe through a thread.

        A thread hop costs about a third of a SQLite fsync; but a write on the
        event loop blocks every other task, so nobody can join it: group commit
        needs the thread as soon as there is company.
        """
        if len(batch) != 1 or not self._inline_ok:
            return False
        if self._quiet < _QUIET_BEFORE_INLINE:
            return False
        self._inline_writes += 1
        return self._inline_writes % _PROBE_EVERY != 0


def _fail(batch: list[Submission], error: Exception) -> None:
    for submission in batch:
        if submission.positions is None and submission.outcome is None:
            submission.outcome = error
