"""The facts of a run: the events appended to the log.

Each fact is a small frozen class (eventsourcing makes every event class a
frozen dataclass) with an explicit, rename-proof ``TOPIC``. Field names are
part of the stored format: changing one needs an upcaster. Facts carry only
JSON values and aware UTC datetimes; user values are normalised by
:func:`stemlog.codec.normalize_json` before a fact is triggered.

Facts do not know how state evolves; applying one to a run delegates to
:func:`stemlog.model.fold.evolve` through the aggregate. :func:`make_fact`
builds a fact from stored fields without running ``__init__`` (as
eventsourcing's mapper does), for the store's decoder and for imported
histories alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeAlias
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from stemlog.codec import JSONObject, JSONValue
from stemlog.model.records import WorkflowKind


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
    else ``None``. ``key`` is the business key the run was started by (its id
    is ``uuid5(STEMLOG_NAMESPACE, key)``), else ``None``; facts stored before
    keys existed read as ``None`` (see :data:`ADDED_FIELDS`).
    """

    TOPIC = "stemlog:RunStarted"
    workflow: str
    kind: WorkflowKind
    workflow_version: int
    params: JSONObject
    fingerprint: str
    parent_run_id: str | None
    policy: JSONObject | None
    ttl: float | None
    forked_from: JSONObject | None
    key: str | None = None

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
    error: JSONObject
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
    error: JSONObject


class RunCancelled(RunFact):
    """Terminal: cancelled by request or by policy."""

    TOPIC = "stemlog:RunCancelled"
    reason: str | None


class RunRewound(RunFact):
    """``to_step`` and the steps after it are to run again; nothing is deleted."""

    TOPIC = "stemlog:RunRewound"
    to_step: str


class RunSnapshot(Aggregate.Event):
    """A run's folded state at ``originator_version``, kept in eventsourcing's
    snapshot store so a long run loads from it and the facts after it.

    ``state`` is :func:`stemlog.model.state_codec.state_to_json` of the state.
    """

    TOPIC = "stemlog:RunSnapshot"
    state: dict[str, Any]


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
FACTS_BY_TOPIC: dict[str, type[Any]] = {cls.TOPIC: cls for cls in FACT_TYPES}
TERMINAL_FACTS: tuple[type[Any], ...] = (RunCompleted, RunFailed, RunCancelled)

_RESERVED = {"originator_id", "originator_version", "timestamp", "originator_topic"}

ADDED_FIELDS: dict[type[Any], dict[str, Any]] = {RunStarted: {"key": None}}
"""Fields added to a fact after facts of its kind were first stored, with what an
older fact that lacks one means: the upcasting of stored facts (a field is only
ever added this way, never renamed or removed)."""


def fact_fields(fact: AnyFact) -> dict[str, Any]:
    """The stored fields of a fact, without eventsourcing's own attributes."""
    return {k: v for k, v in fact.__dict__.items() if k not in _RESERVED}


RUN_TOPIC = "stemlog:Run"
"""The ``originator_topic`` of ``RunStarted``: the aggregate class's topic."""


def make_fact(cls: type[Any], run_id: UUID, position: int, fields: dict[str, Any]) -> AnyFact:
    """A fact of class ``cls`` from its stored fields (``timestamp`` among them).

    No ``__init__`` runs, as when eventsourcing decodes an event; the one
    field whose stored form differs from its type (``RunStarted.kind``) is
    converted here.
    """
    return fact_maker(cls)(run_id, position, fields)


FactMaker: TypeAlias = Callable[[UUID, int, dict[str, Any]], AnyFact]


def fact_maker(cls: type[Any]) -> FactMaker:
    """:func:`make_fact` for one class, what it looks up about the class looked up once
    (a reader of the log makes a million facts of a dozen classes)."""
    maker = _MAKERS.get(cls)
    if maker is None:
        maker = _MAKERS[cls] = _maker(cls)
    return maker


def _maker(cls: type[Any]) -> FactMaker:
    added = tuple(ADDED_FIELDS.get(cls, {}).items())
    declared = _declared(cls)
    started = cls is RunStarted
    new = object.__new__

    def make(run_id: UUID, position: int, fields: dict[str, Any]) -> AnyFact:
        for name, value in added:
            fields.setdefault(name, value)
        timestamp = fields.get("timestamp")
        if not (isinstance(timestamp, datetime) and timestamp.tzinfo is not None
                and declared.issubset(fields)):  # fmt: skip
            check_fields(cls, fields)  # says what is wrong
        fact = new(cls)
        state = fact.__dict__
        state.update(fields)
        state["originator_id"] = run_id
        state["originator_version"] = position
        if started:
            state["kind"] = WorkflowKind(state["kind"])
            state.setdefault("originator_topic", RUN_TOPIC)
        return fact  # type: ignore[no-any-return]

    return make


_MAKERS: dict[type[Any], FactMaker] = {}


register_topic(RunFact.TOPIC, RunFact)
register_topic(RunSnapshot.TOPIC, RunSnapshot)
for _cls in FACT_TYPES:
    register_topic(_cls.TOPIC, _cls)


def check_fields(cls: type[Any], fields: dict[str, Any]) -> None:
    """Refuse stored fields that cannot be the fact's: a field missing, or a
    ``timestamp`` that is not an aware datetime.

    Raises:
        ValueError: naming what is wrong.
    """
    timestamp = fields.get("timestamp")
    if not isinstance(timestamp, datetime) or timestamp.tzinfo is None:
        raise ValueError(f"{cls.__name__} has no aware timestamp: {timestamp!r}")
    declared = _DECLARED.get(cls)
    if declared is None:
        declared = _DECLARED[cls] = _declared(cls)
    if not declared.issubset(fields):
        missing = sorted(declared.difference(fields))
        raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}")


def _declared(cls: type[Any]) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__ == __name__:
            names.update(getattr(klass, "__annotations__", {}))
    return frozenset(names - _RESERVED)


_DECLARED: dict[type[Any], frozenset[str]] = {}
