"""Entering one step: record its start, call its handler, record the outcome.

Attempts come from the log: a ``StepStarted`` with no outcome after it means
the previous start's worker died, which counts as an attempt; once the
applicable retry policy's ``max_attempts`` starts are used up that way, the
step fails without running again (a poison step cannot loop forever).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemlog.authoring.context import FlowContext, ScriptStepContext, SuspendStep
from stemlog.authoring.definitions import StepHandler
from stemlog.authoring.policies import DEFAULT_CRASH_ATTEMPTS, RetryPolicy
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import InvalidPayloadError
from stemlog.execution.outcomes import (
    RetryScheduled,
    StepError,
    Suspended,
    call_handler,
    error_info,
)
from stemlog.model.fold import StepKey, step_label
from stemlog.model.records import ErrorInfo

if TYPE_CHECKING:
    from stemlog.execution.executor import RunDriver

WORKER_LOST = "stemlog.WorkerLost"
"""The error type recorded when a step's starts all ended with their worker."""


async def run_step(
    driver: RunDriver,
    key: StepKey,
    handler: StepHandler,
    index: int,
    previous: tuple[bool, JSONValue],
    context_class: type[FlowContext] | type[ScriptStepContext],
    retry: RetryPolicy | None,
) -> JSONValue:
    """Run one step to an outcome.

    Returns:
        The step's value (its ``StepCompleted`` is applied, not yet flushed).

    Raises:
        Suspended: the step recorded a wait (flushed).
        RetryScheduled: the step failed and its next attempt is scheduled (flushed).
        StepError: the step failed for good (``StepFailed`` applied, not flushed).
    """
    session, clock = driver.session, driver.clock
    state = session.state
    limit = retry.max_attempts if retry is not None else DEFAULT_CRASH_ATTEMPTS
    if state.current == key and state.in_flight and state.attempt >= limit:
        message = f"step {step_label(key)!r} started {state.attempt} times and never finished"
        _fail_for_good(driver, key, ErrorInfo(WORKER_LOST, message))
    attempt, started_at = state.next_attempt(key), clock.now()
    session.do(lambda run: run.start_step(key, attempt, started_at))
    await session.flush()
    state = session.state
    ctx = context_class(
        run_id=state.run_id, workflow=state.workflow, params=state.params,
        step_name=key[0], step_index=index, iteration=key[1], attempt=attempt,
        previous=previous, resume=state.resume_for(key), clock=clock,
        children=driver.children, generation=state.retries.get(key, 0),
    )  # fmt: skip
    try:
        value = await call_handler(handler, ctx, driver.limiter)
        if ctx.wait_request is None:
            value = normalize_json(value, f"the value of step {step_label(key)!r}")
    except SuspendStep:
        value = None
    except (Exception, InvalidPayloadError) as error:
        if retry is not None and retry.retries(error, attempt):
            await _schedule_retry(driver, key, error, retry, attempt)
        _fail_for_good(driver, key, error_info(error))
    await _record_outcome(driver, key, ctx, value)
    return value


async def _record_outcome(
    driver: RunDriver, key: StepKey, ctx: FlowContext | ScriptStepContext, value: JSONValue
) -> None:
    session, at = driver.session, driver.clock.now()
    request = ctx.wait_request
    if request is None:
        session.do(lambda run: run.complete_step(key, value, at))
        return
    if request.topic is not None:
        topic, deadline = request.topic, request.deadline
        session.do(lambda run: run.await_event(key, topic, deadline, at))
    else:
        wake_at = request.wake_at
        assert wake_at is not None
        session.do(lambda run: run.start_sleep(key, wake_at, at))
    await session.flush()
    raise Suspended


async def _schedule_retry(
    driver: RunDriver, key: StepKey, error: BaseException, retry: RetryPolicy, attempt: int
) -> None:
    at = driver.clock.now()
    retry_at = at + retry.delay_after(attempt)
    info = error_info(error).to_json()
    driver.session.do(lambda run: run.fail_step(key, info, retry_at, at))
    await driver.session.flush()
    raise RetryScheduled


def _fail_for_good(driver: RunDriver, key: StepKey, info: ErrorInfo) -> None:
    at = driver.clock.now()
    driver.session.do(lambda run: run.fail_step(key, info.to_json(), None, at))
    raise StepError(key, info)
