"""The seed's billing retry script (Stem's ``retryScript``), step for step.

``charge`` waits for ``billing.charge.prepared``; while nothing has arrived
it returns ``"pending"`` with the wait recorded, so the run suspends and that
value is discarded, exactly as in the seed. ``confirm`` derives an
idempotency key from the charge and returns the receipt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stemlog import ScriptContext, ScriptStepContext, WorkflowApp, WorkflowRef, WorkflowScript


@dataclass(frozen=True)
class ChargePrepared:
    """The payment provider's notice that a charge is ready."""

    charge_id: str

    @classmethod
    def from_json(cls, data: Any) -> ChargePrepared:
        return cls(charge_id=str(data["charge_id"]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _run(script: ScriptContext) -> str:
    def charge(ctx: ScriptStepContext) -> str:
        resume = ctx.wait_for_event_value_json(
            "billing.charge.prepared", decode=ChargePrepared.from_json
        )
        if resume is None:
            return "pending"  # discarded: the wait is recorded, so the run suspends
        return resume.charge_id

    charge_id: str = await script.step("charge", charge)

    def confirm(ctx: ScriptStepContext) -> str:
        ctx.idempotency_key(f"confirm-{charge_id}")
        return f"receipt-{charge_id}"

    receipt: str = await script.step("confirm", confirm)
    return receipt


retry_script = WorkflowScript("billing.retry-script", run=_run)
retry_definition = retry_script.definition

retry_ref: WorkflowRef[dict[str, Any]] = retry_script.ref(encode_params=lambda params: params)
"""The seed's ``retryScript.ref(encodeParams: (params) => params)``."""


def register_script(app: WorkflowApp) -> None:
    """The seed's ``registerScript``."""
    app.register_scripts([retry_script])
