"""Hypothesis strategies shared by the tests: JSON values and real run histories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from stemlog.errors import RunEndedError, UnknownStepError
from stemlog.model.facts import AnyFact
from stemlog.model.run import Run, StaleDecisionError

START = datetime(2030, 1, 1, tzinfo=UTC)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

COMMANDS = ("step", "complete", "fail", "retry", "await", "receive", "timeout", "sleep", "wake",
            "end", "cancel", "rewind", "crash")  # fmt: skip
commands = st.lists(
    st.tuples(st.sampled_from(COMMANDS), st.sampled_from(["a", "b", "c"]), json_values),
    max_size=40,
)


def new_run(params: dict[str, Any] | None = None) -> Run:
    return Run.begin(
        run_id=uuid.uuid4(), at=START, workflow="w", kind="flow", workflow_version=1,
        params=params or {}, fingerprint="f", parent_run_id=None, policy=None, ttl=None,
        forked_from=None,
    )  # fmt: skip


def apply(run: Run, command: str, name: str, value: Any, at: datetime) -> bool:
    """Apply one command; False when the run refuses it (nothing is triggered then)."""
    state = run.state
    key = state.current or (name, 0)
    error = {"type": "E", "message": name, "traceback": None}
    try:
        match command:
            case "step" | "crash":  # a crash is a start that never gets an outcome
                run.start_step(key, state.next_attempt(key), at)
            case "complete":
                run.complete_step(key, value, at)
            case "fail":
                run.fail_step(key, error, None, at)
            case "retry":
                run.fail_step(key, error, at + timedelta(seconds=1), at)
            case "await":
                run.await_event(key, f"t.{name}", at + timedelta(seconds=5), at)
            case "receive":
                run.receive_event(f"t.{name}", value, uuid.uuid4().hex, at)
            case "timeout":
                run.time_out_event(at + timedelta(seconds=10))
            case "sleep":
                run.start_sleep(key, at + timedelta(seconds=1), at)
            case "wake":
                run.elapse_sleep(at + timedelta(seconds=2))
            case "end":
                run.complete(value, at)
            case "cancel":
                run.cancel(name, at)
            case "rewind":
                run.rewind(name, at)
    except (StaleDecisionError, RunEndedError, UnknownStepError):
        return False
    return True


def history_of(plan: list[tuple[str, str, Any]]) -> tuple[Run, list[AnyFact]]:
    """Drive a fresh run through ``plan``; the run and every fact it appended."""
    run = new_run()
    facts: list[AnyFact] = list(run.collect_events())  # type: ignore[arg-type]
    for tick, (command, name, value) in enumerate(plan):
        if apply(run, command, name, value, START + timedelta(milliseconds=tick + 1)):
            facts.extend(run.collect_events())  # type: ignore[arg-type]
    return run, facts


histories = commands.map(history_of)
