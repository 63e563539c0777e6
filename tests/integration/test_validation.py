"""Every value stemlog cannot keep is refused with a typed error before anything is written.

Hypothesis generates the bad values: durations (NaN, infinities, negatives,
values past 100 years, wrong types) and JSON values (non-string keys, NaN,
integers over 64 bits, lone surrogates, nesting past the limit, sizes past the
limit); each refusal leaves the log's head where it was.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemlog import (
    CancellationPolicy,
    Flow,
    InvalidPayloadError,
    RetryPolicy,
    RunStatus,
    StemlogError,
    UnknownRunError,
    UnknownWorkflowError,
    WorkflowApp,
    WorkflowScript,
)
from stemlog.codec import MAX_DEPTH, MAX_VALUE_BYTES, normalize_json

pytestmark = pytest.mark.anyio

bad_durations = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e18, 2**80, -1, -0.5, -(2**70)]),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    st.floats(min_value=3.2e9, allow_nan=False, allow_infinity=False),
    st.sampled_from(["5", True, [1], timedelta(days=-1), timedelta(days=365 * 200)]),
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


bad_json = st.one_of(
    st.dictionaries(st.integers(), st.integers(), min_size=1),  # non-string keys
    st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda x: {"x": [x]}),
    st.integers(min_value=2**64).map(lambda n: {"n": n}),
    st.integers(max_value=-(2**63) - 1),
    st.sampled_from(["\ud800", "a\udfffb"]).map(lambda s: {"s": s}),
    st.integers(MAX_DEPTH + 1, MAX_DEPTH + 30).map(_nested),
    st.just("x" * (MAX_VALUE_BYTES + 1)),
    st.sampled_from([{1, 2}, object(), b"bytes", {"key": {1: "a", "1": "b"}}]),
)


@settings(max_examples=150, deadline=None)
@given(bad_durations)
def test_bad_durations_are_refused_everywhere_they_are_taken(value: Any) -> None:
    for build in (
        lambda: RetryPolicy(initial_delay=value),
        lambda: RetryPolicy(max_delay=value),
        lambda: CancellationPolicy(max_run_duration=value),
        lambda: CancellationPolicy(max_suspend_duration=value),
        lambda: WorkflowApp.open("memory://", lease=value),
        lambda: WorkflowApp.open("memory://", store_timeout=value),
    ):
        with pytest.raises(InvalidPayloadError):
            build()


@settings(max_examples=150, deadline=None)
@given(bad_json)
def test_bad_json_values_are_refused_naming_what(value: Any) -> None:
    with pytest.raises(InvalidPayloadError, match="payload"):
        normalize_json(value, "payload")


def test_the_limits_are_named_in_the_errors() -> None:
    with pytest.raises(InvalidPayloadError, match=f"{MAX_DEPTH} levels"):
        normalize_json(_nested(MAX_DEPTH + 1), "params")
    with pytest.raises(InvalidPayloadError, match=f"{MAX_VALUE_BYTES:,}"):
        normalize_json("x" * MAX_VALUE_BYTES, "params")
    assert normalize_json(_nested(MAX_DEPTH - 1), "params") == _nested(MAX_DEPTH - 1)
    with pytest.raises(InvalidPayloadError, match="100 years"):
        CancellationPolicy(max_run_duration=1e18)


def _head(app: WorkflowApp) -> int:
    runtime = app._runtime
    assert runtime is not None
    return runtime.store.head()


def _flows() -> list[Flow]:
    waits = Flow("v.waits")
    waits.step("wait", lambda ctx: ctx.wait_for_event_value("v.topic"))
    done = Flow("v.done")
    done.step("only", lambda ctx: 1)
    return [waits, done]


async def test_each_call_refuses_its_bad_values_and_writes_nothing(store_url: str) -> None:
    async with WorkflowApp.open(store_url) as app:
        app.register_flows(_flows())
        run_id = await app.start("v.waits")
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("v.topic"):
                await anyio.sleep(0.005)
        head = _head(app)
        payload = {"k": {1: "a"}}
        refusals: list[Any] = [
            (UnknownWorkflowError, app.start(None)),  # type: ignore[arg-type]
            (UnknownWorkflowError, app.start(5)),  # type: ignore[arg-type]
            (InvalidPayloadError, app.start("v.done", payload)),
            (InvalidPayloadError, app.start("v.done", ttl=math.nan)),
            (InvalidPayloadError, app.start("v.done", ttl=-5)),
            (InvalidPayloadError, app.start("v.done", ttl=math.inf)),
            (UnknownRunError, app.start("v.done", parent_run_id="not-a-run")),
            (InvalidPayloadError, app.emit("v.topic", payload)),
            (InvalidPayloadError, app.emit("v.topic", {"n": 2**64})),
            (InvalidPayloadError, app.send(run_id, "v.topic", "\ud800")),
            (InvalidPayloadError, app.cancel(run_id, reason=5)),  # type: ignore[arg-type]
            (InvalidPayloadError, app.rewind(run_id, "")),
            (InvalidPayloadError, app.wait_for(run_id, timeout=math.nan)),
            (InvalidPayloadError, app.list_runs(status="nope")),
            (InvalidPayloadError, app.list_runs(limit=-1)),
        ]
        for error, call in refusals:
            with pytest.raises(error) as raised:
                await call
            assert isinstance(raised.value, StemlogError)
        assert _head(app) == head


@pytest.mark.parametrize("delay", [math.nan, math.inf, -1, 1e18])
async def test_a_bad_sleep_in_a_step_fails_the_step_with_the_typed_error(delay: float) -> None:
    flow = Flow("v.sleeps")
    flow.step("nap", lambda ctx: ctx.sleep(delay))
    async with WorkflowApp.open("memory://") as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=5)
        history = await app.history(result.run_id)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "stemlog.errors.InvalidPayloadError"
    assert "SleepStarted" not in [fact.type for fact in history]


@pytest.mark.parametrize("delay", [math.nan, -1, 1e18])
async def test_a_bad_top_level_sleep_fails_the_script_before_its_checkpoint(delay: float) -> None:
    async def run(script: Any) -> None:
        await script.sleep(delay)

    script = WorkflowScript("v.script-sleeps", run=run)
    async with WorkflowApp.open("memory://") as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=5)
        history = await app.history(result.run_id)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "InvalidPayloadError" in result.error.type
    assert [fact.type for fact in history] == ["RunStarted", "RunFailed"]


async def test_a_naive_deadline_is_refused_in_the_step() -> None:
    flow = Flow("v.deadline")
    flow.step("w", lambda ctx: ctx.wait_for_event_value("t", deadline=datetime(2030, 1, 1)))
    async with WorkflowApp.open("memory://") as app:
        app.register_flows([flow])
        result = await app.start_and_wait(flow, timeout=5)
    assert result.error is not None and "InvalidPayloadError" in result.error.type


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ttl=bad_durations)
def test_a_start_with_a_bad_ttl_writes_nothing(ttl: Any) -> None:
    async def main() -> None:
        async with WorkflowApp.open("memory://") as app:
            app.register_flows(_flows())
            with pytest.raises(InvalidPayloadError):
                await app.start("v.done", ttl=ttl)
            assert _head(app) == 0

    anyio.run(main)
