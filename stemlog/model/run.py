"""The run aggregate: one eventsourcing aggregate per workflow run.

Command methods check that a fact may be appended (validate first), then
trigger it with the injected clock's time; applying a fact evolves
:attr:`Run.state` through :func:`stemlog.model.fold.evolve`, so the aggregate and
:func:`stemlog.model.fold.fold` can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from stemlog.codec import JSONObject, JSONValue
from stemlog.errors import RunEndedError, UnknownStepError
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
from stemlog.model.fold import evolve, start_state
from stemlog.model.records import RunStatus
from stemlog.model.state import RunState, StepKey


class StaleDecisionError(Exception):
    """A decision no longer fits the run (it moved on meanwhile); internal."""


class Run(Aggregate):
    """A workflow run. The workflow's name is a field: one class serves every workflow."""

    TOPIC = "stemlog:Run"

    class Created(Aggregate.Created):
        TOPIC = "stemlog:Run.Created"

    def __init__(self) -> None:
        self._state: RunState | None = None

    @property
    def state(self) -> RunState:
        """The folded state of every fact applied so far."""
        assert self._state is not None, "a run starts with RunStarted"
        return self._state

    def apply_fact(self, fact: AnyFact) -> None:
        """Evolve the state by one fact (called by eventsourcing on trigger and replay)."""
        if isinstance(fact, RunStarted):
            self._state = start_state(fact)
        else:
            evolve(self.state, fact)

    @classmethod
    def begin(cls, *, run_id: UUID, at: datetime, **fields: Any) -> Run:
        """A new run with its ``RunStarted`` fact pending (fields as in the fact)."""
        return cls._create(RunStarted, id=run_id, timestamp=at, **fields)

    @classmethod
    def restore(cls, state: RunState) -> Run:
        """The aggregate whose facts folded into ``state`` (a fold, or a snapshot).

        stemlog folds stored facts itself (:func:`stemlog.model.fold.fold`)
        instead of replaying them through eventsourcing's generic projection;
        the aggregate's version is the state's position.
        """
        run = object.__new__(cls)
        run._id = UUID(state.run_id)
        run._version = state.position
        run._created_on = state.created_at
        run._modified_on = state.updated_at or state.created_at
        run._pending_events = []
        run._state = state
        return run

    def fast_forward(self, facts: Iterable[AnyFact]) -> None:
        """Apply facts appended after this aggregate's version (by others, or found
        on reading again), in order.

        Raises:
            StaleDecisionError: the facts do not follow on from this version.
        """
        for fact in facts:
            if fact.originator_version != self._version + 1:
                raise StaleDecisionError(
                    f"fact {fact.originator_version} does not follow version {self._version}"
                )
            self.apply_fact(fact)
            self._version = fact.originator_version
            self._modified_on = fact.timestamp

    def _live(self) -> RunState:
        state = self.state
        if state.status.is_terminal:
            raise RunEndedError(state.run_id, state.status)
        return state

    def start_step(self, key: StepKey, attempt: int, at: datetime) -> None:
        """Enter step ``key`` (again, after a suspension, a retry or a lost worker).

        Raises:
            StaleDecisionError: the run moved on since the decision was made: it
                is suspended, the step completed or failed for good, or another
                step is running.
        """
        state = self._live()
        if state.wait is not None:
            raise StaleDecisionError("the run is suspended")
        if key in state.completed or key in state.failures:
            raise StaleDecisionError(f"step {key} has already settled")
        if state.current is not None and state.current != key:
            raise StaleDecisionError(f"step {state.current} is under way")
        if attempt <= state.attempt and state.current == key and state.in_flight:
            raise StaleDecisionError(f"attempt {attempt} of step {key} has started already")
        self.trigger_event(
            StepStarted, step=key[0], iteration=key[1], attempt=attempt, timestamp=at
        )

    def _require_in_flight(self, key: StepKey) -> None:
        state = self._live()
        if state.current != key or not state.in_flight:
            raise StaleDecisionError(f"step {key} is not running")

    def complete_step(self, key: StepKey, value: JSONValue, at: datetime) -> None:
        self._require_in_flight(key)
        self.trigger_event(StepCompleted, step=key[0], iteration=key[1], value=value, timestamp=at)

    def fail_step(
        self,
        key: StepKey,
        error: JSONObject,
        retry_at: datetime | None,
        at: datetime,
    ) -> None:
        self._require_in_flight(key)
        self.trigger_event(
            StepFailed,
            step=key[0],
            iteration=key[1],
            attempt=self.state.attempt,
            error=error,
            retry_at=retry_at,
            timestamp=at,
        )

    def await_event(
        self, key: StepKey, topic: str, deadline: datetime | None, at: datetime
    ) -> None:
        self._require_in_flight(key)
        self.trigger_event(
            EventAwaited,
            step=key[0],
            iteration=key[1],
            topic=topic,
            deadline=deadline,
            timestamp=at,
        )

    def start_sleep(self, key: StepKey, wake_at: datetime, at: datetime) -> None:
        self._require_in_flight(key)
        self.trigger_event(
            SleepStarted, step=key[0], iteration=key[1], wake_at=wake_at, timestamp=at
        )

    def receive_event(self, topic: str, payload: JSONValue, event_id: str, at: datetime) -> None:
        """Deliver a payload: resumes the run if it waits on ``topic``, else buffers it.

        A payload whose ``event_id`` this run already received is ignored, so
        deliveries can be retried safely.
        """
        if event_id in self._live().received:
            return
        self.trigger_event(
            EventReceived, topic=topic, payload=payload, event_id=event_id, timestamp=at
        )

    def time_out_event(self, at: datetime) -> None:
        wait = self._live().wait
        if wait is None or wait.deadline is None or wait.deadline > at:
            raise StaleDecisionError("no event deadline has passed")
        self.trigger_event(EventTimedOut, topic=wait.topic, timestamp=at)

    def elapse_sleep(self, at: datetime) -> None:
        wait = self._live().wait
        if wait is None or wait.wake_at is None or wait.wake_at > at:
            raise StaleDecisionError("no sleep is due")
        self.trigger_event(SleepElapsed, timestamp=at)

    def complete(self, result: JSONValue, at: datetime) -> None:
        state = self._live()
        if state.status is not RunStatus.RUNNING or state.in_flight:
            raise StaleDecisionError("only a running run with no step in flight can complete")
        self.trigger_event(RunCompleted, result=result, timestamp=at)

    def fail(self, error: JSONObject, at: datetime) -> None:
        self._live()
        self.trigger_event(RunFailed, error=error, timestamp=at)

    def cancel(self, reason: str | None, at: datetime) -> None:
        self._live()
        self.trigger_event(RunCancelled, reason=reason, timestamp=at)

    def rewind(self, to_step: str, at: datetime) -> None:
        """Re-run ``to_step`` and the steps after it (also on an ended run).

        Raises:
            UnknownStepError: the run never started ``to_step``.
        """
        if all(name != to_step for name, _ in self.state.steps):
            raise UnknownStepError(self.state.run_id, to_step)
        self.trigger_event(RunRewound, to_step=to_step, timestamp=at)
