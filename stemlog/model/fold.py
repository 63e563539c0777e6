"""Folding a run's facts into its state.

:func:`fold` is the one definition of what a history means. The executor, the
replay tool and the tests all use it, and the run aggregate applies each fact
through :func:`evolve`. Both are pure: they read the facts and build a fresh
:class:`RunState` (``evolve`` mutates only the state it is given).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias, assert_never, final

from stemlog.codec import JSONValue
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
    StepCompleted,
    StepFailed,
    StepStarted,
)
from stemlog.model.records import ErrorInfo, RunStatus, WorkflowKind

StepKey: TypeAlias = tuple[str, int]
"""A step occurrence: its name and its iteration (0 unless auto-versioned)."""


def step_label(key: StepKey) -> str:
    """``name`` for iteration 0, else ``name#iteration``."""
    name, iteration = key
    return name if iteration == 0 else f"{name}#{iteration}"


class ResumeKind(StrEnum):
    """Why a suspended step is re-entered."""

    EVENT = "event"
    SLEEP = "sleep"
    TIMEOUT = "timeout"


@final
@dataclass(frozen=True, slots=True)
class PendingWait:
    """What a suspended run waits for: an event (``topic``) or a timer (``wake_at``)."""

    step: str
    iteration: int
    topic: str | None
    wake_at: datetime | None
    deadline: datetime | None
    since: datetime

    @property
    def due_at(self) -> datetime | None:
        """When the worker must act without outside input: the wake time or the deadline."""
        return self.wake_at if self.wake_at is not None else self.deadline


@final
@dataclass(frozen=True, slots=True)
class Resume:
    """The input a re-entered step receives once (``take_resume_data``)."""

    step: str
    iteration: int
    kind: ResumeKind
    topic: str | None
    payload: JSONValue


@final
@dataclass(frozen=True, slots=True)
class Delivery:
    """A payload sent to a run before it waited on the topic (``app.send``)."""

    payload: JSONValue
    event_id: str


@final
@dataclass(slots=True)
class RunState:
    """A run's state after a prefix of its history.

    Invariants: ``wait`` is set exactly when ``status`` is ``suspended``;
    ``current`` is the step entered and not yet completed; ``in_flight`` is
    true when the last step fact is a ``StepStarted`` with no outcome after it
    (the handler was running when the history was read).
    """

    run_id: str
    workflow: str
    kind: WorkflowKind
    workflow_version: int
    params: dict[str, JSONValue]
    fingerprint: str
    parent_run_id: str | None
    policy: dict[str, JSONValue] | None
    ttl: float | None
    forked_from: dict[str, JSONValue] | None
    created_at: datetime
    status: RunStatus = RunStatus.RUNNING
    position: int = 1
    updated_at: datetime | None = None
    completed: dict[StepKey, JSONValue] = field(default_factory=dict)
    steps: list[StepKey] = field(default_factory=list)
    stepped: set[StepKey] = field(default_factory=set)
    """The keys in ``steps``, for constant-time membership."""
    current: StepKey | None = None
    attempt: int = 0
    in_flight: bool = False
    failed: bool = False
    retry_at: datetime | None = None
    failures: dict[StepKey, ErrorInfo] = field(default_factory=dict)
    retries: dict[StepKey, int] = field(default_factory=dict)
    received: set[str] = field(default_factory=set)
    wait: PendingWait | None = None
    resume: Resume | None = None
    inbox: dict[str, list[Delivery]] = field(default_factory=dict)
    result: JSONValue = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    ended_at: datetime | None = None

    def next_attempt(self, key: StepKey) -> int:
        """The attempt number the next ``StepStarted`` of ``key`` carries.

        Re-entry after a suspension keeps the attempt; a start that never
        reached an outcome (its worker died) counts as an attempt, as a
        failure does.
        """
        if self.current != key:
            return 1
        return self.attempt + 1 if self.in_flight or self.failed else max(self.attempt, 1)

    def cancel_due(self) -> tuple[datetime, str] | None:
        """When the cancellation policy ends the run, and why (``None``: never)."""
        policy = self.policy or {}
        if self.status.is_terminal:
            return None
        due: list[tuple[datetime, str]] = []
        max_run = policy.get("max_run_duration")
        if max_run is not None:
            due.append((self.created_at + timedelta(seconds=max_run), "max_run_duration"))
        max_suspend = policy.get("max_suspend_duration")
        if max_suspend is not None and self.wait is not None:
            due.append((self.wait.since + timedelta(seconds=max_suspend), "max_suspend_duration"))
        return min(due) if due else None

    def resume_for(self, key: StepKey) -> Resume | None:
        """The resume input waiting for ``key``, if any."""
        resume = self.resume
        if resume is not None and (resume.step, resume.iteration) == key:
            return resume
        return None


def start_state(fact: RunStarted) -> RunState:
    """The state right after ``RunStarted``."""
    return RunState(
        run_id=str(fact.originator_id),
        workflow=fact.workflow,
        kind=WorkflowKind(fact.kind),
        workflow_version=fact.workflow_version,
        params=fact.params,
        fingerprint=fact.fingerprint,
        parent_run_id=fact.parent_run_id,
        policy=fact.policy,
        ttl=fact.ttl,
        forked_from=fact.forked_from,
        created_at=fact.timestamp,
        updated_at=fact.timestamp,
    )


