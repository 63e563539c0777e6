"""The seed's approvals flow (Stem's ``ApprovalsFlow``), step for step.

A draft is read from the ``draft`` param, the manager's decision arrives as an
event on ``approvals.manager`` (the step suspends until then and is re-entered
with it), and the last step records who approved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stemlog import Flow, FlowContext, WorkflowApp, WorkflowRef


@dataclass(frozen=True)
class ApprovalDraft:
    """The document to approve (the seed's ``ApprovalDraft``)."""

    document_id: str
    title: str = ""

    @classmethod
    def from_json(cls, data: Any) -> ApprovalDraft:
        return cls(document_id=str(data["document_id"]), title=str(data.get("title", "")))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ApprovalDecision:
    """A manager's decision (the seed's ``ApprovalDecision``)."""

    approved_by: str

    @classmethod
    def from_json(cls, data: Any) -> ApprovalDecision:
        return cls(approved_by=str(data["approved_by"]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _build(flow: Flow) -> None:
    @flow.step("draft")
    def draft(ctx: FlowContext) -> str:
        return ctx.required_param_json("draft", decode=ApprovalDraft.from_json).document_id

    @flow.step("manager-review")
    def manager_review(ctx: FlowContext) -> str | None:
        resume = ctx.wait_for_event_value_json(
            "approvals.manager", decode=ApprovalDecision.from_json
        )
        if resume is None:
            return None  # the wait is recorded: the run suspends here
        return resume.approved_by

    @flow.step("finalize")
    def finalize(ctx: FlowContext) -> str:
        approved_by = ctx.previous_value()
        return f"approved-by:{approved_by}"


approvals_flow = Flow("approvals.flow", build=_build)

approvals_ref: WorkflowRef[ApprovalDraft] = approvals_flow.ref(
    encode_params=lambda draft: {"draft": draft.to_json()}
)
"""Starts the flow from an ``ApprovalDraft`` (the seed's ``ref(encodeParams: ...)`` form;
its ``refJson`` form would encode the draft itself as the params, while the
flow reads it from the ``draft`` param)."""


def register_flow(app: WorkflowApp) -> None:
    """The seed's ``registerFlow``."""
    app.register_flows([approvals_flow])


def register_workflow_definition(app: WorkflowApp) -> None:
    """The seed's ``registerWorkflowDefinition``: register the frozen definition."""
    app.register_workflows([approvals_flow.definition])
