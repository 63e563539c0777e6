"""Handlers may use task groups; one broken drive never reaches the app."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from stemlog import Flow, RetryPolicy, RunStatus, WorkflowApp, WorkflowScript

pytestmark = pytest.mark.anyio


async def until_waiting(app: WorkflowApp, run_id: str, topic: str) -> None:
    with anyio.fail_after(5):
        while run_id not in await app.runs_waiting_on(topic):
            await anyio.sleep(0.005)


async def test_a_step_that_waits_inside_its_own_task_group_suspends(store_url: str) -> None:
    flow = Flow("grouped")

    @flow.step("gather")
    async def gather(ctx: Any) -> Any:
        found: dict[str, Any] = {}

        async def wait() -> None:
            found["payload"] = await ctx.wait_for_event("grouped.go")

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
        return found["payload"]

    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow)
        await until_waiting(app, run_id, "grouped.go")
        assert (await app.get_run(run_id)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
        await app.emit("grouped.go", {"n": 7})
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert result.value == {"n": 7}


async def test_a_script_whose_steps_run_in_its_own_task_group_suspends(store_url: str) -> None:
    async def run(script: Any) -> Any:
        async with anyio.create_task_group() as group:
            group.start_soon(script.wait_for_event, "script.go")
        return "after"

    script = WorkflowScript("grouped.script", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        run_id = await app.start(script)
        await until_waiting(app, run_id, "script.go")
        await app.emit("script.go", 1)
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "after"


class Explosion(BaseException):
    """Not an Exception: nothing in a step handles it."""


async def test_a_drive_that_raises_what_nothing_handles_fails_only_that_run(
    store_url: str,
) -> None:
    broken, fine = Flow("broken"), Flow("fine")

    @broken.step("explode")
    async def explode(ctx: Any) -> None:
        raise Explosion("out of the blue")

    fine.step("ok", lambda ctx: "ok")
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([broken, fine])
        bad = await app.start(broken)
        good = await app.start(fine)
        failed = await app.wait_for(bad, timeout=5)
        done = await app.wait_for(good, timeout=5)
        again = await app.start_and_wait(fine, timeout=5)  # the worker goes on
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None and "Explosion" in failed.error.type
    assert "out of the blue" in failed.error.message
    assert done.status is RunStatus.COMPLETED and again.status is RunStatus.COMPLETED


async def test_an_exception_group_from_a_handler_is_the_step_s_error(store_url: str) -> None:
    flow = Flow("group-error")

    @flow.step("both", retry=RetryPolicy(max_attempts=1))
    async def both(ctx: Any) -> None:
        async def fail(message: str) -> None:
            raise ValueError(message)

        async with anyio.create_task_group() as group:
            group.start_soon(fail, "left")
            group.start_soon(fail, "right")

    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=5)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "ExceptionGroup" in result.error.type


async def test_the_caller_s_own_exception_leaves_the_app_as_it_is() -> None:
    with pytest.raises(LookupError, match="mine"):
        async with WorkflowApp.open("memory://"):
            raise LookupError("mine")


async def test_closing_while_registering_and_recovering_is_safe(durable_url: str) -> None:
    flow = Flow("late")
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("late.go"))
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        for _ in range(20):
            await app.start(flow)
        with anyio.fail_after(5):
            while len(await app.runs_waiting_on("late.go")) < 20:
                await anyio.sleep(0.01)
    for _ in range(5):  # registration right before leaving schedules a recovery
        async with WorkflowApp.open(durable_url) as app:
            app.register_flows([flow])
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([flow])
        with anyio.fail_after(5):
            while len(await app.runs_waiting_on("late.go")) < 20:
                await anyio.sleep(0.01)