def fold(facts: Iterable[AnyFact]) -> RunState:
    """Fold a run's history, first fact ``RunStarted``, into its state.

    Raises:
        ValueError: the history is empty or does not start with ``RunStarted``.
    """
    iterator = iter(facts)
    first = next(iterator, None)
    if not isinstance(first, RunStarted):
        raise ValueError("a run's history starts with RunStarted")
    state = start_state(first)
    for fact in iterator:
        evolve(state, fact)
    return state


def evolve(state: RunState, fact: AnyFact) -> None:
    """Apply one fact after ``RunStarted`` to ``state`` in place."""
    state.position += 1
    state.updated_at = fact.timestamp
    match fact:
        case StepStarted(step=step, iteration=iteration, attempt=attempt):
            key = (step, iteration)
            if key not in state.stepped:
                state.steps.append(key)
                state.stepped.add(key)
            state.current, state.attempt, state.in_flight = key, attempt, True
            state.failed, state.retry_at = False, None
        case StepCompleted(step=step, iteration=iteration, value=value):
            state.completed[(step, iteration)] = value
            state.current, state.in_flight, state.resume, state.failed = None, False, None, False
        case StepFailed(step=step, iteration=iteration, retry_at=retry_at, error=error):
            state.in_flight, state.resume, state.retry_at = False, None, retry_at
            state.failed = True
            if retry_at is not None:
                key = (step, iteration)
                state.retries[key] = state.retries.get(key, 0) + 1
            else:
                # No attempt left: the step is settled as failed, like a completion.
                state.failures[(step, iteration)] = ErrorInfo.from_json(error)
                state.current, state.failed = None, False
        case EventAwaited(step=step, iteration=iteration, topic=topic, deadline=deadline):
            _await_event(state, fact.timestamp, (step, iteration), topic, deadline)
        case EventReceived(topic=topic, payload=payload, event_id=event_id):
            state.received.add(event_id)
            _receive_event(state, topic, payload, event_id)
        case EventTimedOut(topic=topic):
            _resume(state, ResumeKind.TIMEOUT, topic, None)
        case SleepStarted(step=step, iteration=iteration, wake_at=wake_at):
            _suspend(state, PendingWait(step, iteration, None, wake_at, None, fact.timestamp))
        case SleepElapsed():
            _resume(state, ResumeKind.SLEEP, None, True)
        case RunCompleted(result=result):
            _end(state, fact.timestamp, RunStatus.COMPLETED)
            state.result, state.error = result, None
        case RunFailed(error=error):
            _end(state, fact.timestamp, RunStatus.FAILED)
            state.error = ErrorInfo.from_json(error)
        case RunCancelled(reason=reason):
            _end(state, fact.timestamp, RunStatus.CANCELLED)
            state.cancel_reason = reason
        case RunRewound(to_step=to_step):
            _rewind(state, to_step)
        case RunStarted():
            raise ValueError("RunStarted can only be the first fact of a run")
        case _:
            assert_never(fact)


def _await_event(
    state: RunState, at: datetime, key: StepKey, topic: str, deadline: datetime | None
) -> None:
    state.in_flight = False
    buffered = state.inbox.get(topic)
    if buffered:
        # A payload sent before the wait satisfies it at once: the run stays runnable.
        delivery = buffered.pop(0)
        state.resume = Resume(key[0], key[1], ResumeKind.EVENT, topic, delivery.payload)
        return
    _suspend(state, PendingWait(key[0], key[1], topic, None, deadline, at))


def _receive_event(state: RunState, topic: str, payload: JSONValue, event_id: str) -> None:
    wait = state.wait
    if wait is not None and wait.topic == topic:
        _resume(state, ResumeKind.EVENT, topic, payload)
    else:
        state.inbox.setdefault(topic, []).append(Delivery(payload, event_id))


def _suspend(state: RunState, wait: PendingWait) -> None:
    state.in_flight, state.resume = False, None
    state.wait, state.status = wait, RunStatus.SUSPENDED


def _resume(state: RunState, kind: ResumeKind, topic: str | None, payload: JSONValue) -> None:
    wait = state.wait
    if wait is None:
        return
    state.resume = Resume(wait.step, wait.iteration, kind, topic, payload)
    state.wait, state.status = None, RunStatus.RUNNING


def _end(state: RunState, at: datetime, status: RunStatus) -> None:
    state.status, state.ended_at = status, at
    state.wait, state.resume, state.in_flight, state.retry_at = None, None, False, None


def _rewind(state: RunState, to_step: str) -> None:
    index = next((i for i, key in enumerate(state.steps) if key[0] == to_step), len(state.steps))
    for key in state.steps[index:]:
        state.completed.pop(key, None)
        state.failures.pop(key, None)
        state.stepped.discard(key)
    del state.steps[index:]
    state.status, state.ended_at, state.result, state.error = RunStatus.RUNNING, None, None, None
    state.current, state.attempt, state.in_flight, state.failed = None, 0, False, False
    state.wait, state.resume, state.retry_at, state.cancel_reason = None, None, None, None
