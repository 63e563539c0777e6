"""Bad input gets a typed error and appends nothing."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from stemlog import (
    Flow,
    InvalidPayloadError,
    InvalidTopicError,
    RunEndedError,
    StemlogError,
    UnknownRunError,
    UnknownWorkflowError,
    WorkflowApp,
)

pytestmark = pytest.mark.anyio

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def log_head(app: WorkflowApp) -> int:
    runtime = app._runtime
    assert runtime is not None
    return runtime.store.head()


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[WorkflowApp]:
    flow = Flow("waits")
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("topic"))
    done = Flow("done")
    done.step("only", lambda ctx: 1)
    async with WorkflowApp.open(store_url) as opened:
        opened.register_flows([flow, done])
        yield opened


async def waiting_run(app: WorkflowApp) -> str:
    run_id = await app.start("waits")
    with anyio.fail_after(5):
        while run_id not in await app.runs_waiting_on("topic"):
            await anyio.sleep(0.005)
    return run_id


BAD_VALUES = [pytest.param({1, 2}, id="set"), pytest.param(math.nan, id="nan"),
              pytest.param(object(), id="object"), pytest.param(2**70, id="big-int")]  # fmt: skip


async def test_unknown_workflow(app: WorkflowApp) -> None:
    head = log_head(app)
    with pytest.raises(UnknownWorkflowError) as raised:
        await app.start("nope")
    assert isinstance(raised.value, LookupError) and isinstance(raised.value, StemlogError)
    unregistered = Flow("unregistered")
    unregistered.step("a", lambda ctx: 1)
    with pytest.raises(UnknownWorkflowError):
        await app.start(unregistered)
    assert log_head(app) == head


@pytest.mark.parametrize("value", BAD_VALUES)
async def test_params_that_cannot_be_stored(app: WorkflowApp, value: Any) -> None:
    head = log_head(app)
    with pytest.raises(InvalidPayloadError) as raised:
        await app.start("done", {"value": value})
    assert isinstance(raised.value, ValueError)
    with pytest.raises(InvalidPayloadError):
        await app.start("done", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert log_head(app) == head


@pytest.mark.parametrize("value", BAD_VALUES)
async def test_payloads_that_cannot_be_stored(app: WorkflowApp, value: Any) -> None:
    run_id = await waiting_run(app)
    head = log_head(app)
    with pytest.raises(InvalidPayloadError):
        await app.emit("topic", {"value": value})
    with pytest.raises(InvalidPayloadError):
        await app.send(run_id, "topic", value)
    assert log_head(app) == head
    assert await app.runs_waiting_on("topic") == [run_id]


@pytest.mark.parametrize("topic", ["", "   ", None, 42])
async def test_topics_must_be_non_empty_strings(app: WorkflowApp, topic: Any) -> None:
    run_id = await waiting_run(app)
    head = log_head(app)
    with pytest.raises(InvalidTopicError):
        await app.emit(topic, 1)
    with pytest.raises(InvalidTopicError):
        await app.send(run_id, topic, 1)
    with pytest.raises(InvalidTopicError):
        await app.runs_waiting_on(topic)
    assert log_head(app) == head


@pytest.mark.parametrize("run_id", [UNKNOWN, "not-a-uuid"])
async def test_unknown_runs(app: WorkflowApp, run_id: str) -> None:
    head = log_head(app)
    with pytest.raises(UnknownRunError):
        await app.send(run_id, "topic", 1)
    with pytest.raises(UnknownRunError):
        await app.cancel(run_id)
    with pytest.raises(UnknownRunError):
        await app.history(run_id)
    with pytest.raises(UnknownRunError):
        await app.wait_for(run_id, timeout=1)
    with pytest.raises(UnknownRunError):
        await app.rewind(run_id, "wait")
    assert await app.get_run(run_id) is None
    assert log_head(app) == head


async def test_writes_to_an_ended_run(app: WorkflowApp) -> None:
    result = await app.start_and_wait("done", timeout=5)
    head = log_head(app)
    with pytest.raises(RunEndedError) as raised:
        await app.send(result.run_id, "topic", 1)
    assert raised.value.status == "completed"
    with pytest.raises(RunEndedError):
        await app.cancel(result.run_id)
    assert log_head(app) == head


async def test_a_step_value_that_cannot_be_stored_fails_the_step(app: WorkflowApp) -> None:
    flow = Flow("bad.value")
    flow.step("set", lambda ctx: {1, 2})
    app.register_flows([flow])
    result = await app.start_and_wait(flow, timeout=5)
    assert result.status == "failed"
    assert result.error is not None and result.error.type.endswith("InvalidPayloadError")
