"""A :class:`RunState` as a JSON object and back, exactly.

The read models keep each run's state without its ledger in this form
(``runs.state``), so a page of facts continues the fold where the previous
page left it. Times are integer microseconds since the epoch, step keys
``[name, iteration]`` pairs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stemlog.clock import from_micros, to_micros
from stemlog.model.policy import CancellationPolicy
from stemlog.model.records import ErrorInfo, RunStatus, WorkflowKind
from stemlog.model.state import Delivery, PendingWait, Resume, ResumeKind, RunState


def _time(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _moment(value: Any) -> datetime | None:
    return None if value is None else from_micros(int(value))


def state_to_json(state: RunState, *, ledger: bool = True) -> dict[str, Any]:
    """The state as a JSON object (see :func:`state_from_json`).

    With ``ledger=False`` it is the object of ``state.without_ledger()``,
    without making that copy first.
    """
    return _encoded(state, _ledger(state) if ledger else _LEDGER_FREE)


_LEDGER_FREE: dict[str, Any] = {
    "completed": [], "steps": [], "failures": [], "retries": [], "received": [],
}  # fmt: skip


def _ledger(state: RunState) -> dict[str, Any]:
    return {
        "completed": [[name, i, value] for (name, i), value in state.completed.items()],
        "steps": [list(key) for key in state.steps],
        "failures": [[name, i, e.to_json()] for (name, i), e in state.failures.items()],
        "retries": [[name, i, count] for (name, i), count in state.retries.items()],
        "received": sorted(state.received),
    }


def _encoded(state: RunState, ledger: dict[str, Any]) -> dict[str, Any]:
    """The object in one dict display, ledger first (the key order of the stored text)."""
    wait, resume = state.wait, state.resume
    return {
        **ledger,
        "run_id": state.run_id, "workflow": state.workflow, "kind": str(state.kind),
        "workflow_version": state.workflow_version, "params": state.params,
        "fingerprint": state.fingerprint, "parent_run_id": state.parent_run_id,
        "policy": None if state.policy is None else state.policy.to_json(),
        "ttl": state.ttl, "forked_from": state.forked_from,
        "created_at": _time(state.created_at), "status": str(state.status),
        "position": state.position, "updated_at": _time(state.updated_at),
        "current": None if state.current is None else list(state.current),
        "attempt": state.attempt, "in_flight": state.in_flight, "failed": state.failed,
        "retry_at": _time(state.retry_at), "step_started_at": _time(state.step_started_at),
        "wait": None if wait is None else {
            "step": wait.step, "iteration": wait.iteration, "topic": wait.topic,
            "wake_at": _time(wait.wake_at), "deadline": _time(wait.deadline),
            "since": _time(wait.since),
        },
        "resume": None if resume is None else {
            "step": resume.step, "iteration": resume.iteration, "kind": str(resume.kind),
            "topic": resume.topic, "payload": resume.payload,
        },
        "inbox": {t: [[d.payload, d.event_id] for d in items] for t, items in state.inbox.items()},
        "result": state.result,
        "error": None if state.error is None else state.error.to_json(),
        "cancel_reason": state.cancel_reason, "ended_at": _time(state.ended_at),
        "key": state.key,
    }  # fmt: skip


def state_from_json(data: dict[str, Any]) -> RunState:
    """The state :func:`state_to_json` encoded."""
    steps = [(str(name), int(i)) for name, i in data["steps"]]
    created_at = _moment(data["created_at"])
    assert created_at is not None, "a run's state always has its start time"
    return RunState(
        run_id=data["run_id"], workflow=data["workflow"], kind=WorkflowKind(data["kind"]),
        workflow_version=data["workflow_version"], params=data["params"],
        fingerprint=data["fingerprint"], parent_run_id=data["parent_run_id"],
        policy=CancellationPolicy.from_json(data["policy"]), ttl=data["ttl"],
        forked_from=data["forked_from"], created_at=created_at,
        status=RunStatus(data["status"]), position=data["position"],
        updated_at=_moment(data["updated_at"]),
        completed={(name, i): value for name, i, value in data["completed"]},
        steps=steps, stepped=set(steps),
        current=None if data["current"] is None else (data["current"][0], data["current"][1]),
        attempt=data["attempt"], in_flight=data["in_flight"], failed=data["failed"],
        retry_at=_moment(data["retry_at"]), step_started_at=_moment(data["step_started_at"]),
        failures={(name, i): ErrorInfo.from_json(e) for name, i, e in data["failures"]},
        retries={(name, i): count for name, i, count in data["retries"]},
        received=set(data["received"]),
        wait=_wait(data["wait"]), resume=_resume(data["resume"]),
        inbox={t: [Delivery(p, e) for p, e in items] for t, items in data["inbox"].items()},
        result=data["result"],
        error=None if data["error"] is None else ErrorInfo.from_json(data["error"]),
        cancel_reason=data["cancel_reason"], ended_at=_moment(data["ended_at"]),
        key=data.get("key"),  # states encoded before run keys existed have none
    )  # fmt: skip


def _wait(data: dict[str, Any] | None) -> PendingWait | None:
    if data is None:
        return None
    since = _moment(data["since"])
    assert since is not None, "a wait always has its start"
    return PendingWait(
        data["step"], data["iteration"], data["topic"],
        _moment(data["wake_at"]), _moment(data["deadline"]), since,
    )  # fmt: skip


def _resume(data: dict[str, Any] | None) -> Resume | None:
    if data is None:
        return None
    kind = ResumeKind(data["kind"])
    return Resume(data["step"], data["iteration"], kind, data["topic"], data["payload"])
