"""What this process does about facts other processes appended.

A run started, resumed or rewound elsewhere is scheduled here (the lease
decides who drives it); a due time recorded elsewhere arms a timer here; a
child that ended elsewhere has its outcome delivered to its parent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import final

from stemlog.model.facts import (
    AnyFact,
    EventAwaited,
    EventReceived,
    EventTimedOut,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRewound,
    RunStarted,
    SleepElapsed,
    SleepStarted,
    StepFailed,
)
from stemlog.runtime.worker import Worker


@final
class RemoteReactions:
    """Turns other processes' facts into local scheduling, timers and deliveries."""

    def __init__(self, worker: Worker | None, deliver_child: Callable[[str], None]) -> None:
        self._worker = worker
        self._deliver_child = deliver_child
        self._parents: dict[str, str] = {}

    def __call__(self, facts: Sequence[AnyFact]) -> None:
        for fact in facts:
            run_id = str(fact.originator_id)
            match fact:
                case RunStarted(parent_run_id=parent, policy=policy):
                    if parent is not None:
                        self._parents[run_id] = parent
                    self._wake(run_id)
                    max_run = (policy or {}).get("max_run_duration")
                    if max_run is not None:
                        self._due(run_id, fact.timestamp + timedelta(seconds=max_run))
                case EventReceived() | EventTimedOut() | SleepElapsed() | RunRewound():
                    self._wake(run_id)
                case SleepStarted(wake_at=wake_at):
                    self._due(run_id, wake_at)
                case EventAwaited(deadline=deadline) if deadline is not None:
                    self._due(run_id, deadline)
                case StepFailed(retry_at=retry_at) if retry_at is not None:
                    self._due(run_id, retry_at)
                case RunCompleted() | RunFailed() | RunCancelled():
                    if self._parents.pop(run_id, None) is not None:
                        self._deliver_child(run_id)

    def _wake(self, run_id: str) -> None:
        if self._worker is not None:
            self._worker.schedule(run_id)

    def _due(self, run_id: str, at: datetime) -> None:
        if self._worker is not None:
            self._worker.set_timer_min(run_id, at)
