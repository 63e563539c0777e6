"""Starting runs and acting on them: start, wait, emit, send, cancel, rewind, fork."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, overload

import anyio

from stemlog.app.core import AppCore, run_id_of
from stemlog.authoring.context import check_topic
from stemlog.authoring.refs import WorkflowRef
from stemlog.authoring.workflows import Definable
from stemlog.clock import Duration, optional_seconds
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import InvalidPayloadError
from stemlog.model.facts import RunCompleted, RunFailed
from stemlog.model.policy import CancellationPolicy
from stemlog.model.records import ErrorInfo, RunStatus, WorkflowResult
from stemlog.runtime.signals import TerminalFact

Startable = str | Definable | WorkflowRef[Any]
IfExists = Literal["return", "fail"]
P = TypeVar("P")


class RunCommands(AppCore):
    """The app's writes to runs (part of :class:`~stemlog.app.WorkflowApp`)."""

    @overload
    async def start(
        self,
        workflow: WorkflowRef[P],
        params: P | None = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str: ...

    @overload
    async def start(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str: ...

    async def start(
        self,
        workflow: Startable,
        params: Any = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str:
        """Start a run; returns its id once ``RunStarted`` is durable.

        ``run_id`` names the run: a UUID, or a business key of yours
        (``"order-1234"``) that maps to the UUID ``uuid5(STEMLOG_NAMESPACE, key)``
        and is kept as ``RunView.key``; any method that takes a run id takes the
        key too. Starting a run that exists writes nothing: its id is returned
        (``if_exists="return"``, an idempotent start) or :class:`RunExistsError`
        is raised (``"fail"``); a key taken by a run of another workflow is
        always an error. A ref's params object is encoded by the ref. ``ttl``
        hides the run from ``list_runs`` that long after it ended (its facts are
        kept); ``policy`` lets the worker cancel it by itself.

        When this app's worker has room to drive a new run of a fresh id (no
        ``run_id``, no parent, not started by a step), ``RunStarted`` is stored
        in one commit with what the run does first (its first step started, a
        wait, its end), and this returns once that commit is done: one commit
        fewer per run. A script's code before its first step runs before then.

        Raises:
            UnknownWorkflowError: the workflow is not registered.
            InvalidPayloadError: params are not a mapping of JSON values; a run id
                that is neither a UUID nor a non-empty key.
            RunExistsError: the run exists (``if_exists="fail"``, or another workflow).
        """
        return await self._open().commands.start(
            workflow, params, parent_run_id=parent_run_id, ttl=ttl, policy=policy,
            run_id=run_id, if_exists=if_exists,
        )  # fmt: skip

    @overload
    async def start_and_wait(
        self,
        workflow: WorkflowRef[P],
        params: P | None = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult: ...

    @overload
    async def start_and_wait(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult: ...

    async def start_and_wait(
        self,
        workflow: Startable,
        params: Any = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult:
        """Start a run (as :meth:`start`) and wait for it to end (or for ``timeout``)."""
        run_id = await self.start(
            workflow, params, parent_run_id=parent_run_id, ttl=ttl, policy=policy,
            run_id=run_id, if_exists=if_exists,
        )  # fmt: skip
        return await self._wait(run_id, timeout, known_running=self._open().worker is not None)

    async def wait_for(self, run_id: str, timeout: Duration | None = None) -> WorkflowResult:
        """Wait until the run ends, woken by its terminal fact (no polling).

        Returns a result with ``timed_out=True`` and the current status when
        ``timeout`` passes first; never raises for a timeout.

        Raises:
            UnknownRunError: no such run.
        """
        run_id = run_id_of(run_id)
        return await self._wait(run_id, timeout, known_running=False)

    async def _wait(
        self, run_id: str, timeout: Duration | None, *, known_running: bool
    ) -> WorkflowResult:
        # known_running: this app just started the run and its worker drives it,
        # so its terminal fact will pass through this app's commit listener.
        runtime = self._open()
        with anyio.move_on_after(optional_seconds(timeout, "timeout")):
            while True:
                ended = runtime.signals.watch(run_id)
                try:
                    fact = runtime.signals.ended(run_id)
                    if fact is not None:  # get_run/list_runs catch up before reading
                        return _result_of(run_id, fact)
                    if not known_running:
                        state = (await runtime.store.load(run_id)).state
                        if state.status.is_terminal:
                            return WorkflowResult(run_id, state.status, state.result, state.error)
                    known_running = False
                    await ended.wait()
                finally:
                    runtime.signals.unwatch(run_id, ended)
        state = (await runtime.store.load(run_id)).state
        return WorkflowResult(run_id, state.status, state.result, state.error, timed_out=True)

    async def emit(self, topic: str, payload: JSONValue = None) -> list[str]:
        """Deliver ``payload`` to every run waiting on ``topic``, atomically and durably.

        Returns the ids of the runs it reached. Runs not waiting yet do not get
        it (as in Stem); use :meth:`send` to buffer for one run.

        Raises:
            InvalidTopicError: ``topic`` is not a non-empty string.
            InvalidPayloadError: ``payload`` is not a JSON value.
        """
        check_topic(topic)
        value = normalize_json(payload, "payload")
        return await self._open().commands.emit(topic, value)

    async def send(self, run_id: str, topic: str, payload: JSONValue = None) -> None:
        """Deliver ``payload`` to one run; kept until the run waits on ``topic``.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has ended.
            InvalidTopicError, InvalidPayloadError: bad input (nothing is written).
        """
        run_id = run_id_of(run_id)
        check_topic(topic)
        value = normalize_json(payload, "payload")
        await self._open().commands.send(run_id, topic, value)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """End a run and its running children as ``cancelled``.

        A step in flight finishes, but nothing more of the run is recorded.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has already ended.
        """
        run_id = run_id_of(run_id)
        if reason is not None and not isinstance(reason, str):
            raise InvalidPayloadError("reason", f"a string or None is needed, got {reason!r}")
        await self._open().commands.cancel(run_id, reason)

    async def rewind(self, run_id: str, step: str) -> None:
        """Run ``step`` and the steps after it again (``RunRewound``; nothing is deleted).

        Raises:
            UnknownRunError: no such run.
            UnknownStepError: the run never ran ``step``.
        """
        run_id = run_id_of(run_id)
        _check_step(step)
        await self._open().commands.rewind(run_id, step)

    async def fork(self, run_id: str, step: str) -> str:
        """Start a new run whose history is this run's up to ``step``; returns its id.

        The new run records ``forked_from`` and runs ``step`` onwards itself.

        Raises:
            UnknownRunError: no such run.
            UnknownStepError: the run never ran ``step``.
        """
        run_id = run_id_of(run_id)
        _check_step(step)
        run = await self._open().commands.fork(run_id, step)
        return run.state.run_id


def _check_step(step: object) -> None:
    if not isinstance(step, str) or not step:
        raise InvalidPayloadError("step", f"a step name is needed, got {step!r}")


def _result_of(run_id: str, fact: TerminalFact) -> WorkflowResult:
    if isinstance(fact, RunCompleted):
        return WorkflowResult(run_id, RunStatus.COMPLETED, fact.result)
    if isinstance(fact, RunFailed):
        return WorkflowResult(run_id, RunStatus.FAILED, None, ErrorInfo.from_json(fact.error))
    return WorkflowResult(run_id, RunStatus.CANCELLED)
