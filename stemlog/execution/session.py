"""A run held by the executor: decisions applied in memory, made durable by ``flush``.

Every decision is an *intent*: a function that calls one command method of the
:class:`~stemlog.model.run.Run` aggregate. Intents since the last durable commit are
kept, so when a commit loses an optimistic-concurrency race (another writer,
say ``send``, appended to the run meanwhile) the session reloads the run and
re-applies them to the fresh aggregate; an intent that no longer fits (the run
was cancelled, or moved on) stops the drive instead. A failed save is never
retried with the same aggregate object: eventsourcing has consumed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from stemlog.errors import RunEndedError
from stemlog.execution.outcomes import StopDrive, interrupt_of, is_cancellation
from stemlog.model.run import Run, StaleDecisionError
from stemlog.model.state import RunState

Intent = Callable[[Run], None]

_MAX_CONFLICTS = 20


class RunWriter(Protocol):
    """What a session needs from the store."""

    async def commit(self, *runs: Run) -> bool:
        """Append the runs' pending facts durably; ``False`` when another writer won."""
        ...

    async def load(self, run_id: str) -> Run:
        """The run as stored now."""
        ...


class RunSession:
    """One run under execution, with its uncommitted intents."""

    def __init__(self, run: Run, store: RunWriter) -> None:
        self.run = run
        self._store = store
        self._pending: list[Intent] = []
        self.moved_on = False
        """Another writer moved the run on so that this drive's decisions no longer
        fit: whoever drives it next must decide again from the stored state."""

    @property
    def state(self) -> RunState:
        return self.run.state

    @property
    def run_id(self) -> str:
        return self.run.state.run_id

    def do(self, intent: Intent) -> None:
        """Apply a decision in memory; it becomes durable at the next :meth:`flush`.

        Raises:
            StopDrive: the decision does not fit the run any more.
        """
        try:
            intent(self.run)
        except (RunEndedError, StaleDecisionError):
            raise StopDrive from None
        self._pending.append(intent)

    async def flush(self) -> None:
        """Make every applied decision durable, re-deciding on a lost race.

        Raises:
            StopDrive: after reloading, the decisions no longer fit the run.
        """
        for _ in range(_MAX_CONFLICTS):
            if not self._pending:
                return
            if await self._store.commit(self.run):
                self._pending.clear()
                return
            await self._reapply()
        self.moved_on = True
        raise StopDrive

    async def _reapply(self) -> None:
        self.run = await self._store.load(self.run_id)
        try:
            for intent in self._pending:
                intent(self.run)
        except (RunEndedError, StaleDecisionError):
            self._pending.clear()
            self.moved_on = True
            raise StopDrive from None

    async def run_with(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action``; a :class:`StopDrive` inside it (also in a group) ends quietly."""
        try:
            await action()
        except BaseException as error:
            if is_cancellation(error) or not isinstance(interrupt_of(error), StopDrive):
                raise
            self._pending.clear()
