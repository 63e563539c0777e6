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

from typing import final

from anyio import CapacityLimiter

from stemlog.authoring.context import FlowContext
from stemlog.authoring.definitions import WorkflowDefinition
from stemlog.clock import Clock
from stemlog.codec import JSONValue
from stemlog.errors import NonDeterminismError
from stemlog.execution.determinism import check_flow
from stemlog.execution.outcomes import RetryScheduled, StepError, Suspended, error_info
from stemlog.execution.session import RunSession
from stemlog.execution.step_runner import run_step
from stemlog.model.children import ChildLauncher
from stemlog.model.fold import StepKey, step_label
from stemlog.model.records import ErrorInfo, RunStatus, WorkflowKind


@final
class RunDriver:
    """Executes one run of one definition until it suspends, ends, or is taken away."""

    def __init__(
        self,
        session: RunSession,
        definition: WorkflowDefinition,
        clock: Clock,
        limiter: CapacityLimiter,
        children: ChildLauncher | None = None,
    ) -> None:
        self.session = session
        self.definition = definition
        self.clock = clock
        self.limiter = limiter
        self.children = children

    async def drive(self) -> None:
        """Run steps while the run is runnable; returns when it suspends or ends."""
        await self.session.run_with(self._drive)

    async def wake_if_due(self) -> None:
        """Record the end of a due sleep (``SleepElapsed``) or deadline (``EventTimedOut``)."""
        await self.session.run_with(self._wake_if_due)

    async def _wake_if_due(self) -> None:
        state, now = self.session.state, self.clock.now()
        wait = state.wait
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
            _, divergence = check_flow(state, self.definition.steps)
            if divergence is None:  # same steps recorded so far: name which list changed
                recorded = ", ".join(step_label(key) for key in state.steps)
                declared = ", ".join(spec.name for spec in self.definition.steps)
                divergence = NonDeterminismError(
                    state.run_id, len(state.steps), f"steps [{recorded}]", f"steps [{declared}]"
                )
            await self.fail_run(error_info(divergence))
            return
        while self._runnable():
            before = self.session.state.position
            if self.definition.kind is WorkflowKind.FLOW:
                await self._flow_pass()
            else:
                from stemlog.execution.script import run_script

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
                retry = spec.retry or self.definition.retry
                await run_step(self, key, spec.handler, index, previous, FlowContext, retry)
            except (Suspended, RetryScheduled):
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
