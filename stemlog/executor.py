"""Driving a run forward: run its next steps until it suspends or ends.

The executor never decides from anything but the folded state of the run's
facts, so a drive after a crash or a restart continues exactly where the log
stands: a completed step is never executed again; a suspended step is
re-entered from its top with its resume input; a step whose start is in the
log without an outcome runs again as the next attempt.

Durability points: ``StepStarted`` is committed before its handler runs (so
attempts are counted from the log, even when a handler kills its process); a
completed step's value is committed together with the next fact (the next
``StepStarted``, a wait, or the run's end), so a crash in between re-runs that
step: steps are executed at least once and recorded exactly once.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any, final

import anyio
from anyio import CapacityLimiter

from stemlog.clock import Clock
from stemlog.codec import JSONValue, normalize_json
from stemlog.context import FlowContext, ScriptStepContext, StepContext, SuspendStep
from stemlog.definitions import StepHandler, WorkflowDefinition
from stemlog.errors import InvalidPayloadError, NonDeterminismError
from stemlog.fold import StepKey, step_label
from stemlog.records import ErrorInfo, RunStatus, WorkflowKind
from stemlog.session import RunSession


class Suspended(BaseException):
    """The run recorded a wait; unwinds a script's ``run`` (internal)."""


class StepError(Exception):
    """A step's handler raised and the failure is recorded (internal)."""

    def __init__(self, key: StepKey, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.key = key
        self.info = info


def error_info(error: BaseException) -> ErrorInfo:
    """The recorded form of an exception: qualified type, message, traceback."""
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    text = "".join(traceback.format_exception(error))
    return ErrorInfo(name, str(error), text)


def _is_async(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - callable objects
    )


async def call_handler(handler: StepHandler, ctx: StepContext, limiter: CapacityLimiter) -> Any:
    """Await an async handler; run a sync one in a worker thread."""
    if _is_async(handler):
        return await handler(ctx)
    result = await anyio.to_thread.run_sync(handler, ctx, limiter=limiter)
    if inspect.isawaitable(result):
        result = await result
    return result


@final
class RunDriver:
    """Executes one run of one definition until it suspends, ends, or is taken away."""

    def __init__(
        self,
        session: RunSession,
        definition: WorkflowDefinition,
        clock: Clock,
        limiter: CapacityLimiter,
    ) -> None:
        self.session = session
        self.definition = definition
        self.clock = clock
        self._limiter = limiter

    async def drive(self) -> None:
        """Run steps while the run is runnable; returns when it suspends or ends."""
        await self.session.run_with(self._drive)

    async def wake_if_due(self) -> None:
        """Record the end of a due sleep (``SleepElapsed``) or deadline (``EventTimedOut``)."""
        await self.session.run_with(self._wake_if_due)

    async def _wake_if_due(self) -> None:
        wait, now = self.session.state.wait, self.clock.now()
        if wait is None or wait.due_at is None or wait.due_at > now:
            return
        if wait.wake_at is not None:
            self.session.do(lambda run: run.elapse_sleep(now))
        else:
            self.session.do(lambda run: run.time_out_event(now))
        await self.session.flush()

    async def _drive(self) -> None:
        state = self.session.state
        if state.fingerprint != self.definition.fingerprint:
            error = NonDeterminismError(
                state.run_id,
                0,
                f"fingerprint {state.fingerprint}",
                f"fingerprint {self.definition.fingerprint}",
            )
            await self.fail_run(error_info(error))
            return
        while self._runnable():
            before = self.session.state.position
            if self.definition.kind is WorkflowKind.FLOW:
                await self._flow_pass()
            else:
                from stemlog.script import run_script

                await run_script(self)
            if self.session.state.position == before:
                return  # nothing more can happen without outside input

    def _runnable(self) -> bool:
        state = self.session.state
        if state.status is not RunStatus.RUNNING:
            return False
        return state.retry_at is None or state.retry_at <= self.clock.now()

    async def fail_run(self, info: ErrorInfo) -> None:
        """Record ``RunFailed`` and make it durable."""
        at = self.clock.now()
        self.session.do(lambda run: run.fail(info.to_json(), at))
        await self.session.flush()

    async def _flow_pass(self) -> None:
        steps = self.definition.steps
        for index, spec in enumerate(steps):
            key = (spec.name, 0)
            if key in self.session.state.completed:
                continue
            previous = (False, None) if index == 0 else self._value_of((steps[index - 1].name, 0))
            try:
                await self.run_step(key, spec.handler, index, previous, FlowContext)
            except Suspended:
                await self.session.flush()
                return
            except StepError as failure:
                await self.fail_run(failure.info)
                return
        at = self.clock.now()
        result = self.session.state.completed[(steps[-1].name, 0)]
        self.session.do(lambda run: run.complete(result, at))
        await self.session.flush()

    def _value_of(self, key: StepKey) -> tuple[bool, JSONValue]:
        completed = self.session.state.completed
        return (True, completed[key]) if key in completed else (False, None)

    async def run_step(
        self,
        key: StepKey,
        handler: StepHandler,
        index: int,
        previous: tuple[bool, JSONValue],
        context_class: type[FlowContext] | type[ScriptStepContext],
    ) -> JSONValue:
        """Enter a step: record its start, run its handler, record the outcome.

        Returns:
            The step's value (its ``StepCompleted`` is applied, not yet flushed).

        Raises:
            Suspended: the step recorded a wait (already flushed).
            StepError: the handler raised (``StepFailed`` applied, not flushed).
        """
        session = self.session
        attempt, started_at = session.state.next_attempt(key), self.clock.now()
        session.do(lambda run: run.start_step(key, attempt, started_at))
        await session.flush()
        state = session.state
        ctx = context_class(
            run_id=state.run_id,
            workflow=state.workflow,
            params=state.params,
            step_name=key[0],
            step_index=index,
            iteration=key[1],
            attempt=attempt,
            previous=previous,
            resume=state.resume_for(key),
            clock=self.clock,
        )
        try:
            value = await call_handler(handler, ctx, self._limiter)
            if ctx.wait_request is None:
                value = normalize_json(value, f"the value of step {step_label(key)!r}")
        except SuspendStep:
            value = None
        except (Exception, InvalidPayloadError) as error:
            info, at = error_info(error), self.clock.now()
            session.do(lambda run: run.fail_step(key, info.to_json(), None, at))
            raise StepError(key, info) from None
        at = self.clock.now()
        request = ctx.wait_request
        if request is None:
            session.do(lambda run: run.complete_step(key, value, at))
            return value
        if request.topic is not None:
            topic, deadline = request.topic, request.deadline
            session.do(lambda run: run.await_event(key, topic, deadline, at))
        else:
            wake_at = request.wake_at
            assert wake_at is not None
            session.do(lambda run: run.start_sleep(key, wake_at, at))
        await session.flush()
        raise Suspended
