"""Retries, poison steps and the fact sequences they produce (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from stemlog import (
    Flow,
    RetryPolicy,
    RunStatus,
    StepFailedError,
    WorkflowApp,
    WorkflowScript,
)
from stemlog.clock import ManualClock

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=1.0)


def _types_and_attempts(history: list) -> list[tuple[str, object]]:
    return [(fact.type, fact.data.get("attempt")) for fact in history]


async def test_flow_step_is_retried_until_it_succeeds(store_url: str) -> None:
    calls: Counter[int] = Counter()
    flow = Flow("retry.flow", retry=FAST)

    @flow.step("flaky")
    def flaky(ctx):
        calls[ctx.attempt] += 1
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return "ok"

    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=10)
        history = await app.history(result.run_id)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "ok"
    assert calls == {1: 1, 2: 1, 3: 1}
    assert _types_and_attempts(history) == [
        ("RunStarted", None),
        ("StepStarted", 1),
        ("StepFailed", 1),
        ("StepStarted", 2),
        ("StepFailed", 2),
        ("StepStarted", 3),
        ("StepCompleted", None),
        ("RunCompleted", None),
    ]
    failed = [fact for fact in history if fact.type == "StepFailed"]
    assert all(fact.retry_at is not None for fact in failed)
    assert failed[0].error["type"] == "ConnectionError"


async def test_flow_fails_when_no_attempt_is_left(store_url: str) -> None:
    flow = Flow("always.fails")
    flow.step("boom", lambda ctx: 1 / 0, retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=10)
        history = await app.history(result.run_id)
        view = await app.get_run(result.run_id)
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.type == "ZeroDivisionError"
    assert "division by zero" in result.error.message
    assert "Traceback" in (result.error.traceback or "")
    assert [f.type for f in history][-3:] == ["StepStarted", "StepFailed", "RunFailed"]
    assert history[-2].retry_at is None
    assert view is not None and view.status == "failed" and view.error is not None


async def test_non_retryable_errors_fail_at_once(store_url: str) -> None:
    flow = Flow("non.retryable")

    @flow.step("lookup", retry=RetryPolicy(max_attempts=5, non_retryable=(KeyError,)))
    def lookup(ctx):
        raise KeyError("missing")

    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=10)
        history = await app.history(result.run_id)
    assert result.status is RunStatus.FAILED
    assert [f.type for f in history].count("StepStarted") == 1


async def test_script_can_catch_a_failed_step_and_compensate(store_url: str) -> None:
    compensations: list[str] = []

    async def run(script):
        try:
            await script.step("charge", lambda ctx: 1 / 0)
        except StepFailedError as error:
            failed_type = error.error_type
            await script.step("refund", lambda ctx: compensations.append(failed_type) or "r")
            return f"compensated {failed_type}"
        return "charged"

    script = WorkflowScript("compensate", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=10)
        replayed = await app.replay(result.run_id)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "compensated ZeroDivisionError"
    assert compensations == ["ZeroDivisionError"]
    assert replayed.divergence is None
    assert replayed.requested == [("charge", 0), ("refund", 0)]


async def test_error_escaping_run_fails_the_run(store_url: str) -> None:
    async def run(script):
        await script.step("one", lambda ctx: 1)
        raise RuntimeError("bad input in run")

    script = WorkflowScript("escaping", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=10)
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error.type == "RuntimeError"


async def test_retry_wait_is_a_durable_timer_across_restarts(durable_url: str) -> None:
    clock = ManualClock()
    calls: list[int] = []
    flow = Flow("durable.retry")

    @flow.step("flaky", retry=RetryPolicy(max_attempts=2, initial_delay=60))
    def flaky(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise TimeoutError("slow upstream")
        return ctx.attempt

    async with WorkflowApp.open(durable_url, clock=clock) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            while not calls:
                await anyio.sleep(0.01)
        waiting = await app.wait_for(run_id, timeout=0.2)
        assert waiting.timed_out and waiting.status is RunStatus.RUNNING
    async with WorkflowApp.open(durable_url, clock=clock) as app:
        app.register_flows([flow])
        clock.advance(61)
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert result.value == 2
    assert calls == [1, 2]
