"""Workflows the crash tests run in a worker process and again after killing it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio

from stemlog import Flow, RetryPolicy

blocking = Flow("crash.blocking")


@blocking.step("prepare")
def prepare(ctx: Any) -> str:
    return "ready"


@blocking.step("work")
async def work(ctx: Any) -> Any:
    marker = Path(ctx.param("marker"))
    marker.with_suffix(f".attempt{ctx.attempt}").write_text("entered")
    if ctx.attempt == 1:
        await anyio.sleep_forever()  # killed here
    return f"done on attempt {ctx.attempt}"


@blocking.step("wait")
def wait(ctx: Any) -> Any:
    return ctx.wait_for_event_value("crash.go")


poison = Flow("crash.poison")


@poison.step("kill", retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
def kill(ctx: Any) -> None:
    Path(ctx.param("marker")).with_suffix(f".attempt{ctx.attempt}").write_text("entered")
    os.kill(os.getpid(), signal.SIGKILL)
