"""Pure functions that turn records into rich tables and JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from rich.table import Table

from stemlog import Fact, ModelStatus, ReplayReport, RunView

_KEY_FIELDS = ("step", "iteration", "attempt", "topic", "value", "payload", "result", "reason",
               "to_step", "wake_at", "deadline", "retry_at", "error")  # fmt: skip


def short(value: Any, width: int = 48) -> str:
    """A value as compact JSON, cut to ``width`` characters."""
    if isinstance(value, datetime):
        text = value.isoformat(timespec="milliseconds")
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="milliseconds")


def fact_summary(fact: Fact) -> str:
    """The fields of a fact that matter to a reader, as ``name=value`` pairs."""
    parts = []
    for name in _KEY_FIELDS:
        if name in fact.data and fact.data[name] is not None:
            value = fact.data[name]
            if (name, value) in (("iteration", 0), ("attempt", 1)):
                continue  # the usual values say nothing
            if name == "error" and isinstance(value, dict):
                value = f"{value.get('type')}: {value.get('message')}"
            parts.append(f"{name}={short(value, 40)}")
    if fact.type == "RunStarted":
        parts = [f"workflow={fact.data['workflow']}", f"params={short(fact.data['params'], 40)}"]
    return " ".join(parts)


def format_runs(runs: Sequence[RunView]) -> Table:
    table = Table("run id", "workflow", "v", "status", "step", "waiting on", "updated")
    for run in runs:
        waiting = run.wait_topic or (f"until {when(run.wake_at)}" if run.wake_at else "")
        status = str(run.status)
        if run.blocked is not None:
            status += " (blocked)"
        elif run.blocked_on_version is not None:
            status += f" (blocked: v{run.blocked_on_version} not registered)"
        table.add_row(run.run_id, run.workflow, str(run.version), status,
                      run.current_step or "", waiting, when(run.updated_at))  # fmt: skip
    return table


def run_json(run: RunView) -> dict[str, Any]:
    """A run view as a JSON-ready dict."""
    data = {name: getattr(run, name) for name in run.__slots__}
    data["error"] = None if run.error is None else run.error.to_json()
    return data


def format_run(run: RunView) -> Table:
    table = Table("field", "value", show_header=False)
    table.add_row("run id", run.run_id)
    table.add_row("workflow", f"{run.workflow} v{run.version} ({run.kind})")
    table.add_row("status", str(run.status))
    rows = {
        "current step": run.current_step, "waiting on": run.wait_topic,
        "wakes at": when(run.wake_at), "deadline": when(run.deadline),
        "attempts": str(run.attempts) if run.attempts else None,
        "lease": run.lease_owner and f"{run.lease_owner} until {when(run.lease_expires_at)}",
        "parent": run.parent_run_id, "cancel reason": run.cancel_reason,
        "result": None if run.result is None else short(run.result, 80),
        "error": None if run.error is None else f"{run.error.type}: {run.error.message}",
        "blocked": run.blocked or (None if run.blocked_on_version is None
                                   else f"version {run.blocked_on_version} is not registered here"),
        "created": when(run.created_at), "ended": when(run.ended_at),
    }  # fmt: skip
    for name, value in rows.items():
        if value:
            table.add_row(name, value)
    return table


def format_timeline(history: Sequence[Fact], divergence_at: int | None = None) -> Table:
    """The facts of a run, with the time since the run started and each step's duration."""
    table = Table("#", "fact", "at (UTC)", "+ms", "step ms", "details")
    start = history[0].timestamp if history else None
    opened: dict[tuple[str, int], datetime] = {}
    for fact in history:
        iteration = fact.data.get("iteration")
        key = (str(fact.data.get("step")), iteration if isinstance(iteration, int) else 0)
        duration = ""
        if fact.type == "StepStarted":
            opened[key] = fact.timestamp
        elif fact.type in ("StepCompleted", "StepFailed", "EventAwaited", "SleepStarted"):
            began = opened.pop(key, None)
            if began is not None:
                duration = f"{(fact.timestamp - began).total_seconds() * 1e3:.1f}"
        offset = "" if start is None else f"{(fact.timestamp - start).total_seconds() * 1e3:.1f}"
        marker = " ← diverges" if divergence_at == fact.position else ""
        clock = fact.timestamp.strftime("%H:%M:%S.%f")[:-3]
        table.add_row(str(fact.position), fact.type + marker, clock, offset,
                      duration, fact_summary(fact))  # fmt: skip
    return table


def format_replay(report: ReplayReport) -> Table:
    table = Table("#", "fact", "status", "step", "waiting on", "completed steps")
    for state in report.states:
        table.add_row(str(state.position), state.fact, str(state.status),
                      state.current_step or "", state.wait_topic or "",
                      str(state.completed_steps))  # fmt: skip
    return table


def format_models(models: Sequence[ModelStatus]) -> Table:
    table = Table("model", "version", "position", "lag")
    for model in models:
        table.add_row(model.name, str(model.version), str(model.position), str(model.lag))
    return table


def format_manifest(manifest: Sequence[dict[str, Any]]) -> Table:
    table = Table("workflow", "kind", "version", "steps", "fingerprint")
    for entry in manifest:
        table.add_row(entry["name"], entry["kind"], str(entry["version"]),
                      ", ".join(entry["steps"]) or "(script checkpoints)",
                      entry["fingerprint"])  # fmt: skip
    return table
