"""Cancellation policies, applied by the worker that holds a run.

A run's :class:`~stemlog.model.policy.CancellationPolicy` (``max_run_duration``,
``max_suspend_duration``) is checked before each drive, and by a timer armed
for the moment it is due while a step runs (so a long step does not outlive
it); a due policy cancels the run with the policy's reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import final

from stemlog.clock import Clock
from stemlog.errors import RunEndedError, StoreUnavailableError, StoreWriteError, UnknownRunError
from stemlog.execution.session import RunSession
from stemlog.model.schedule import cancel_due
from stemlog.model.state import RunState
from stemlog.store.events import RunStore

Canceller = Callable[[str, str], Awaitable[None]]


@final
class Policies:
    """Applies the cancellation policies of the runs a worker drives."""

    def __init__(
        self,
        store: RunStore,
        clock: Clock,
        cancel: Canceller,
        sessions: Mapping[str, RunSession],
    ) -> None:
        self._store = store
        self._clock = clock
        self._cancel = cancel
        self._sessions = sessions

    async def enforce(self, state: RunState) -> bool:
        """Cancel the run if its cancellation policy says so now; whether it did."""
        due = cancel_due(state)
        if due is None or due.at > self._clock.now():
            return False
        with contextlib.suppress(RunEndedError, UnknownRunError):
            await self._cancel(state.run_id, str(due.reason))
        return True

    def due_during_step(self, run_id: str, now: datetime) -> bool:
        """Whether a run being driven may be due for cancellation by its policy."""
        session = self._sessions.get(run_id)
        if session is None:
            return False  # not in a step: its next drive applies the policy first
        due = cancel_due(session.state)
        return due is not None and due.at <= now

    async def enforce_now(self, run_id: str) -> None:
        """A timer fired while the run is being driven: the policy may cancel it mid-step."""
        with contextlib.suppress(UnknownRunError, StoreUnavailableError, StoreWriteError):
            await self.enforce((await self._store.load(run_id)).state)
