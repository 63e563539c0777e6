"""Flows and scripts end to end on every store, asyncio and trio."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import anyio
import pytest

from stemlog import EventTimeoutError, Flow, RunStatus, WorkflowApp, WorkflowScript
from stemlog.clock import ManualClock

pytestmark = pytest.mark.anyio


async def until_waiting(app: WorkflowApp, run_id: str, topic: str) -> None:
    with anyio.fail_after(5):
        while run_id not in await app.runs_waiting_on(topic):
            await anyio.sleep(0.005)


async def test_three_step_flow_sync_and_async_handlers(store_url: str) -> None:
    flow = Flow("three")
    flow.step("one", lambda ctx: ctx.param("start"))

    @flow.step("two")
    async def two(ctx: Any) -> Any:
        return ctx.previous_value() + 1

    flow.step("three", lambda ctx: None)  # None is a value: the step completes
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, {"start": 1}, timeout=5)
        history = await app.history(result.run_id)
        view = await app.get_run(result.run_id)
    assert result.status is RunStatus.COMPLETED
    assert result.value is None
    assert result.required_value() is None
    assert [(f.type, f.data.get("step")) for f in history] == [
        ("RunStarted", None),
        ("StepStarted", "one"), ("StepCompleted", "one"),
        ("StepStarted", "two"), ("StepCompleted", "two"),
        ("StepStarted", "three"), ("StepCompleted", "three"),
        ("RunCompleted", None),
    ]  # fmt: skip
    assert [f.position for f in history] == list(range(1, 9))
    assert history[4].value == 2
    assert view is not None and view.status == "completed" and view.ended_at is not None


async def test_directive_suspension_reenters_the_step_with_the_payload(store_url: str) -> None:
    entries: list[Any] = []
    flow = Flow("directive")

    @flow.step("review")
    def review(ctx: Any) -> Any:
        entries.append(ctx.attempt)
        decision = ctx.wait_for_event_value("review.done")
        if decision is None:
            return "discarded"
        return decision["by"]

    flow.step("after", lambda ctx: f"by {ctx.previous_value()}")
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        await until_waiting(app, run_id, "review.done")
        view = await app.get_run(run_id)
        assert view is not None
        assert (view.status, view.wait_topic, view.current_step) == (
            "suspended", "review.done", "review",
        )  # fmt: skip
        assert await app.emit("review.done", {"by": "alice"}) == [run_id]
        result = await app.wait_for(run_id, timeout=5)
        types = [f.type for f in await app.history(run_id)]
    assert result.value == "by alice"
    assert entries == [1, 1]  # entered twice, the same attempt
    assert types.count("StepStarted") == 3
    assert "EventAwaited" in types and "EventReceived" in types


async def test_expression_style_waits_and_sleeps(store_url: str) -> None:
    clock = ManualClock()
    flow = Flow("expression")

    @flow.step("wait")
    async def wait(ctx: Any) -> Any:
        return await ctx.wait_for_event("go")

    @flow.step("nap")  # one suspension per step: each re-entry starts from the top
    async def nap(ctx: Any) -> Any:
        await ctx.sleep_for(timedelta(minutes=1))
        return ctx.previous_value()

    async with WorkflowApp.open(store_url, clock=clock) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        await until_waiting(app, run_id, "go")
        await app.emit("go", 7)
        with anyio.fail_after(5):
            while (await app.get_run(run_id)).wake_at is None:  # type: ignore[union-attr]
                await anyio.sleep(0.005)
        clock.advance(timedelta(minutes=2))
        result = await app.wait_for(run_id, timeout=5)
    assert result.value == 7


async def test_deadlines(store_url: str) -> None:
    clock = ManualClock()
    outcomes: list[Any] = []
    flow = Flow("deadline")

    @flow.step("directive")
    def directive(ctx: Any) -> Any:
        value = ctx.wait_for_event_value("never", deadline=clock.now() + timedelta(seconds=30))
        if value is None and not ctx.timed_out:
            return None
        outcomes.append(("directive", value, ctx.timed_out))
        return "timed out"

    @flow.step("expression")
    async def expression(ctx: Any) -> Any:
        try:
            return await ctx.wait_for_event("also.never", timeout=30)
        except EventTimeoutError as error:
            outcomes.append(("expression", error.topic, True))
            return "raised"

    async with WorkflowApp.open(store_url, clock=clock) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        await until_waiting(app, run_id, "never")
        clock.advance(31)
        await until_waiting(app, run_id, "also.never")
        clock.advance(31)
        result = await app.wait_for(run_id, timeout=5)
        assert await app.emit("never", "too late") == []
        types = [f.type for f in await app.history(run_id)]
    assert result.value == "raised"
    assert outcomes == [("directive", None, True), ("expression", "also.never", True)]
    assert types.count("EventTimedOut") == 2
    assert "EventReceived" not in types


async def test_script_steps_are_not_executed_again(store_url: str) -> None:
    calls: Counter[str] = Counter()

    async def run(script: Any) -> Any:
        total = 0
        for index in range(3):
            total += await script.step("item", lambda ctx, i=index: calls.update(["item"]) or i,
                                       auto_version=True)  # fmt: skip
        payload = await script.wait_for_event("more")
        return await script.step("sum", lambda ctx: calls.update(["sum"]) or total + payload)

    script = WorkflowScript("once", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        run_id = await app.start(script)
        await until_waiting(app, run_id, "more")
        await app.emit("more", 100)
        result = await app.wait_for(run_id, timeout=5)
        steps = [f.step for f in await app.history(run_id) if f.type == "StepCompleted"]
    assert result.value == 103
    assert calls == {"item": 3, "sum": 1}
    assert steps == ["item", "item", "item", "@wait:more", "sum"]


async def test_send_is_kept_until_the_run_waits_but_emit_is_not(store_url: str) -> None:
    gate = anyio.Event()
    flow = Flow("buffered")

    @flow.step("busy")
    async def busy(ctx: Any) -> int:
        await gate.wait()
        return 1

    flow.step("wait", lambda ctx: ctx.wait_for_event_value("note"))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        assert await app.emit("note", "lost") == []  # nobody waits yet
        await app.send(run_id, "note", "kept")
        gate.set()
        result = await app.wait_for(run_id, timeout=5)
    assert result.value == "kept"


async def test_emit_reaches_every_waiting_run(store_url: str) -> None:
    flow = Flow("fanout")
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("broadcast"))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_ids = [await app.start(flow) for _ in range(5)]
        for run_id in run_ids:
            await until_waiting(app, run_id, "broadcast")
        reached = await app.emit("broadcast", {"n": 1})
        results = [await app.wait_for(run_id, timeout=5) for run_id in run_ids]
        listed = await app.list_runs(workflow="fanout", limit=3)
        rest = await app.list_runs(workflow="fanout", after=listed[-1].run_id)
    assert sorted(reached) == sorted(run_ids)
    assert all(result.value == {"n": 1} for result in results)
    assert [v.run_id for v in listed + rest] == run_ids


async def test_wait_for_times_out_without_raising(store_url: str) -> None:
    flow = Flow("slow")
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("never"))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=0.2)
    assert result.timed_out
    assert result.status in (RunStatus.RUNNING, RunStatus.SUSPENDED)


async def test_consistent_get_run_folds_the_facts(store_url: str) -> None:
    flow = Flow("consistent")
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("c.go"))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        await until_waiting(app, run_id, "c.go")
        from_view = await app.get_run(run_id)
        folded = await app.get_run(run_id, consistent=True)
        assert await app.get_run("00000000-0000-0000-0000-000000000000", consistent=True) is None
    assert folded is not None and from_view is not None
    assert (folded.status, folded.wait_topic, folded.current_step) == (
        from_view.status, from_view.wait_topic, from_view.current_step,
    )  # fmt: skip
    assert folded.updated_at == from_view.updated_at
