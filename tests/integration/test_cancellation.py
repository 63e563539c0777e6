"""Cancellation by request and by policy, and TTL (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from stemlog import CancellationPolicy, Flow, RunEndedError, RunStatus, WorkflowApp
from stemlog.clock import ManualClock

pytestmark = pytest.mark.anyio


def waiting_flow(name: str) -> Flow:
    flow = Flow(name)
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("never.sent"))
    flow.step("after", lambda ctx: "unreachable")
    return flow


async def test_cancel_ends_a_suspended_run(store_url: str) -> None:
    flow = waiting_flow("cancel.me")
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("never.sent"):
                await anyio.sleep(0.01)
        await app.cancel(run_id, "customer asked")
        result = await app.wait_for(run_id, timeout=5)
        view = await app.get_run(run_id)
        history = await app.history(run_id)
        with pytest.raises(RunEndedError):
            await app.cancel(run_id)
        assert await app.runs_waiting_on("never.sent") == []
    assert result.status is RunStatus.CANCELLED
    assert view is not None and view.cancel_reason == "customer asked"
    assert history[-1].type == "RunCancelled"
    assert history[-1].reason == "customer asked"


async def test_a_step_in_flight_finishes_but_nothing_more_runs(store_url: str) -> None:
    entered, release = anyio.Event(), anyio.Event()
    later: list[str] = []
    flow = Flow("cancel.in.flight")

    @flow.step("slow")
    async def slow(ctx):
        entered.set()
        await release.wait()
        return "done"

    flow.step("next", lambda ctx: later.append("ran") or "next")
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        with anyio.fail_after(5):
            await entered.wait()
        await app.cancel(run_id, "stop")
        release.set()
        result = await app.wait_for(run_id, timeout=5)
        await anyio.sleep(0.1)
        types = [fact.type for fact in await app.history(run_id)]
    assert result.status is RunStatus.CANCELLED
    assert later == []
    assert types == ["RunStarted", "StepStarted", "RunCancelled"]


async def test_max_suspend_duration_cancels_without_a_step(store_url: str) -> None:
    clock = ManualClock()
    flow = waiting_flow("policy.suspend")
    policy = CancellationPolicy(max_suspend_duration=timedelta(minutes=5))
    async with WorkflowApp.open(store_url, clock=clock) as app:
        app.register_flows([flow])
        run_id = await app.start(flow, policy=policy)
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("never.sent"):
                await anyio.sleep(0.01)
        clock.advance(timedelta(minutes=4))
        assert (await app.wait_for(run_id, timeout=0.2)).timed_out
        clock.advance(timedelta(minutes=2))
        result = await app.wait_for(run_id, timeout=5)
        view = await app.get_run(run_id)
    assert result.status is RunStatus.CANCELLED
    assert view is not None and view.cancel_reason == "max_suspend_duration"


async def test_max_run_duration_cancels_a_run_in_a_long_step(store_url: str) -> None:
    clock = ManualClock()
    release = anyio.Event()
    flow = Flow("policy.run")

    @flow.step("long")
    async def long(ctx):
        await release.wait()
        return 1

    async with WorkflowApp.open(store_url, clock=clock) as app:
        app.register_flows([flow])
        run_id = await app.start(flow, policy=CancellationPolicy(max_run_duration=30))
        await anyio.sleep(0.05)
        clock.advance(31)
        result = await app.wait_for(run_id, timeout=5)
        release.set()
        view = await app.get_run(run_id)
    assert result.status is RunStatus.CANCELLED
    assert view is not None and view.cancel_reason == "max_run_duration"


async def test_ttl_hides_ended_runs_from_list_runs(store_url: str) -> None:
    clock = ManualClock()
    flow = Flow("ttl.flow")
    flow.step("only", lambda ctx: 1)
    async with WorkflowApp.open(store_url, clock=clock) as app:
        app.register_flows([flow])
        short = (await app.start_and_wait(flow, ttl=60, timeout=5)).run_id
        kept = (await app.start_and_wait(flow, timeout=5)).run_id
        assert {v.run_id for v in await app.list_runs(workflow="ttl.flow")} == {short, kept}
        clock.advance(61)
        visible = {v.run_id for v in await app.list_runs(workflow="ttl.flow")}
        everything = {
            v.run_id for v in await app.list_runs(workflow="ttl.flow", include_expired=True)
        }
        assert len(await app.history(short)) == 4  # the facts are kept
    assert visible == {kept}
    assert everything == {short, kept}
