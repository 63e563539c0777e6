"""The facts of a run: the events appended to the log.

Each fact is a small frozen class (eventsourcing makes every event class a
frozen dataclass) with an explicit, rename-proof ``TOPIC``. Field names are
part of the stored format: changing one needs an upcaster. Facts carry only
JSON values and aware UTC datetimes; user values are normalised by
:func:`stemlog.codec.normalize_json` before a fact is triggered.

Facts do not know how state evolves; applying one to a run delegates to
:func:`stemlog.model.fold.evolve` through the aggregate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypeAlias

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from stemlog.codec import JSONValue


class _AppliesFacts(Protocol):
    def apply_fact(self, fact: Any) -> None: ...


class RunFact(Aggregate.Event):
    """Base of every fact after ``RunStarted``."""

    TOPIC = "stemlog:RunFact"

    def apply(self, aggregate: Any) -> None:
        target: _AppliesFacts = aggregate
        target.apply_fact(self)


class RunStarted(Aggregate.Created):
    """A run was created.

    ``workflow_version`` pins the run to one definition version; ``forked_from``
    is ``{"run_id", "position"}`` when the run was forked from another run's
    history (``position``: the last fact of that history the fork keeps),
    else ``None``.
    """

    TOPIC = "stemlog:RunStarted"
    workflow: str
    kind: str
    workflow_version: int
    params: dict[str, JSONValue]
    fingerprint: str
    parent_run_id: str | None
    policy: dict[str, JSONValue] | None
    ttl: float | None
    forked_from: dict[str, JSONValue] | None

    def apply(self, aggregate: Any) -> None:
        target: _AppliesFacts = aggregate
        target.apply_fact(self)


class StepStarted(RunFact):
    """A step's handler is about to run (also on re-entry after a suspension)."""

    TOPIC = "stemlog:StepStarted"
    step: str
    iteration: int
    attempt: int


class StepCompleted(RunFact):
    """The handler returned ``value`` (``None`` is a value)."""

    TOPIC = "stemlog:StepCompleted"
    step: str
    iteration: int
    value: JSONValue


class StepFailed(RunFact):
    """The handler raised; ``retry_at`` is ``None`` when no attempt is left."""

    TOPIC = "stemlog:StepFailed"
    step: str
    iteration: int
    attempt: int
    error: dict[str, JSONValue]
    retry_at: datetime | None


class EventAwaited(RunFact):
    """The run suspends until ``topic`` arrives (or ``deadline`` passes)."""

    TOPIC = "stemlog:EventAwaited"
    step: str
    iteration: int
    topic: str
    deadline: datetime | None


class EventReceived(RunFact):
    """A payload was delivered to this run."""

    TOPIC = "stemlog:EventReceived"
    topic: str
    payload: JSONValue
    event_id: str


class EventTimedOut(RunFact):
    """The deadline of the awaited event passed first."""

    TOPIC = "stemlog:EventTimedOut"
    topic: str


class SleepStarted(RunFact):
    """The run suspends until ``wake_at``."""

    TOPIC = "stemlog:SleepStarted"
    step: str
    iteration: int
    wake_at: datetime


class SleepElapsed(RunFact):
    """The sleep's timer fired."""

    TOPIC = "stemlog:SleepElapsed"


class RunCompleted(RunFact):
    """Terminal: the run returned ``result``."""

    TOPIC = "stemlog:RunCompleted"
    result: JSONValue


class RunFailed(RunFact):
    """Terminal: retries exhausted, non-determinism, or an error in ``run``."""

    TOPIC = "stemlog:RunFailed"
    error: dict[str, JSONValue]


class RunCancelled(RunFact):
    """Terminal: cancelled by request or by policy."""

    TOPIC = "stemlog:RunCancelled"
    reason: str | None


class RunRewound(RunFact):
    """``to_step`` and the steps after it are to run again; nothing is deleted."""

    TOPIC = "stemlog:RunRewound"
    to_step: str


AnyFact: TypeAlias = (
    RunStarted
    | StepStarted
    | StepCompleted
    | StepFailed
    | EventAwaited
    | EventReceived
    | EventTimedOut
    | SleepStarted
    | SleepElapsed
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunRewound
)

FACT_TYPES: tuple[type[Any], ...] = (
    RunStarted,
    StepStarted,
    StepCompleted,
    StepFailed,
    EventAwaited,
    EventReceived,
    EventTimedOut,
    SleepStarted,
    SleepElapsed,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunRewound,
)
FACTS_BY_NAME: dict[str, type[Any]] = {cls.__name__: cls for cls in FACT_TYPES}
TERMINAL_FACTS: tuple[type[Any], ...] = (RunCompleted, RunFailed, RunCancelled)

_RESERVED = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def fact_fields(fact: AnyFact) -> dict[str, JSONValue]:
    """The stored fields of a fact, without eventsourcing's own attributes."""
    return {k: v for k, v in fact.__dict__.items() if k not in _RESERVED}


register_topic(RunFact.TOPIC, RunFact)
for _cls in FACT_TYPES:
    register_topic(_cls.TOPIC, _cls)
