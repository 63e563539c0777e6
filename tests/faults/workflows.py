"""The fault tests' workload: a script with a step, a durable sleep, a wait and a step."""

from __future__ import annotations

import os
from typing import Any

from stemlog import RetryPolicy, WorkflowApp, WorkflowScript


async def _run(script: Any) -> dict[str, int]:
    n = int(script.param("n"))
    doubled = await script.step("double", lambda ctx: n * 2)
    await script.sleep(0.3)
    payload = await script.wait_for_event("fault.go")
    total = await script.step("add", lambda ctx: doubled + int(payload["add"]))
    return {"n": n, "total": total}


faulty = WorkflowScript(
    "faults.workload", run=_run, retry=RetryPolicy(max_attempts=10, initial_delay=0.1)
)
"""``total`` is ``3 * n`` once the run receives ``{"add": n}`` on ``fault.go``."""

app = WorkflowApp.open(os.environ.get("STEMLOG_DB", "memory://"))
app.register_scripts([faulty])
