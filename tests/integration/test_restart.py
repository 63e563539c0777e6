"""Close the app and open it again on the same SQLite file or PostgreSQL schema."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import anyio
import pytest

from stemlog import Flow, RunStatus, WorkflowApp, WorkflowScript
from stemlog.clock import ManualClock

pytestmark = pytest.mark.anyio


def counting_flow(calls: Counter[str]) -> Flow:
    flow = Flow("restartable")

    @flow.step("before")
    def before(ctx: Any) -> str:
        calls["before"] += 1
        return "b"

    @flow.step("wait")
    def wait(ctx: Any) -> Any:
        calls["wait"] += 1
        return ctx.wait_for_event_value("restart.go")

    @flow.step("after")
    def after(ctx: Any) -> Any:
        calls["after"] += 1
        return [ctx.previous_value(), "a"]

    return flow


async def test_a_suspended_run_continues_after_reopening(durable_url: str) -> None:
    calls: Counter[str] = Counter()
    flow = counting_flow(calls)
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("restart.go"):
                await anyio.sleep(0.005)
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        assert await app.runs_waiting_on("restart.go") == [run_id]
        await app.emit("restart.go", "yes")
        result = await app.wait_for(run_id, timeout=5)
    assert result.value == ["yes", "a"]
    assert calls == {"before": 1, "wait": 2, "after": 1}


async def test_a_sleep_fires_after_reopening(durable_url: str) -> None:
    clock = ManualClock()

    async def run(script: Any) -> str:
        await script.step("first", lambda ctx: 1)
        await script.sleep(timedelta(hours=1))
        return await script.step("second", lambda ctx: "woke")

    script = WorkflowScript("sleeper", run=run)
    async with WorkflowApp.open(durable_url, clock=clock) as app:
        app.register_scripts([script])
        run_id = await app.start(script)
        with anyio.fail_after(5):
            while (view := await app.get_run(run_id)) is None or view.wake_at is None:
                await anyio.sleep(0.005)
    clock.advance(timedelta(hours=2))
    async with WorkflowApp.open(durable_url, clock=clock) as app:
        app.register_scripts([script])
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "woke"


async def test_a_run_nobody_drove_is_driven_after_reopening(durable_url: str) -> None:
    calls: Counter[str] = Counter()
    flow = counting_flow(calls)
    async with WorkflowApp.open(durable_url, worker=False) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        assert (await app.get_run(run_id)).status == "running"  # type: ignore[union-attr]
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("restart.go"):
                await anyio.sleep(0.005)
        await app.send(run_id, "restart.go", "sent")
        result = await app.wait_for(run_id, timeout=5)
    assert result.value == ["sent", "a"]


async def test_a_step_in_flight_at_close_runs_again_as_the_next_attempt(durable_url: str) -> None:
    attempts: list[int] = []
    entered = anyio.Event()
    flow = Flow("in.flight")

    @flow.step("slow")
    async def slow(ctx: Any) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            entered.set()
            await anyio.sleep_forever()  # cancelled when the app closes
        return ctx.attempt

    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            await entered.wait()
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        result = await app.wait_for(run_id, timeout=5)
        history = [(f.type, f.data.get("attempt")) for f in await app.history(run_id)]
    assert result.value == 2
    assert attempts == [1, 2]
    assert history == [("RunStarted", None), ("StepStarted", 1), ("StepStarted", 2),
                       ("StepCompleted", None), ("RunCompleted", None)]  # fmt: skip
