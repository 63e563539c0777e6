"""Entering one step: record its start, call its handler, record the outcome.

Attempts come from the log: a ``StepStarted`` with no outcome after it means
the previous start's worker died, which counts as an attempt; once the
applicable retry policy's ``max_attempts`` starts are used up that way, the
step fails without running again (a poison step cannot loop forever).
"""

from __future__ import annotations

import logging
from datetime import datetime

from stemlog.authoring.context import FlowContext, ScriptStepContext, StepHandler, SuspendStep
from stemlog.authoring.policies import DEFAULT_CRASH_ATTEMPTS, RetryPolicy
from stemlog.codec import JSONValue, normalize_json
from stemlog.execution.drive import Drive
from stemlog.execution.outcomes import (
    RetryScheduled,
    StepError,
    Suspended,
    call_handler,
    error_info,
    interrupt_of,
    is_cancellation,
)
from stemlog.model.records import ErrorInfo
from stemlog.model.state import StepKey, step_label

logger = logging.getLogger("stemlog.steps")

WORKER_LOST = "stemlog.WorkerLost"
"""The error type recorded when a step's starts all ended with their worker."""


async def run_step(
    drive: Drive,
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
    session, clock = drive.session, drive.clock
    state = session.state
    limit = retry.max_attempts if retry is not None else DEFAULT_CRASH_ATTEMPTS
    if state.current == key and state.in_flight and state.attempt >= limit:
        message = f"step {step_label(key)!r} started {state.attempt} times and never finished"
        _fail_for_good(drive, key, ErrorInfo(WORKER_LOST, message))
    attempt, started_at = state.next_attempt(key), clock.now()
    session.do(lambda run: run.start_step(key, attempt, started_at))
    await session.flush()
    state = session.state
    ctx = context_class(
        run_id=state.run_id, workflow=state.workflow, params=state.params,
        step_name=key[0], step_index=index, iteration=key[1], attempt=attempt,
        previous=previous, resume=state.resume_for(key), clock=clock,
        children=drive.children, generation=state.retries.get(key, 0),
    )  # fmt: skip
    value: JSONValue = None
    try:
        returned = await call_handler(handler, ctx, drive.limiter)
        if ctx.wait_request is None:
            value = normalize_json(returned, f"the value of step {step_label(key)!r}")
    except BaseException as error:
        if is_cancellation(error):
            raise  # the app is closing
        interrupt = interrupt_of(error)
        if interrupt is not None and not isinstance(interrupt, SuspendStep):
            raise interrupt from None
        if interrupt is None:
            if not isinstance(error, Exception | BaseExceptionGroup):
                raise  # the process is asked to exit
            if retry is not None and retry.retries(error, attempt):
                await _schedule_retry(drive, key, error, retry, attempt)
            _log_failure(drive, key, attempt, error, None)
            _fail_for_good(drive, key, error_info(error))
    await _record_outcome(drive, key, ctx)
    session.do(lambda run: run.complete_step(key, value, clock.now()))
    return value


async def _record_outcome(drive: Drive, key: StepKey, ctx: FlowContext | ScriptStepContext) -> None:
    """Record the wait the handler asked for, if any (and unwind with ``Suspended``)."""
    request = ctx.wait_request
    if request is None:
        return
    session, at = drive.session, drive.clock.now()
    if request.topic is not None:
        topic, deadline = request.topic, request.deadline
        session.do(lambda run: run.await_event(key, topic, deadline, at))
    else:
        wake_at = request.wake_at
        assert wake_at is not None, "a wait is an event or a sleep"
        session.do(lambda run: run.start_sleep(key, wake_at, at))
    await session.flush()
    raise Suspended


async def _schedule_retry(
    drive: Drive, key: StepKey, error: BaseException, retry: RetryPolicy, attempt: int
) -> None:
    at = drive.clock.now()
    retry_at = at + retry.delay_after(attempt)
    _log_failure(drive, key, attempt, error, retry_at)
    info = error_info(error).to_json()
    drive.session.do(lambda run: run.fail_step(key, info, retry_at, at))
    await drive.session.flush()
    raise RetryScheduled


def _log_failure(
    drive: Drive, key: StepKey, attempt: int, error: BaseException, retry_at: datetime | None
) -> None:
    state = drive.session.state
    then = "no attempt is left" if retry_at is None else f"next attempt at {retry_at.isoformat()}"
    logger.warning(
        "run %s: step %s failed (attempt %d): %s: %s; %s", state.run_id, step_label(key),
        attempt, type(error).__name__, error, then, exc_info=error,
        extra={"run_id": state.run_id, "workflow": state.workflow, "step": step_label(key),
               "attempt": attempt},
    )  # fmt: skip


def _fail_for_good(drive: Drive, key: StepKey, info: ErrorInfo) -> None:
    at = drive.clock.now()
    drive.session.do(lambda run: run.fail_step(key, info.to_json(), None, at))
    raise StepError(key, info)
