"""The workflows of ``benchmarks/scale.py``, as an app module for ``stemlog worker``.

``stemlog worker scale_workflows:app`` (from ``benchmarks/``) or
``stemlog worker benchmarks.scale_workflows:app`` (from the repository's root).

* ``seed``: the seed's approvals flow and billing script, as they are
  (``stemlog.examples``);
* ``io``: the same two workflows where every step handler first awaits 5 ms
  of I/O (``anyio.sleep(0.005)``) — each time it is entered, so the step that
  waits for the event awaits it once before suspending and once on resume.
"""

from __future__ import annotations

import os
from typing import Any

import anyio

from stemlog import Flow, FlowContext, ScriptContext, ScriptStepContext, WorkflowApp, WorkflowScript
from stemlog.examples.approvals import approvals_flow
from stemlog.examples.billing import retry_script

IO_SECONDS = 0.005


def _build_io_approvals(flow: Flow) -> None:
    @flow.step("draft")
    async def draft(ctx: FlowContext) -> str:
        await anyio.sleep(IO_SECONDS)
        return str(ctx.required_param("draft")["document_id"])

    @flow.step("manager-review")
    async def manager_review(ctx: FlowContext) -> str | None:
        await anyio.sleep(IO_SECONDS)
        decision = ctx.wait_for_event_value("approvals.manager")
        if decision is None:
            return None
        return str(decision["approved_by"])

    @flow.step("finalize")
    async def finalize(ctx: FlowContext) -> str:
        await anyio.sleep(IO_SECONDS)
        return f"approved-by:{ctx.previous_value()}"


io_approvals_flow = Flow("bench.io-approvals.flow", build=_build_io_approvals)


async def _io_billing(script: ScriptContext) -> str:
    async def charge(ctx: ScriptStepContext) -> str:
        await anyio.sleep(IO_SECONDS)
        resume = ctx.wait_for_event_value("billing.charge.prepared")
        if resume is None:
            return "pending"
        return str(resume["charge_id"])

    charge_id: str = await script.step("charge", charge)

    async def confirm(ctx: ScriptStepContext) -> str:
        await anyio.sleep(IO_SECONDS)
        return f"receipt-{charge_id}"

    receipt: str = await script.step("confirm", confirm)
    return receipt


io_billing_script = WorkflowScript("bench.io-billing.script", run=_io_billing)

WORKLOADS: dict[str, tuple[Any, Any]] = {
    "seed": (approvals_flow, retry_script),
    "io": (io_approvals_flow, io_billing_script),
}
"""workload → (approvals-like flow started with ``{"draft": {"document_id": ...}}``,
billing-like script); the flow waits on ``approvals.manager``, the script on
``billing.charge.prepared``."""

DEFINITIONS = [approvals_flow, retry_script, io_approvals_flow, io_billing_script]

app = WorkflowApp.open(os.environ.get("STEMLOG_DB", "sqlite:///./stemlog.db"))
app.register_workflows(DEFINITIONS)
