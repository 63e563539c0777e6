"""A script with a loop of auto-versioned steps and a durable sleep."""

from __future__ import annotations

from stemlog import ScriptContext, ScriptStepContext, WorkflowScript


async def _run(script: ScriptContext) -> int:
    items = script.param("items", 3)
    total = 0
    for index in range(items if isinstance(items, int) else 3):

        def process(ctx: ScriptStepContext, index: int = index) -> int:
            return index * 10

        total += await script.step("process", process, auto_version=True)
    await script.sleep(0.01)
    return total


batch_script = WorkflowScript("examples.batch", run=_run)
"""Processes ``items`` items (``process#0``, ``process#1``, ...), naps, returns the sum."""
