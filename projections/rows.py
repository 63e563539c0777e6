"""The ``runs`` read model's row and how one fact changes it.

:func:`apply_fact` mirrors :func:`stemlog.model.fold.evolve` for the columns a
status view needs, without keeping step values, so a row stays small however
long the run. ``watchers`` and ``timers`` rows are derived from a run's row
(:func:`watcher_topic`, :func:`timer_due`), so the three models always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, final

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
from stemlog.model.records import RunStatus


@final
@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of the ``runs`` model.

    ``seq`` is the log position of the run's ``RunStarted`` (the order of
    ``list_runs``); ``inbox`` counts payloads sent before the run waited.
    """

    run_id: str
    seq: int
    workflow: str
    kind: str
    version: int
    status: RunStatus
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    position: int
    parent_run_id: str | None = None
    ttl: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    current_step: str | None = None
    wait_topic: str | None = None
    wake_at: datetime | None = None
    deadline: datetime | None = None
    retry_at: datetime | None = None
    attempts: int = 0
    cancel_reason: str | None = None
    ended_at: datetime | None = None
    inbox: dict[str, int] = field(default_factory=dict)
    max_run: float | None = None
    max_suspend: float | None = None
    suspended_at: datetime | None = None
    expires_at: datetime | None = None
    step_started_at: datetime | None = None


_FIELDS = tuple(f.name for f in fields(RunRow))


def _label(step: str, iteration: int) -> str:
    return step if iteration == 0 else f"{step}#{iteration}"


def start_row(fact: RunStarted, seq: int) -> RunRow:
    """The row of a run that just started at log position ``seq``."""
    return RunRow(
        run_id=str(fact.originator_id),
        seq=seq,
        workflow=fact.workflow,
        kind=fact.kind,
        version=fact.workflow_version,
        status=RunStatus.RUNNING,
        params=fact.params,
        created_at=fact.timestamp,
        updated_at=fact.timestamp,
        position=fact.originator_version,
        parent_run_id=fact.parent_run_id,
        ttl=fact.ttl,
        max_run=(fact.policy or {}).get("max_run_duration"),
        max_suspend=(fact.policy or {}).get("max_suspend_duration"),
    )


_NO_WAIT: dict[str, Any] = {
    "wait_topic": None, "wake_at": None, "deadline": None, "suspended_at": None,
}  # fmt: skip


def apply_fact(row: RunRow, fact: AnyFact) -> RunRow:
    """The row after one more fact (pure)."""
    return replace(row, **fact_changes(row, fact))


def apply_facts(row: RunRow, facts: list[AnyFact]) -> RunRow:
    """The row after several facts of its run, building one new row (pure)."""
    if len(facts) == 1:
        return apply_fact(row, facts[0])
    current = _Draft({name: getattr(row, name) for name in _FIELDS})
    for fact in facts:
        current.update(fact_changes(current, fact))
    return RunRow(**current)


class _Draft(dict[str, Any]):
    """A row's fields being changed; reads like a row for :func:`fact_changes`."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def fact_changes(row: RunRow | _Draft, fact: AnyFact) -> dict[str, Any]:
    """The columns one fact changes."""
    changes: dict[str, Any]
    match fact:
        case StepStarted(step=step, iteration=iteration, attempt=attempt):
            changes = {"current_step": _label(step, iteration), "attempts": attempt}
            changes["retry_at"], changes["step_started_at"] = None, fact.timestamp
        case StepCompleted():
            changes = {"current_step": None, "attempts": 0, "step_started_at": None}
        case StepFailed(error=error, retry_at=retry_at):
            changes = {"error": error, "retry_at": retry_at, "step_started_at": None}
        case EventAwaited(topic=topic, deadline=deadline):
            changes = _await(row, topic, deadline)
            if changes.get("status") is RunStatus.SUSPENDED:
                changes["suspended_at"] = fact.timestamp
        case EventReceived(topic=topic):
            changes = _receive(row, topic)
        case EventTimedOut() | SleepElapsed():
            changes = {"status": RunStatus.RUNNING, **_NO_WAIT}
        case SleepStarted(wake_at=wake_at):
            changes = {"status": RunStatus.SUSPENDED, **_NO_WAIT, "wake_at": wake_at}
            changes["suspended_at"] = fact.timestamp
        case RunCompleted(result=result):
            changes = _end(row, fact.timestamp, RunStatus.COMPLETED)
            changes |= {"result": result, "error": None}
        case RunFailed(error=error):
            changes = _end(row, fact.timestamp, RunStatus.FAILED) | {"error": error}
        case RunCancelled(reason=reason):
            changes = _end(row, fact.timestamp, RunStatus.CANCELLED) | {"cancel_reason": reason}
        case RunRewound():
            changes = {
                "status": RunStatus.RUNNING,
                **_NO_WAIT,
                "ended_at": None,
                "result": None,
                "error": None,
                "cancel_reason": None,
                "current_step": None,
                "attempts": 0,
            }
        case RunStarted():
            raise ValueError("RunStarted starts a row: use start_row")
    changes["updated_at"], changes["position"] = fact.timestamp, fact.originator_version
    return changes


def _await(row: RunRow | _Draft, topic: str, deadline: datetime | None) -> dict[str, Any]:
    if row.inbox.get(topic, 0) > 0:  # a payload sent earlier satisfies the wait at once
        inbox = dict(row.inbox)
        inbox[topic] -= 1
        return {"inbox": {k: v for k, v in inbox.items() if v}}
    return {"status": RunStatus.SUSPENDED, **_NO_WAIT, "wait_topic": topic, "deadline": deadline}


def _receive(row: RunRow | _Draft, topic: str) -> dict[str, Any]:
    if row.status is RunStatus.SUSPENDED and row.wait_topic == topic:
        return {"status": RunStatus.RUNNING, **_NO_WAIT}
    inbox = dict(row.inbox)
    inbox[topic] = inbox.get(topic, 0) + 1
    return {"inbox": inbox}


def _end(row: RunRow | _Draft, at: datetime, status: RunStatus) -> dict[str, Any]:
    expires_at = None if row.ttl is None else at + timedelta(seconds=row.ttl)
    changes = {"status": status, "ended_at": at, **_NO_WAIT, "retry_at": None}
    changes["step_started_at"] = None
    return changes | {"current_step": None, "expires_at": expires_at}


def watcher_topic(row: RunRow) -> str | None:
    """The topic the run waits on, for the ``watchers`` model."""
    return row.wait_topic if row.status is RunStatus.SUSPENDED else None


def timer_due(row: RunRow) -> datetime | None:
    """When the worker must act on the run by itself, for the ``timers`` model:
    a sleep's end, an event's deadline, a retry, or a cancellation policy's limit."""
    if row.status.is_terminal:
        return None
    dues: list[datetime | None] = []
    if row.status is RunStatus.SUSPENDED:
        dues += [row.wake_at, row.deadline]
        if row.max_suspend is not None and row.suspended_at is not None:
            dues.append(row.suspended_at + timedelta(seconds=row.max_suspend))
    else:
        dues.append(row.retry_at)
    if row.max_run is not None:
        dues.append(row.created_at + timedelta(seconds=row.max_run))
    return min((due for due in dues if due is not None), default=None)
