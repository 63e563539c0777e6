"""``start --wait``: follow a run on standard error while standard output waits for
its result (a script reads the result; a person watches the steps go by)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from stemlog import Fact, RunStatus, RunView, WorkflowApp
from stemlog.cli.common import stemlog_command
from stemlog.cli.format import short
from stemlog.cli.output import Output, note

POLL = 0.2
"""Seconds between two looks at the run's history (its end wakes the wait at once)."""


def _step_name(data: dict[str, Any]) -> str:
    iteration = data.get("iteration")
    return f"{data.get('step')}#{iteration}" if isinstance(iteration, int) and iteration else \
        str(data.get("step"))  # fmt: skip


def progress_line(fact: Fact, began: datetime | None = None) -> str:
    """What a fact means to someone watching the run, in one line; ``began`` is when
    the step of a ``StepCompleted`` started (to say how long it took)."""
    data, step = fact.data, _step_name(fact.data)
    if fact.type == "RunStarted":
        return f"started {data['workflow']} run {fact.run_id}"
    if fact.type == "StepStarted":
        attempt = data.get("attempt")
        return f"  {step}: started" + (f" (attempt {attempt})" if attempt not in (None, 1) else "")
    if fact.type == "StepCompleted":
        if began is None:
            return f"  {step}: completed"
        return f"  {step}: completed in {(fact.timestamp - began).total_seconds() * 1e3:.1f} ms"
    if fact.type in ("StepFailed", "RunFailed"):
        error = data.get("error")
        what = f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else ""
        retry = f" (retry at {short(data['retry_at'])})" if data.get("retry_at") else ""
        return f"  {step}: failed: {what}{retry}" if fact.type == "StepFailed" else \
            f"failed: {what}"  # fmt: skip
    simple = {
        "EventAwaited": f"  {step}: waits on {data.get('topic')}",
        "EventReceived": f"  received {data.get('topic')}",
        "EventTimedOut": f"  {data.get('topic')}: timed out",
        "SleepStarted": f"  {step}: sleeps until {short(data.get('wake_at'))}",
        "SleepElapsed": "  woke up",
        "RunRewound": f"  rewound to {data.get('to_step')}",
        "RunCompleted": f"completed: {short(data.get('result'), 60)}",
        "RunCancelled": "cancelled" + (f": {data['reason']}" if data.get("reason") else ""),
    }  # fmt: skip
    return simple.get(fact.type, f"  {fact.type}")


def suspension_line(view: RunView, *, returning: bool) -> str:
    """What a suspended run waits for, and what the command does about it."""
    if view.wait_topic:
        what = f"waiting on {view.wait_topic}"
        how = f" (from another shell: {stemlog_command()}emit {view.wait_topic} JSON)"
    else:
        what, how = f"sleeping until {short(view.wake_at)}", ""
    then = "" if returning else f": still waiting{how}"
    return f"run {view.run_id} is suspended, {what}{then}"


@dataclass
class Follower:
    """Tells standard error each new fact of a run (``--json``: the fact's JSON line)
    and, once per suspension, what the run waits on."""

    run_id: str
    shown: int = 0
    began: dict[tuple[str, int], datetime] = field(default_factory=dict)
    suspension: tuple[str | None, datetime | None] | None = None

    def facts(self, history: list[Fact]) -> None:
        for fact in history[self.shown :]:
            iteration = fact.data.get("iteration")
            key = (str(fact.data.get("step")), iteration if isinstance(iteration, int) else 0)
            began = None
            if fact.type == "StepStarted":
                self.began[key] = fact.timestamp
            elif fact.type == "StepCompleted":
                began = self.began.pop(key, None)
            line = progress_line(fact, began)
            if Output.as_json:
                note(line.strip(), fact=orjson.loads(fact.to_json_line()))
            else:
                note(line)
        self.shown = len(history)

    def suspended(self, view: RunView, *, returning: bool) -> None:
        wait = (view.wait_topic, view.wake_at)
        if wait != self.suspension:
            self.suspension = wait
            line = suspension_line(view, returning=returning)
            note(line, run_id=view.run_id, status=str(view.status),
                 wait_topic=view.wait_topic, wake_at=view.wake_at)  # fmt: skip


async def follow(app: WorkflowApp, run_id: str, *, until_suspended: bool) -> RunView:
    """Wait for the run to end (or, with ``until_suspended``, to suspend), telling
    standard error what it does; the run's view when it does. The caller bounds
    the wait (``--timeout``) with a cancel scope.

    ``wait_for`` with a short timeout returns the moment the run ends and
    otherwise hands back every :data:`POLL` seconds to read the new facts.
    """
    follower = Follower(run_id)
    while True:
        result = await app.wait_for(run_id, timeout=POLL)
        follower.facts(await app.history(run_id))
        if not result.timed_out:
            break
        if result.status is RunStatus.SUSPENDED:
            view = await app.get_run(run_id, consistent=True)
            if view is not None and view.status is RunStatus.SUSPENDED:
                follower.suspended(view, returning=until_suspended)
                if until_suspended:
                    return view
        else:
            follower.suspension = None
    view = await app.get_run(run_id, consistent=True)
    assert view is not None, "a run that ended exists"
    return view
