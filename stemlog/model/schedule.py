"""When a run is next due, and why: the one place that says it.

A run is *due* when the worker must act on it without outside input: a
sleep ends, an event's deadline passes, a failed step's retry comes, or a
cancellation policy's limit is reached. The worker's timers, the ``timers``
read model and the policy enforcement all ask :func:`next_due`; the
``runs`` model's ``expires_at`` comes from :func:`expires_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import final

from stemlog.model.facts import (
    AnyFact,
    EventAwaited,
    EventReceived,
    EventTimedOut,
    RunRewound,
    RunStarted,
    SleepElapsed,
    SleepStarted,
    StepFailed,
)
from stemlog.model.records import RunStatus
from stemlog.model.state import RunState


class DueReason(StrEnum):
    """Why a run is due."""

    WAKE = "wake"
    """A sleep ends."""
    DEADLINE = "deadline"
    """An awaited event's deadline passes."""
    RETRY = "retry"
    """A failed step's next attempt comes."""
    MAX_RUN_DURATION = "max_run_duration"
    """The cancellation policy's limit on the run's whole duration."""
    MAX_SUSPEND_DURATION = "max_suspend_duration"
    """The cancellation policy's limit on one suspension."""

    @property
    def cancels(self) -> bool:
        """Whether the run is cancelled (with this reason) when it is due."""
        return self in (DueReason.MAX_RUN_DURATION, DueReason.MAX_SUSPEND_DURATION)


@final
@dataclass(frozen=True, slots=True, order=True)
class Due:
    """A moment at which the run must be acted on, and why."""

    at: datetime
    reason: DueReason


def cancel_due(state: RunState) -> Due | None:
    """When the cancellation policy ends the run (``None``: never)."""
    policy = state.policy
    if policy is None or state.status.is_terminal:
        return None
    dues: list[Due] = []
    max_run = policy.max_run_seconds
    if max_run is not None:
        at = state.created_at + timedelta(seconds=max_run)
        dues.append(Due(at, DueReason.MAX_RUN_DURATION))
    max_suspend = policy.max_suspend_seconds
    if max_suspend is not None and state.wait is not None:
        at = state.wait.since + timedelta(seconds=max_suspend)
        dues.append(Due(at, DueReason.MAX_SUSPEND_DURATION))
    return min(dues, default=None)


def wake_due(state: RunState) -> Due | None:
    """When the run continues by itself: a sleep's end, a deadline, a retry."""
    wait = state.wait
    if wait is not None:
        if wait.wake_at is not None:
            return Due(wait.wake_at, DueReason.WAKE)
        if wait.deadline is not None:
            return Due(wait.deadline, DueReason.DEADLINE)
        return None
    if state.status is RunStatus.RUNNING and state.retry_at is not None:
        return Due(state.retry_at, DueReason.RETRY)
    return None


def next_due(state: RunState) -> Due | None:
    """The earliest moment the worker must act on the run by itself (``None``: never)."""
    dues = [due for due in (wake_due(state), cancel_due(state)) if due is not None]
    return min(dues, default=None)


def ready_at(state: RunState) -> datetime | None:
    """From when a worker must pick the run up (``None``: not until outside input).

    A run that can move now is ready since its start (older runs first); one
    waiting for a retry, a sleep, a deadline or a policy limit is ready at
    that time; one waiting for an event with no deadline, or ended, is not.
    """
    if state.status.is_terminal:
        return None
    if state.status is RunStatus.RUNNING and state.retry_at is None:
        return state.created_at
    due = next_due(state)
    return None if due is None else due.at


def runnable(state: RunState, now: datetime) -> bool:
    """Whether a drive can make progress now: running, and no retry waiting for later."""
    if state.status is not RunStatus.RUNNING:
        return False
    return state.retry_at is None or state.retry_at <= now


def expires_at(state: RunState) -> datetime | None:
    """When an ended run with a ``ttl`` drops out of ``list_runs`` (``None``: never)."""
    if state.ttl is None or state.ended_at is None:
        return None
    return state.ended_at + timedelta(seconds=state.ttl)


def waiting_topic(state: RunState) -> str | None:
    """The topic the run is suspended on, if any (the ``watchers`` model)."""
    wait = state.wait
    return None if wait is None else wait.topic


_RESCHEDULING = (
    RunStarted, StepFailed, EventAwaited, EventReceived, EventTimedOut, SleepStarted,
    SleepElapsed, RunRewound,
)  # fmt: skip


def may_reschedule(fact: AnyFact) -> bool:
    """Whether ``fact`` can make its run runnable or give it a new due time.

    The other facts (a step started or completed, the run ended) only make an
    earlier due time stale, which is harmless: a stale timer finds nothing to
    do. A process that sees another one's facts uses this to decide whether
    to look at the run at all.
    """
    return isinstance(fact, _RESCHEDULING)
