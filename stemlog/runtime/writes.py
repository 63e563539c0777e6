"""How a worker's drives write: every commit takes the run's claim, and a run started
in this app can be stored with its first step.

A start in an app whose worker drives the new run at once would commit twice
before the run's first step runs: ``RunStarted`` alone, then ``StepStarted``.
Instead ``start`` hands the new run, not stored yet, to the worker
(:class:`UnstoredStarts`), and ``RunStarted`` is appended by the drive's first
commit, with whatever the run did first (its first step started, a sleep, a
wait, its end): one commit fewer per run, the costliest part of a short run on
PostgreSQL. ``start`` still returns only once ``RunStarted`` is stored: it
waits for that commit and raises what the commit raised. If the drive ends
without committing (the worker stops, the drive breaks before its first
write), nothing of the run is stored, and ``start`` stores ``RunStarted`` by
itself, as it does when the worker has no room.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import anyio

from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.index import ClaimMode

Outcome = bool | Exception
"""How a first commit went: stored (``True``), not stored (``False``), or what it raised."""


@final
class FirstCommit:
    """What a start waits for: how its run's first commit went."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._outcome: Outcome = False

    def settle(self, outcome: Outcome) -> None:
        if not self._done.is_set():
            self._outcome = outcome
            self._done.set()

    async def stored(self) -> bool:
        """Whether the run's first commit stored it (``False``: nothing was).

        Raises:
            StoreUnavailableError, StoreWriteError: what that commit raised.
        """
        await self._done.wait()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


@final
class UnstoredStarts:
    """New runs a worker drives before anything of them is stored, and the starts
    waiting for their first commit."""

    def __init__(self) -> None:
        self._waiting: dict[str, FirstCommit] = {}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._waiting

    def add(self, run_id: str) -> FirstCommit:
        """A start hands ``run_id`` over; what its first commit does settles the waiter."""
        waiter = self._waiting[run_id] = FirstCommit()
        return waiter

    def committed(self, runs: Sequence[Run], outcome: Outcome) -> None:
        """A drive's commit of ``runs`` went this way: settle their starts' waiters."""
        if self._waiting:
            for run in runs:
                waiter = self._waiting.pop(run.state.run_id, None)
                if waiter is not None:
                    waiter.settle(outcome)

    def drop(self, run_id: str) -> bool:
        """The run's drive ended before its first commit: its start stores it itself.
        Whether the run was waiting for one."""
        waiter = self._waiting.pop(run_id, None)
        if waiter is None:
            return False
        waiter.settle(False)
        return True

    def drop_all(self) -> list[str]:
        """The worker stops: every start still waiting stores its run itself; their ids."""
        run_ids = list(self._waiting)
        for run_id in run_ids:
            self.drop(run_id)
        return run_ids


@final
class ClaimingWriter:
    """The store as a drive writes to it: every commit keeps the run's claim while
    the run can move, and gives it up once it suspends or ends; a run's first commit
    settles the start waiting for it."""

    def __init__(self, store: RunStore, unstored: UnstoredStarts) -> None:
        self._store = store
        self._unstored = unstored

    async def commit(self, *runs: Run) -> bool:
        try:
            stored = await self._store.commit(*runs, claim=ClaimMode.TAKE)
        except Exception as error:  # a cancelled drive's start finds out when it ends
            self._unstored.committed(runs, error)
            raise
        self._unstored.committed(runs, stored)
        return stored

    async def load(self, run_id: str) -> Run:
        return await self._store.load(run_id)
