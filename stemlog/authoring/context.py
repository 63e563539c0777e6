"""What a step handler receives: :class:`FlowContext` and :class:`ScriptStepContext`.

A context reads the run's params, the previous step's value and the resume
input, and records at most one wait (an event or a sleep) per step entry. The
executor turns a recorded wait into an ``EventAwaited`` or ``SleepStarted``
fact once the handler returns; the handler's return value is then discarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias, TypeVar, final

from stemlog.authoring.interrupts import SuspendStep
from stemlog.clock import Clock, Duration, require_aware, to_seconds
from stemlog.codec import JSONValue
from stemlog.errors import EventTimeoutError, InvalidTopicError, MissingValueError, StemlogError
from stemlog.model.children import child_run_id, child_topic, unwrap_outcome
from stemlog.model.state import Resume, ResumeKind

T = TypeVar("T")

StepHandler: TypeAlias = Callable[[Any], Any]
"""A step body: takes the step context, returns a JSON value (sync or async)."""

__all__ = [
    "ChildLauncher", "FlowContext", "ScriptStepContext", "ScriptStepHandler", "StepContext",
    "StepHandler", "SuspendStep", "WaitRequest", "check_topic",
]  # fmt: skip


class ChildLauncher(Protocol):
    """What a step context needs to start a child run (the runtime provides it)."""

    async def start_child(self, workflow: Any, params: Any, parent_run_id: str, run_id: str) -> str:
        """Start (or find, if it exists) the child run ``run_id``; returns its id."""
        ...


@final
@dataclass(frozen=True, slots=True)
class WaitRequest:
    """A wait recorded by a handler: an event (``topic``) or a sleep (``wake_at``)."""

    topic: str | None
    deadline: datetime | None
    wake_at: datetime | None


def check_topic(topic: object) -> str:
    """Return ``topic`` if it is a non-empty string.

    Raises:
        InvalidTopicError: otherwise.
    """
    if not isinstance(topic, str) or not topic.strip():
        raise InvalidTopicError(topic)
    return topic


class StepContext:
    """Members shared by flow and script step contexts."""

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        params: Mapping[str, JSONValue],
        step_name: str,
        step_index: int,
        iteration: int,
        attempt: int,
        previous: tuple[bool, JSONValue],
        resume: Resume | None,
        clock: Clock,
        children: ChildLauncher | None = None,
        generation: int = 0,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.params: Mapping[str, JSONValue] = params
        self.step_name = step_name
        self.step_index = step_index
        self.iteration = iteration
        self.attempt = attempt
        self.timed_out = False
        self._previous = previous
        self._resume = resume
        self._clock = clock
        self._children = children
        self._generation = generation
        self._child_calls = 0
        self.wait_request: WaitRequest | None = None

    # -- params and values ------------------------------------------------

    def param(self, name: str, default: JSONValue = None) -> JSONValue:
        """A start param, or ``default`` when absent."""
        return self.params.get(name, default)

    def required_param(self, name: str) -> JSONValue:
        """A start param.

        Raises:
            MissingValueError: the run was started without it.
        """
        if name not in self.params:
            raise MissingValueError(f"param {name!r}", self.run_id)
        return self.params[name]

    def param_json(self, name: str, decode: Callable[[Any], T]) -> T | None:
        """A start param decoded by ``decode``; ``None`` (``decode`` not called) when absent."""
        value = self.params.get(name)
        return None if value is None else decode(value)

    def required_param_json(self, name: str, decode: Callable[[Any], T]) -> T:
        """A start param decoded by ``decode``.

        Raises:
            MissingValueError: the run was started without it.
        """
        return decode(self.required_param(name))

    def params_json(self, decode: Callable[[Any], T]) -> T:
        """All start params decoded by ``decode``."""
        return decode(dict(self.params))

    def previous_value(self, default: JSONValue = None) -> JSONValue:
        """The previous step's value, or ``default`` on the first step."""
        present, value = self._previous
        return value if present else default

    def required_previous_value(self) -> JSONValue:
        """The previous step's value.

        Raises:
            MissingValueError: this is the first step.
        """
        present, value = self._previous
        if not present:
            raise MissingValueError("previous step value", self.run_id)
        return value

    def idempotency_key(self, scope: str | None = None) -> str:
        """``"{workflow}/{run_id}/{scope}"``, stable across retries and replays.

        ``scope`` defaults to the step name (``name#iteration`` past iteration 0).
        """
        if scope is None:
            scope = self.step_name if self.iteration == 0 else f"{self.step_name}#{self.iteration}"
        return f"{self.workflow}/{self.run_id}/{scope}"

    # -- resume input -----------------------------------------------------

    def take_resume_data(self) -> JSONValue:
        """The input this entry resumed with, once: the payload after an event,
        ``True`` after a sleep; ``None`` otherwise and on later calls."""
        resume, self._resume = self._resume, None
        if resume is None or resume.kind is ResumeKind.TIMEOUT:
            return None
        return resume.payload

    def _take_event(self, topic: str) -> Resume | None:
        resume = self._resume
        if resume is not None and resume.topic == topic and resume.kind is not ResumeKind.SLEEP:
            self._resume = None
            return resume
        return None

    def _record(self, request: WaitRequest) -> None:
        if self.wait_request is None:  # the first wait of an entry wins
            self.wait_request = request

    # -- directive style ----------------------------------------------------

    def wait_for_event_value(
        self,
        topic: str,
        *,
        deadline: datetime | None = None,
        decode: Callable[[Any], T] | None = None,
    ) -> Any:
        """The payload of ``topic`` if this entry resumed with it, else record the wait
        and return ``None``. After the deadline passed: ``None`` with ``timed_out``
        set, and no new wait is recorded."""
        check_topic(topic)
        resume = self._take_event(topic)
        if resume is not None:
            if resume.kind is ResumeKind.TIMEOUT:
                self.timed_out = True
                return None
            return resume.payload if decode is None else decode(resume.payload)
        if not self.timed_out:
            at = None if deadline is None else require_aware(deadline, "deadline")
            self._record(WaitRequest(topic, at, None))
        return None

    def wait_for_event_value_json(
        self, topic: str, *, decode: Callable[[Any], T], deadline: datetime | None = None
    ) -> T | None:
        """:meth:`wait_for_event_value` with a required ``decode``."""
        value: T | None = self.wait_for_event_value(topic, deadline=deadline, decode=decode)
        return value

    def sleep(self, delay: Duration) -> None:
        """Record a durable sleep; the step is re-entered after it with resume data ``True``."""
        self._record(WaitRequest(None, None, self._after(delay, "sleep")))

    def sleep_until_resumed(self, delay: Duration) -> bool:
        """``True`` when this entry resumed from a sleep, else record the sleep and ``False``."""
        resume = self._resume
        if resume is not None and resume.kind is ResumeKind.SLEEP:
            self._resume = None
            return True
        self.sleep(delay)
        return False

    # -- expression style ---------------------------------------------------

    async def wait_for_event(
        self,
        topic: str,
        *,
        timeout: Duration | None = None,
        decode: Callable[[Any], T] | None = None,
    ) -> Any:
        """The payload of ``topic``; suspends the step right here until it arrives.

        Raises:
            EventTimeoutError: ``timeout`` passed before the event arrived.
        """
        check_topic(topic)
        resume = self._take_event(topic)
        if resume is not None:
            if resume.kind is ResumeKind.TIMEOUT:
                self.timed_out = True
                raise EventTimeoutError(topic)
            return resume.payload if decode is None else decode(resume.payload)
        deadline = None if timeout is None else self._after(timeout, "timeout")
        self._record(WaitRequest(topic, deadline, None))
        raise SuspendStep

    async def sleep_for(self, delay: Duration) -> None:
        """Sleep durably: suspends the step until ``delay`` has passed."""
        resume = self._resume
        if resume is not None and resume.kind is ResumeKind.SLEEP:
            self._resume = None
            return
        self.sleep(delay)
        raise SuspendStep

    # -- child workflows ------------------------------------------------------

    async def start_child(self, workflow: Any, params: Any = None) -> str:
        """Start a child run (a name, Flow, WorkflowScript, definition or ref).

        Idempotent across re-executions of this step: the child's id is
        derived from this step, so a step that runs again finds the child it
        started. Returns the child's run id.
        """
        if self._children is None:
            raise StemlogError("child workflows need an open app: this context has none")
        scope = f"{self.step_name}#{self.iteration}/{self._generation}/{self._child_calls}"
        self._child_calls += 1
        run_id = child_run_id(self.run_id, scope)
        return await self._children.start_child(workflow, params, self.run_id, run_id)

    async def start_child_and_wait(self, workflow: Any, params: Any = None) -> Any:
        """Start a child run and suspend this step until it ends.

        Woken by the child's terminal fact, not by polling. Returns the child's
        result.

        Raises:
            ChildWorkflowError: the child ended failed or cancelled.
        """
        child = await self.start_child(workflow, params)
        outcome = await self.wait_for_event(child_topic(child))
        return unwrap_outcome(child, outcome)

    def _after(self, delay: Duration, what: str) -> datetime:
        return self._clock.now() + timedelta(seconds=to_seconds(delay, what))


@final
class FlowContext(StepContext):
    """The context of a flow step."""


@final
class ScriptStepContext(StepContext):
    """The context of a script checkpoint (``script.step``)."""


ScriptStepHandler: TypeAlias = Callable[[ScriptStepContext], Any]
"""A script checkpoint's body (``script.step(name, fn)``)."""
