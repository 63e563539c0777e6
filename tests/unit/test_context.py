"""Step contexts: params, previous values, resume input, and recorded waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stemlog import EventTimeoutError, FlowContext, InvalidTopicError, MissingValueError
from stemlog.authoring.context import SuspendStep, WaitRequest
from stemlog.clock import ManualClock
from stemlog.model.state import Resume, ResumeKind

RUN_ID = "0b9a2f8e-6d7e-4d8f-9a41-2a3b4c5d6e7f"


def context(
    *,
    params: dict[str, Any] | None = None,
    previous: tuple[bool, Any] = (False, None),
    resume: Resume | None = None,
    iteration: int = 0,
    clock: ManualClock | None = None,
) -> FlowContext:
    return FlowContext(
        run_id=RUN_ID, workflow="wf", params=params or {}, step_name="review", step_index=1,
        iteration=iteration, attempt=2, previous=previous, resume=resume,
        clock=clock or ManualClock(),
    )  # fmt: skip


def test_params() -> None:
    ctx = context(params={"draft": {"id": 7}, "n": 1})
    assert ctx.param("n") == 1
    assert ctx.param("missing", "default") == "default"
    assert ctx.required_param("n") == 1
    with pytest.raises(MissingValueError):
        ctx.required_param("missing")
    calls: list[Any] = []
    assert ctx.param_json("missing", decode=calls.append) is None
    assert calls == []
    assert ctx.required_param_json("draft", decode=lambda d: d["id"]) == 7
    assert ctx.params_json(decode=lambda p: sorted(p)) == ["draft", "n"]
    assert (ctx.run_id, ctx.workflow, ctx.step_name, ctx.step_index, ctx.attempt) == (
        RUN_ID, "wf", "review", 1, 2,
    )  # fmt: skip


def test_previous_values() -> None:
    first = context()
    assert first.previous_value() is None
    assert first.previous_value("default") == "default"
    with pytest.raises(MissingValueError):
        first.required_previous_value()
    later = context(previous=(True, None))
    assert later.previous_value("default") is None  # None is a value
    assert later.required_previous_value() is None


def test_idempotency_keys_are_stable_and_scoped() -> None:
    assert context().idempotency_key() == f"wf/{RUN_ID}/review"
    assert context(iteration=3).idempotency_key() == f"wf/{RUN_ID}/review#3"
    assert context().idempotency_key("confirm-ch_1") == f"wf/{RUN_ID}/confirm-ch_1"


def test_wait_for_event_value_records_a_wait_or_returns_the_payload_once() -> None:
    deadline = datetime(2030, 1, 2, tzinfo=UTC)
    fresh = context()
    assert fresh.wait_for_event_value("approvals", deadline=deadline) is None
    assert fresh.wait_request == WaitRequest("approvals", deadline, None)
    resumed = context(resume=Resume("review", 0, ResumeKind.EVENT, "approvals", {"by": "al"}))
    assert resumed.wait_for_event_value_json("approvals", decode=lambda d: d["by"]) == "al"
    assert resumed.wait_request is None
    assert resumed.take_resume_data() is None  # the payload was taken


def test_take_resume_data_gives_the_input_once() -> None:
    ctx = context(resume=Resume("review", 0, ResumeKind.EVENT, "t", 5))
    assert ctx.take_resume_data() == 5
    assert ctx.take_resume_data() is None
    slept = context(resume=Resume("review", 0, ResumeKind.SLEEP, None, True))
    assert slept.take_resume_data() is True


def test_an_expired_wait_is_not_registered_again() -> None:
    ctx = context(resume=Resume("review", 0, ResumeKind.TIMEOUT, "approvals", None))
    assert ctx.wait_for_event_value("approvals") is None
    assert ctx.timed_out
    assert ctx.wait_for_event_value("approvals") is None
    assert ctx.wait_request is None


def test_sleeps() -> None:
    clock = ManualClock()
    ctx = context(clock=clock)
    assert not ctx.sleep_until_resumed(timedelta(minutes=5))
    assert ctx.wait_request == WaitRequest(None, None, clock.now() + timedelta(minutes=5))
    resumed = context(resume=Resume("review", 0, ResumeKind.SLEEP, None, True))
    assert resumed.sleep_until_resumed(10)
    assert resumed.wait_request is None


@pytest.mark.anyio
async def test_expression_style_suspends_or_returns() -> None:
    with pytest.raises(SuspendStep):
        await context().wait_for_event("t", timeout=3)
    got = context(resume=Resume("review", 0, ResumeKind.EVENT, "t", [1]))
    assert await got.wait_for_event("t") == [1]
    expired = context(resume=Resume("review", 0, ResumeKind.TIMEOUT, "t", None))
    with pytest.raises(EventTimeoutError):
        await expired.wait_for_event("t")
    with pytest.raises(SuspendStep):
        await context().sleep_for(1)
    await context(resume=Resume("review", 0, ResumeKind.SLEEP, None, True)).sleep_for(1)


@pytest.mark.parametrize("topic", ["", "  ", None, 3])
def test_topics_must_be_non_empty_strings(topic: Any) -> None:
    with pytest.raises(InvalidTopicError):
        context().wait_for_event_value(topic)
