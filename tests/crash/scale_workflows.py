"""Workflows for the multi-process tests: sleeps, events, retries, a script."""

from __future__ import annotations

from typing import Any

from stemlog import Flow, RetryPolicy, WorkflowScript

# The crash tests kill workers several times; a step whose worker dies counts
# an attempt (the poison-step rule), so every step gets more attempts than
# there are kills, or a step hit by every kill would rightly fail the run.
KILLS = 4
SURVIVES_KILLS = RetryPolicy(max_attempts=KILLS + 3, initial_delay=0.05)

orders = Flow("scale.orders", retry=SURVIVES_KILLS)


@orders.step("reserve")
def reserve(ctx: Any) -> int:
    return int(ctx.param("n")) * 2


@orders.step("nap")
async def nap(ctx: Any) -> Any:
    await ctx.sleep_for(0.05)
    return ctx.previous_value()


@orders.step("flaky")  # retried under the flow's SURVIVES_KILLS
def flaky(ctx: Any) -> Any:
    if ctx.attempt == 1:
        raise ConnectionError("first attempt fails")
    return ctx.previous_value()


@orders.step("approve")
def approve(ctx: Any) -> Any:
    decision = ctx.wait_for_event_value("scale.approve")
    if decision is None:
        return None
    return {"n": ctx.param("n"), "value": ctx.previous_value(), "by": decision}


async def _checkout(script: Any) -> Any:
    total = 0
    for index in range(3):
        total += await script.step("item", lambda ctx, i=index: i, auto_version=True)
    await script.sleep(0.05)
    return await script.step("total", lambda ctx: total + int(script.param("n")))


checkout = WorkflowScript("scale.checkout", run=_checkout, retry=SURVIVES_KILLS)
WORKFLOWS = [orders, checkout]
