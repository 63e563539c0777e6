"""The ``runs`` read model: one row per run, every column derived from its folded state.

:func:`row_of` is the only place a row's columns get their values: from a
:class:`~stemlog.model.state.RunState` folded by :func:`stemlog.model.fold.evolve`,
through :mod:`stemlog.model.schedule` for the times. A row also keeps the
run's state without its ledger (``state``), so the next page of facts
continues the fold where this one left it; a row therefore costs the same
however long its run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, final

from stemlog.codec import JSONObject, JSONValue
from stemlog.model import schedule as timing
from stemlog.model.records import RunStatus
from stemlog.model.state import RunState, step_label
from stemlog.model.state_codec import state_from_json, state_to_json


@final
@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of the ``runs`` model.

    ``seq`` is the run's place in ``list_runs`` (see
    :func:`projections.page.start_seq`: its ``RunStarted``'s position in a log
    of one partition, its start time across partitions); ``attempts`` is the current step's
    attempt (0 when no step is current); ``due_at`` is :func:`stemlog.model.schedule.next_due`;
    ``state`` is the run's state without its ledger, params and result (which
    are columns of their own).
    """

    run_id: str
    seq: int
    workflow: str
    kind: str
    version: int
    status: RunStatus
    params: JSONObject
    created_at: datetime
    updated_at: datetime
    position: int
    parent_run_id: str | None
    ttl: float | None
    result: JSONValue
    error: JSONObject | None
    current_step: str | None
    wait_topic: str | None
    wake_at: datetime | None
    deadline: datetime | None
    retry_at: datetime | None
    attempts: int
    cancel_reason: str | None
    ended_at: datetime | None
    expires_at: datetime | None
    due_at: datetime | None
    state: dict[str, Any]
    blocked: str | None = None
    """Why the run is set aside (a fact that cannot be read or folded), if it is."""


def row_of(state: RunState, seq: int, *, schedule: bool = True) -> RunRow:
    """The row of a run in ``state`` whose ``RunStarted`` is at log position ``seq``.

    ``schedule=False`` leaves the due time and the expiry out (for a run set
    aside because they cannot be computed).
    """
    wait = state.wait
    due = timing.next_due(state) if schedule else None
    kept = state_to_json(state, ledger=False)
    del kept["params"], kept["result"]
    return RunRow(
        run_id=state.run_id, seq=seq, workflow=state.workflow, kind=str(state.kind),
        version=state.workflow_version, status=state.status, params=state.params,
        created_at=state.created_at, updated_at=state.updated_at or state.created_at,
        position=state.position, parent_run_id=state.parent_run_id, ttl=state.ttl,
        result=state.result, error=None if state.error is None else state.error.to_json(),
        current_step=None if state.current is None else step_label(state.current),
        wait_topic=timing.waiting_topic(state),
        wake_at=None if wait is None else wait.wake_at,
        deadline=None if wait is None else wait.deadline,
        retry_at=state.retry_at,
        attempts=state.attempt if state.current is not None else 0,
        cancel_reason=state.cancel_reason, ended_at=state.ended_at,
        expires_at=timing.expires_at(state) if schedule else None,
        due_at=None if due is None else due.at,
        state=kept,
    )  # fmt: skip


def state_of(row: RunRow) -> RunState:
    """The run's state (without its ledger) that ``row`` was derived from."""
    return state_from_json({**row.state, "params": row.params, "result": row.result})
