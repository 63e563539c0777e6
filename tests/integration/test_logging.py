"""Faults are visible: the ``stemlog`` loggers say what happened, with the run's fields."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from stemlog import Flow, RetryPolicy, RunStatus, WorkflowApp

pytestmark = pytest.mark.anyio


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name, None) for name in ("run_id", "workflow", "step", "attempt")}


async def test_failed_attempts_retries_and_run_ends_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stemlog")
    flow = Flow("l.flaky")
    calls: list[int] = []

    @flow.step("shaky", retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def shaky(ctx: Any) -> str:
        calls.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} broke")

    async with WorkflowApp.open("memory://") as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=5)
    assert result.status is RunStatus.FAILED
    failures = [r for r in caplog.records if r.name == "stemlog.steps"]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is not None for r in failures)  # with the traceback
    assert "next attempt at" in failures[0].getMessage()
    assert "no attempt is left" in failures[1].getMessage()
    assert [_fields(r) for r in failures] == [
        {"run_id": result.run_id, "workflow": "l.flaky", "step": "shaky", "attempt": 1},
        {"run_id": result.run_id, "workflow": "l.flaky", "step": "shaky", "attempt": 2},
    ]
    lifecycle = [r.getMessage() for r in caplog.records if r.name == "stemlog.runs"]
    assert lifecycle == [f"run {result.run_id} of l.flaky started",
                         f"run {result.run_id} of l.flaky ended failed"]  # fmt: skip


async def test_a_step_found_under_way_after_a_restart_is_logged_as_taken_over(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    flow = Flow("l.slow")
    started = anyio.Event()

    @flow.step("long")
    async def long(ctx: Any) -> str:
        if ctx.attempt == 1:
            started.set()
            await anyio.sleep_forever()
        return "done"

    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            await started.wait()
    caplog.set_level(logging.WARNING, logger="stemlog")
    async with WorkflowApp.open(durable_url) as app:  # the first worker stopped mid-step
        app.register_flows([flow])
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    (takeover,) = [r for r in caplog.records if "taking it over" in r.getMessage()]
    assert takeover.levelno == logging.WARNING
    assert _fields(takeover) == {"run_id": run_id, "workflow": "l.slow", "step": "long",
                                 "attempt": 1}  # fmt: skip
