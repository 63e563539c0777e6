"""Child workflows, rewind and fork (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from stemlog import (
    ChildWorkflowError,
    Flow,
    RunStatus,
    UnknownStepError,
    WorkflowApp,
    WorkflowScript,
)

pytestmark = pytest.mark.anyio


def child_flow() -> Flow:
    flow = Flow("child.double")

    @flow.step("double")
    async def double(ctx):
        if ctx.param("fail"):
            raise ValueError("child refused")
        return ctx.param("n") * 2

    return flow


async def test_start_child_and_wait_returns_the_childs_result(store_url: str) -> None:
    child = child_flow()

    async def run(script):
        async def spawn(ctx):
            return await ctx.start_child_and_wait(child, {"n": 21})

        return await script.step("spawn", spawn)

    parent = WorkflowScript("parent.script", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_workflows([child, parent])
        result = await app.start_and_wait(parent, timeout=10)
        children = await app.list_runs(workflow="child.double")
        parent_history = [fact.type for fact in await app.history(result.run_id)]
    assert result.status is RunStatus.COMPLETED
    assert result.value == 42
    assert len(children) == 1
    assert children[0].parent_run_id == result.run_id
    assert "EventAwaited" in parent_history and "EventReceived" in parent_history


async def test_a_failed_child_raises_in_the_parent(store_url: str) -> None:
    child = child_flow()
    seen: list[str] = []

    async def run(script):
        async def spawn(ctx):
            try:
                return await ctx.start_child_and_wait("child.double", {"n": 1, "fail": True})
            except ChildWorkflowError as error:
                seen.append(error.status)
                return f"child {error.status}: {error.error_type}"

        return await script.step("spawn", spawn)

    parent = WorkflowScript("parent.failing", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_workflows([child, parent])
        result = await app.start_and_wait(parent, timeout=10)
    assert result.value == "child failed: ValueError"
    assert seen == ["failed"]


async def test_start_child_is_idempotent_when_the_step_runs_again(store_url: str) -> None:
    child = child_flow()
    attempts: Counter[str] = Counter()
    flow = Flow("parent.twice")

    @flow.step("spawn")
    async def spawn(ctx):
        first = await ctx.start_child(child, {"n": 1})
        again = await ctx.start_child(child, {"n": 2})
        attempts["calls"] += 1
        return [first, again]

    async with WorkflowApp.open(store_url) as app:
        app.register_workflows([child, flow])
        result = await app.start_and_wait(flow, timeout=10)
        await app.rewind(result.run_id, "spawn")
        rerun = await app.wait_for(result.run_id, timeout=10)
        children = await app.list_runs(workflow="child.double")
    assert attempts["calls"] == 2
    assert rerun.value == result.value
    assert len(children) == 2


async def test_cancelling_a_parent_cancels_its_running_children(store_url: str) -> None:
    waiting_child = Flow("child.waits")
    waiting_child.step("wait", lambda ctx: ctx.wait_for_event_value("child.go"))
    flow = Flow("parent.cancelled")

    @flow.step("spawn")
    async def spawn(ctx):
        return await ctx.start_child_and_wait(waiting_child)

    async with WorkflowApp.open(store_url) as app:
        app.register_workflows([waiting_child, flow])
        parent_id = await app.start(flow)
        with anyio.fail_after(5):
            while not await app.runs_waiting_on("child.go"):
                await anyio.sleep(0.01)
        (child_id,) = await app.runs_waiting_on("child.go")
        await app.cancel(parent_id, "abandoned")
        parent = await app.wait_for(parent_id, timeout=5)
        child = await app.wait_for(child_id, timeout=5)
        child_view = await app.get_run(child_id)
    assert parent.status is RunStatus.CANCELLED
    assert child.status is RunStatus.CANCELLED
    assert child_view is not None and child_view.parent_run_id == parent_id


async def test_child_wait_survives_a_restart(durable_url: str) -> None:
    waiting_child = Flow("child.restart")
    waiting_child.step("wait", lambda ctx: ctx.wait_for_event_value("child.resume"))
    flow = Flow("parent.restart")

    @flow.step("spawn")
    async def spawn(ctx):
        return await ctx.start_child_and_wait(waiting_child)

    async with WorkflowApp.open(durable_url) as app:
        app.register_workflows([waiting_child, flow])
        parent_id = await app.start(flow)
        with anyio.fail_after(5):
            while not await app.runs_waiting_on("child.resume"):
                await anyio.sleep(0.01)
    async with WorkflowApp.open(durable_url) as app:
        app.register_workflows([waiting_child, flow])
        await app.emit("child.resume", "from-child")
        result = await app.wait_for(parent_id, timeout=10)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "from-child"


async def test_rewind_runs_the_step_and_later_ones_again(store_url: str) -> None:
    calls: Counter[str] = Counter()
    flow = Flow("rewind.flow")
    for name in ("a", "b", "c"):

        def handler(ctx, name=name):
            calls[name] += 1
            return f"{name}{calls[name]}"

        flow.step(name, handler)

    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        first = await app.start_and_wait(flow, timeout=5)
        await app.rewind(first.run_id, "b")
        second = await app.wait_for(first.run_id, timeout=5)
        types = [fact.type for fact in await app.history(first.run_id)]
        with pytest.raises(UnknownStepError):
            await app.rewind(first.run_id, "never")
    assert first.value == "c1"
    assert second.value == "c2"
    assert calls == {"a": 1, "b": 2, "c": 2}
    assert types.count("RunCompleted") == 2
    assert types[types.index("RunRewound") + 1 :] == [
        "StepStarted", "StepCompleted", "StepStarted", "StepCompleted", "RunCompleted",
    ]  # fmt: skip


async def test_fork_starts_a_new_run_from_the_history(store_url: str) -> None:
    calls: Counter[str] = Counter()

    async def run(script):
        a = await script.step("a", lambda ctx: calls.update("a") or 10)
        return await script.step("b", lambda ctx: calls.update("b") or a + 1)

    script = WorkflowScript("fork.script", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        original = await app.start_and_wait(script, timeout=5)
        fork_id = await app.fork(original.run_id, "b")
        forked = await app.wait_for(fork_id, timeout=5)
        history = await app.history(fork_id)
        source = await app.history(original.run_id)
        with pytest.raises(UnknownStepError):
            await app.fork(original.run_id, "z")
    assert forked.status is RunStatus.COMPLETED and forked.value == 11
    assert calls == {"a": 1, "b": 2}
    # the fork keeps positions 1..3 of the original: RunStarted and step "a"
    assert history[0].forked_from == {"run_id": original.run_id, "position": 3}
    assert [(f.type, f.data) for f in history[1:3]] == [(f.type, f.data) for f in source[1:3]]
    assert [f.type for f in history[3:]] == ["StepStarted", "StepCompleted", "RunCompleted"]
