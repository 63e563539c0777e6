"""Pure functions that turn records into rich tables and JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.cells import cell_len
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


RUN_COLUMNS = ("run id", "workflow", "v", "status", "step", "waiting on", "updated (UTC)")
_DROPPED_FIRST = (6, 2, 4)
"""Columns left out first when the terminal is narrow: updated, v, step."""
_GAP = 2
"""Cells between two columns of the runs table (no box: an id copies cleanly)."""


def run_cells(run: RunView) -> list[str]:
    """One row of the runs table, as text (in the order of :data:`RUN_COLUMNS`)."""
    waiting = run.wait_topic or (f"until {when(run.wake_at)}" if run.wake_at else "")
    status = str(run.status)
    if run.blocked is not None:
        status += " (blocked)"
    elif run.blocked_on_version is not None:
        status += f" (blocked: v{run.blocked_on_version} not registered)"
    return [run.run_id, run.workflow, str(run.version), status,
            run.current_step or "", waiting, _utc(run.updated_at)]  # fmt: skip


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _shown_width(widths: Sequence[int], gap: int) -> int:
    shown = [width for width in widths if width > 0]
    return sum(shown) + gap * max(len(shown) - 1, 0)


def fit_widths(
    natural: Sequence[int], width: int, *, gap: int, drop: Sequence[int] = (), least: int = 10
) -> list[int]:
    """Column widths for a table at most ``width`` cells wide; 0 leaves a column out.

    Column 0 (the run id) always keeps its natural width: an id cut short cannot
    be copied into the next command. The columns in ``drop`` (a time, a version:
    useless when cut) are shown whole or left out, in that order, until the
    table fits; then, while the others cannot each keep ``least`` cells, they
    are left out from the right; then the widest give up a cell at a time
    (their text ends in "…").
    """
    widths = list(natural)
    for index in drop:
        if _shown_width(widths, gap) <= width:
            break
        widths[index] = 0
    for index in range(len(widths) - 1, 0, -1):
        floor = [widths[0], *(min(w, least) for w in widths[1:])]
        if _shown_width(floor, gap) <= width:
            break
        widths[index] = 0
    excess = _shown_width(widths, gap) - width
    while excess > 0:
        widest = max(range(1, len(widths)), key=lambda i: widths[i], default=0)
        if widest == 0 or widths[widest] <= 1:
            break  # only the id is left: it is not cut
        widths[widest] -= 1
        excess -= 1
    return widths


def format_runs(runs: Sequence[RunView], width: int | None = None) -> Table:
    """The runs as a table that fits ``width`` cells (the terminal's) without ever
    cutting a run id (see :func:`fit_widths`); a caption says when other columns
    were cut or left out. ``None`` shows every column in full (``--wide``)."""
    rows = [run_cells(run) for run in runs]
    columns = zip(RUN_COLUMNS, *rows, strict=True)
    natural = [max(cell_len(text) for text in column) for column in columns]
    widths = natural if width is None else fit_widths(natural, width, gap=_GAP,
                                                      drop=_DROPPED_FIRST)  # fmt: skip
    shown = [index for index, w in enumerate(widths) if w > 0]
    caption = "(--wide shows every column in full)" if widths != natural else None
    table = Table(box=None, padding=(0, 1), pad_edge=False, caption=caption,
                  caption_justify="left")  # fmt: skip
    for index in shown:
        table.add_column(RUN_COLUMNS[index], width=widths[index], no_wrap=True,
                         overflow="fold" if index == 0 else "ellipsis")  # fmt: skip
    for row in rows:
        table.add_row(*(row[index] for index in shown))
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
