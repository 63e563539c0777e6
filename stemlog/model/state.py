"""A run's state: what its history means after a prefix of its facts.

:mod:`stemlog.model.fold` builds it; nothing else writes it. Every reader —
the executor, replay, the read models — derives what it shows from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeAlias, final

from stemlog.codec import JSONObject, JSONValue
from stemlog.model.policy import CancellationPolicy
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
        """When the wait ends without outside input: the wake time or the deadline."""
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
    ``current`` is the step entered and not yet settled (completed, or failed
    with no attempt left); ``in_flight`` is true when the last step fact is a
    ``StepStarted`` with no outcome after it (the handler was running when the
    history was read); ``step_started_at`` is that ``StepStarted``'s time
    while ``current`` has no outcome yet.

    The *ledger* — ``completed``, ``steps``, ``stepped``, ``failures``,
    ``retries`` and ``received`` — grows with the history. Nothing but the
    ledger depends on it, which is why :meth:`without_ledger` may drop it.
    """

    run_id: str
    workflow: str
    kind: WorkflowKind
    workflow_version: int
    params: JSONObject
    fingerprint: str
    parent_run_id: str | None
    policy: CancellationPolicy | None
    ttl: float | None
    forked_from: JSONObject | None
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
    step_started_at: datetime | None = None
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
    key: str | None = None
    """The business key the run was started by, if any."""

    def next_attempt(self, key: StepKey) -> int:
        """The attempt number the next ``StepStarted`` of ``key`` carries.

        Re-entry after a suspension keeps the attempt; a start that never
        reached an outcome (its worker died) counts as an attempt, as a
        failure does.
        """
        if self.current != key:
            return 1
        return self.attempt + 1 if self.in_flight or self.failed else max(self.attempt, 1)

    def resume_for(self, key: StepKey) -> Resume | None:
        """The resume input waiting for ``key``, if any."""
        resume = self.resume
        if resume is not None and (resume.step, resume.iteration) == key:
            return resume
        return None

    def without_ledger(self) -> RunState:
        """A copy without the ledger, the same in every other field.

        Folding more facts into it changes every field but the ledger exactly
        as folding them into the full state would: the read models keep this
        small form of each run, so a row costs the same however long the run.
        """
        return replace(
            self,
            completed={},
            steps=[],
            stepped=set(),
            failures={},
            retries={},
            received=set(),
            inbox={topic: list(items) for topic, items in self.inbox.items()},
        )
