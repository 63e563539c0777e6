"""A user's app, as the README shows it: ``mypy --strict`` must accept it.

Not collected by pytest (no tests here); ``tests/typing/test_mypy.py`` runs mypy
over it from outside the repository, as a user's project would.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemlog import (
    Flow,
    FlowContext,
    RunStatus,
    ScriptContext,
    ScriptStepContext,
    WorkflowApp,
    WorkflowRef,
    WorkflowResult,
    WorkflowScript,
)


@dataclass
class Order:
    order_id: str
    amount: int


approvals = Flow("approvals.flow")


@approvals.step("draft")
def draft(ctx: FlowContext) -> str:
    return str(ctx.required_param("document_id"))


@approvals.step("review")
def review(ctx: FlowContext) -> str | None:
    decision = ctx.wait_for_event_value("approvals.manager")
    return None if decision is None else str(decision)


async def charge(ctx: ScriptStepContext) -> str:
    return f"ch-{ctx.run_id}"


async def checkout(script: ScriptContext) -> str:
    charge_id = await script.step("charge", charge)
    return f"receipt-{charge_id}"


checkout_script = WorkflowScript("billing.checkout", run=checkout)
checkout_ref: WorkflowRef[Order] = checkout_script.ref_json(Order)


def encode_order(order: Order) -> dict[str, object]:
    return {"id": order.order_id, "amount": order.amount}


encoded_ref = checkout_script.ref(encode_order)  # WorkflowRef[Order], from encode_order


async def main() -> WorkflowResult:
    async with WorkflowApp.open("sqlite:///app.db") as app:
        app.register_flows([approvals])
        app.register_scripts([checkout_script])
        run_id = await app.start("approvals.flow", {"document_id": "doc-7"}, run_id="doc-7")
        await app.send(run_id, "approvals.manager", {"approved_by": "alice"})
        await app.start(checkout_script.ref_json(), Order("o-1", 10))
        await app.start(checkout_ref, Order("o-2", 20), run_id="order-2", if_exists="fail")
        await app.start(encoded_ref, Order("o-4", 40))
        result = await app.start_and_wait(checkout_ref, Order("o-3", 30), timeout=5)
        if result.status is RunStatus.COMPLETED:
            print(result.required_value())
        return await app.wait_for(run_id, timeout=5)
