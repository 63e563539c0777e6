"""The ``script`` object a WorkflowScript's ``run`` receives: checkpoints answered from the log.

``run(script)`` is called from its top on every pass. Each ``script.step``
call is matched, in order, against the steps the log recorded: a completed
step returns its recorded value without calling its handler; a step that
failed with no attempt left raises :class:`StepFailedError` again; the first
step not yet completed is executed. A request that does not match the log at
its position is a :class:`NonDeterminismError`, which fails the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, final

from stemlog.authoring.context import ScriptStepContext, ScriptStepHandler, check_topic
from stemlog.authoring.policies import RetryPolicy
from stemlog.clock import Duration, optional_seconds, to_seconds
from stemlog.codec import JSONValue
from stemlog.errors import (
    EventTimeoutError,
    InvalidDefinitionError,
    NonDeterminismError,
    StepFailedError,
)
from stemlog.model.state import RunState, StepKey, step_label

_SLEEP_STEP = "@sleep"
_WAIT_STEP = "@wait:"


@final
class ScriptContext:
    """The ``script`` object a WorkflowScript's ``run`` receives."""

    def __init__(self, steps: StepExecutor) -> None:
        self._steps = steps
        state = steps.state
        self.run_id: str = state.run_id
        self.workflow: str = state.workflow
        self.params: Mapping[str, JSONValue] = state.params
        self._requests = 0
        self._iterations: dict[str, int] = {}
        self._seen: set[StepKey] = set()
        self._previous: tuple[bool, JSONValue] = (False, None)
        self.divergence: NonDeterminismError | None = None
        self.requested: list[StepKey] = []

    def param(self, name: str, default: JSONValue = None) -> JSONValue:
        """A start param, or ``default`` when absent."""
        return self.params.get(name, default)

    async def step(
        self,
        name: str,
        fn: ScriptStepHandler,
        *,
        auto_version: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """A durable checkpoint: run ``fn`` once and record its value.

        With ``auto_version=True`` repeated calls are keyed ``name#0, name#1, ...``
        counted from 0 in each execution of ``run``.

        Raises:
            StepFailedError: the step raised (it is raised again on every replay).
            InvalidDefinitionError: the same step name is requested twice without
                ``auto_version``.
        """
        key = self._next_key(name, auto_version)
        self.requested.append(key)
        state = self._steps.state
        position, self._requests = self._requests, self._requests + 1
        if position < len(state.steps) and state.steps[position] != key:
            self._diverge(position, step_label(state.steps[position]), step_label(key))
        if key in state.completed:
            value = state.completed[key]
            self._previous = (True, value)
            return value
        failure = state.failures.get(key)
        if failure is not None:
            raise StepFailedError(key[0], key[1], failure.type, failure.message)
        value = await self._steps.execute(key, fn, position, self._previous, retry)
        self._previous = (True, value)
        return value

    def check_end(self) -> None:
        """At the end of ``run``: the code must have asked for every recorded step."""
        recorded = self._steps.state.steps
        if self._requests < len(recorded) and self.divergence is None:
            self._diverge(self._requests, step_label(recorded[self._requests]), "<end of run>")

    async def sleep(self, delay: Duration) -> None:
        """A durable sleep at the top level of ``run`` (a checkpoint named ``@sleep``).

        Raises:
            InvalidPayloadError: ``delay`` is not a duration (checked before the
                checkpoint is recorded).
        """
        to_seconds(delay, "sleep")

        async def sleeping(ctx: ScriptStepContext) -> None:
            await ctx.sleep_for(delay)

        await self.step(_SLEEP_STEP, sleeping, auto_version=True)

    async def wait_for_event(self, topic: str, timeout: Duration | None = None) -> JSONValue:
        """Wait durably for ``topic`` at the top level of ``run`` (a checkpoint
        named ``@wait:<topic>`` whose value is the payload).

        Raises:
            EventTimeoutError: ``timeout`` passed first.
            InvalidPayloadError: ``timeout`` is not a duration.
        """
        check_topic(topic)
        optional_seconds(timeout, "timeout")

        async def waiting(ctx: ScriptStepContext) -> JSONValue:
            payload: JSONValue = await ctx.wait_for_event(topic, timeout=timeout)
            return payload

        try:
            received: JSONValue = await self.step(_WAIT_STEP + topic, waiting, auto_version=True)
            return received
        except StepFailedError as failure:
            if failure.error_type.endswith("EventTimeoutError"):
                raise EventTimeoutError(topic) from None
            raise

    def _next_key(self, name: str, auto_version: bool) -> StepKey:
        if not isinstance(name, str) or not name:
            raise InvalidDefinitionError(self.workflow, "a step name must be a non-empty string")
        if auto_version:
            iteration = self._iterations.get(name, 0)
            self._iterations[name] = iteration + 1
            key = (name, iteration)
        else:
            key = (name, 0)
        if key in self._seen:
            raise InvalidDefinitionError(
                self.workflow,
                f"step {name!r} was requested twice; pass auto_version=True to repeat a step",
            )
        self._seen.add(key)
        return key

    def _diverge(self, position: int, recorded: str | None, requested: str) -> None:
        self.divergence = NonDeterminismError(self.run_id, position, recorded, requested)
        raise self.divergence


class StepExecutor(Protocol):
    """Where a script's new steps go: the live executor, or replay's refusal."""

    @property
    def state(self) -> RunState: ...

    async def execute(
        self,
        key: StepKey,
        fn: ScriptStepHandler,
        position: int,
        previous: tuple[bool, JSONValue],
        retry: RetryPolicy | None,
    ) -> JSONValue:
        """Run a step the log has no outcome for yet."""
        ...
