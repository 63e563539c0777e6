"""Child workflows: starting them idempotently and telling parents how they ended.

A child's run id is derived from its parent's run id, the starting step, the
step's retry generation and the call's position in the step, so a step that
runs again after a crash finds the child it already started instead of
starting a second one (the child's id is also the step's recorded value).
When a child ends, its parent receives the outcome as an event on the topic
``stemlog.child:<child id>`` (with a deterministic event id, so the delivery
is idempotent); ``start_child_and_wait`` suspends on that topic.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from stemlog.codec import JSONValue
from stemlog.errors import ChildWorkflowError

CHILD_TOPIC_PREFIX = "stemlog.child:"


def child_topic(child_run_id: str) -> str:
    """The topic on which a parent hears how ``child_run_id`` ended."""
    return CHILD_TOPIC_PREFIX + child_run_id


def child_end_event_id(child_run_id: str) -> str:
    """The event id of that delivery (the same on every retry)."""
    return f"child-ended:{child_run_id}"


def child_run_id(parent_run_id: str, scope: str) -> str:
    """The deterministic id of the child started at ``scope`` of the parent."""
    return str(uuid5(UUID(parent_run_id), scope))


def child_outcome(status: str, result: JSONValue, error: dict[str, Any] | None) -> JSONValue:
    """The payload a parent receives when its child ends."""
    return {"status": status, "result": result, "error": error}


def unwrap_outcome(child_id: str, outcome: Any) -> JSONValue:
    """The child's result, or its failure raised as :class:`ChildWorkflowError`."""
    if outcome.get("status") == "completed":
        result: JSONValue = outcome.get("result")
        return result
    error = outcome.get("error") or {}
    raise ChildWorkflowError(
        child_id, str(outcome.get("status")), error.get("type"), str(error.get("message", ""))
    )
