"""Folding a run's facts into its state.

:func:`fold` is the one definition of what a history means. The executor, the
replay tool, the read models and the tests all use it, and the run aggregate
applies each fact through :func:`evolve`. Both are pure: they read the facts
and build a fresh :class:`RunState` (``evolve`` mutates only the state it is
given).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NoReturn, cast

from stemlog.codec import JSONValue
from stemlog.errors import InvalidPayloadError
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
from stemlog.model.history import as_facts
from stemlog.model.policy import CancellationPolicy
from stemlog.model.records import ErrorInfo, Fact, RunStatus, WorkflowKind
from stemlog.model.state import Delivery, PendingWait, Resume, ResumeKind, RunState, StepKey


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
        policy=CancellationPolicy.from_json(fact.policy),
        ttl=fact.ttl,
        forked_from=fact.forked_from,
        created_at=fact.timestamp,
        key=fact.key,
        updated_at=fact.timestamp,
    )


def fold(facts: Iterable[AnyFact | Fact]) -> RunState:
    """Fold a run's history, first fact ``RunStarted``, into its state.

    Args:
        facts: what ``app.history`` returns (:class:`Fact` records), or the stored
            fact objects.

    Raises:
        InvalidPayloadError: the history is empty, does not start with
            ``RunStarted``, holds an unknown or malformed record, or mixes runs.
    """
    history = list(facts)
    if history and isinstance(history[0], Fact):  # records: checked, made facts again
        history = list(as_facts(history))
    iterator = iter(cast(list[AnyFact], history))  # stored facts, as the store reads them
    first = next(iterator, None)
    if not isinstance(first, RunStarted):
        raise InvalidPayloadError("history", "a run's history starts with RunStarted")
    state = start_state(first)
    for fact in iterator:
        evolve(state, fact)
    return state


def evolve(state: RunState, fact: AnyFact) -> None:
    """Apply one fact after ``RunStarted`` to ``state`` in place.

    Raises:
        InvalidPayloadError: ``RunStarted`` again, or an object that is not a fact.
    """
    apply = _APPLY.get(type(fact))  # by the class itself: a fold runs once per fact loaded
    if apply is None:
        _refuse(fact)
    state.position += 1
    state.updated_at = fact.timestamp
    apply(state, fact)


def _refuse(fact: object) -> NoReturn:
    if isinstance(fact, RunStarted):
        raise InvalidPayloadError("history", "RunStarted can only be the first fact of a run")
    raise InvalidPayloadError("history", f"not a fact of a run: {type(fact).__name__}")


def _step_started(state: RunState, fact: StepStarted) -> None:
    key = (fact.step, fact.iteration)
    if key not in state.stepped:
        state.steps.append(key)
        state.stepped.add(key)
    state.current, state.attempt, state.in_flight = key, fact.attempt, True
    state.failed, state.retry_at, state.step_started_at = False, None, fact.timestamp


def _step_completed(state: RunState, fact: StepCompleted) -> None:
    state.completed[(fact.step, fact.iteration)] = fact.value
    state.current, state.in_flight, state.resume, state.failed = None, False, None, False
    state.step_started_at = None


def _step_failed(state: RunState, fact: StepFailed) -> None:
    _fail_step(state, (fact.step, fact.iteration), fact.retry_at, ErrorInfo.from_json(fact.error))


def _event_awaited(state: RunState, fact: EventAwaited) -> None:
    _await_event(state, fact.timestamp, (fact.step, fact.iteration), fact.topic, fact.deadline)


def _event_received(state: RunState, fact: EventReceived) -> None:
    state.received.add(fact.event_id)
    _receive_event(state, fact.topic, fact.payload, fact.event_id)


def _event_timed_out(state: RunState, fact: EventTimedOut) -> None:
    _resume(state, ResumeKind.TIMEOUT, fact.topic, None)


def _sleep_started(state: RunState, fact: SleepStarted) -> None:
    wait = PendingWait(fact.step, fact.iteration, None, fact.wake_at, None, fact.timestamp)
    _suspend(state, wait)


def _sleep_elapsed(state: RunState, fact: SleepElapsed) -> None:
    _resume(state, ResumeKind.SLEEP, None, True)


def _run_completed(state: RunState, fact: RunCompleted) -> None:
    _end(state, fact.timestamp, RunStatus.COMPLETED)
    state.result, state.error = fact.result, None


def _run_failed(state: RunState, fact: RunFailed) -> None:
    _end(state, fact.timestamp, RunStatus.FAILED)
    state.error = ErrorInfo.from_json(fact.error)


def _run_cancelled(state: RunState, fact: RunCancelled) -> None:
    _end(state, fact.timestamp, RunStatus.CANCELLED)
    state.cancel_reason = fact.reason


def _run_rewound(state: RunState, fact: RunRewound) -> None:
    _rewind(state, fact.to_step)


_APPLY: dict[type[Any], Callable[[RunState, Any], None]] = {
    StepStarted: _step_started,
    StepCompleted: _step_completed,
    StepFailed: _step_failed,
    EventAwaited: _event_awaited,
    EventReceived: _event_received,
    EventTimedOut: _event_timed_out,
    SleepStarted: _sleep_started,
    SleepElapsed: _sleep_elapsed,
    RunCompleted: _run_completed,
    RunFailed: _run_failed,
    RunCancelled: _run_cancelled,
    RunRewound: _run_rewound,
}
"""What each fact after ``RunStarted`` does to a state, by its class (facts have no
subclasses). A dict rather than a ``match``: each ``case`` is an ``isinstance``
through eventsourcing's event metaclass, and a fold runs once per fact loaded."""


def _fail_step(state: RunState, key: StepKey, retry_at: datetime | None, error: ErrorInfo) -> None:
    state.in_flight, state.resume, state.retry_at = False, None, retry_at
    state.failed, state.step_started_at = True, None
    if retry_at is not None:
        state.retries[key] = state.retries.get(key, 0) + 1
    else:
        # No attempt left: the step is settled as failed, like a completion.
        state.failures[key] = error
        state.current, state.failed = None, False


def _await_event(
    state: RunState, at: datetime, key: StepKey, topic: str, deadline: datetime | None
) -> None:
    state.in_flight, state.step_started_at = False, None
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
    state.in_flight, state.resume, state.step_started_at = False, None, None
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
    state.step_started_at = None


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
    state.step_started_at = None
