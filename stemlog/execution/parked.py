"""Script executions parked at a suspension, so a resume continues them.

A script's ``run`` is an ordinary coroutine: each drive could re-enter it
from its top and answer every completed step from the log (what a new worker
or a replay does), but for a run that has taken N steps that costs N
step answers per resume. A worker instead runs ``run`` in a task of its own;
when a step suspends (a wait, a sleep, a retry's back-off) the task *parks*
inside ``script.step`` with the user's locals intact, and the next drive of
the run hands it the new state: the step is re-entered and ``run`` goes on
from there, so a resume costs what happened since, not the history.

A parked execution is used again only if the run's steps did not move in the
meantime (nobody else ran, completed or rewound a step); otherwise it is
abandoned and ``run`` is re-entered from its top. Parked executions are kept
up to a number (least recently used ones are abandoned: their code sees an
interrupt at the ``await`` it parked on, and ``finally`` blocks run).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, final

import anyio
from anyio.abc import TaskGroup, TaskStatus

from stemlog.authoring.context import ScriptStepContext, ScriptStepHandler
from stemlog.authoring.definition import ScriptRun
from stemlog.authoring.interrupts import RunInterrupt
from stemlog.authoring.policies import RetryPolicy
from stemlog.authoring.script import ScriptContext
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import StepFailedError
from stemlog.execution.drive import Drive
from stemlog.execution.outcomes import (
    RetryScheduled,
    StepError,
    StopDrive,
    Suspended,
    error_info,
    interrupt_of,
    is_cancellation,
)
from stemlog.execution.steps import run_step
from stemlog.model.state import RunState, StepKey

logger = logging.getLogger("stemlog.worker")
T = TypeVar("T")


class _Abandoned(RunInterrupt):
    """A parked execution is given up (evicted, or the run moved on without it)."""


@final
@dataclass(frozen=True, slots=True)
class _Mark:
    """What must not have changed for a parked execution to continue."""

    steps: int
    completed: int
    failures: int
    retries: int
    current: StepKey | None
    attempt: int

    @classmethod
    def of(cls, state: RunState) -> _Mark:
        return cls(
            len(state.steps), len(state.completed), len(state.failures),
            sum(state.retries.values()), state.current, state.attempt,
        )  # fmt: skip


@final
@dataclass(slots=True)
class _Report:
    """What the script task tells the drive: parked (``finished`` false), or done."""

    finished: bool
    error: BaseException | None = None


@final
class _Baton(Generic[T]):
    """A one-slot hand-off from one task to another: the latest value put wins.

    The drive and the script task take turns, so a slot never holds two values
    that both matter; the one exception, giving an execution up, must win over
    a drive not yet taken. ``put`` never waits and ``take`` costs one trip
    through the event loop (an ``anyio.Event``), where a memory object stream
    costs a checkpoint at each end besides, on every step of every script.
    """

    __slots__ = ("_arrived", "_value")

    def __init__(self) -> None:
        self._arrived = anyio.Event()
        self._value: T | None = None

    def put(self, value: T) -> None:
        self._value = value
        self._arrived.set()

    async def take(self) -> T | None:
        """The value put since the last take, waiting for one."""
        await self._arrived.wait()
        value, self._value = self._value, None
        self._arrived = anyio.Event()
        return value


@final
class ScriptExecution:
    """One run of a script's ``run`` in a task of its own, driven drive by drive."""

    def __init__(self, run_id: str, run: ScriptRun) -> None:
        self.run_id = run_id
        self._run = run
        self._drives = _Baton[Drive | None]()
        """The next drive for the script task; ``None`` gives the execution up."""
        self._reports = _Baton[_Report]()
        self.drive: Drive | None = None
        self.mark: _Mark | None = None
        """Set while parked: the state's steps as they were when it parked."""

    async def serve(self) -> None:
        """The script task: wait for the first drive, then run ``run`` to its end.

        It reports to the drive however it ends; cancelled (the worker stops), it
        reports :class:`StopDrive`, so a drive waiting on it stops too.
        """
        report: _Report | None = None
        try:
            drive = await self._drives.take()
            if drive is None:
                return
            self.drive = drive
            report = await self._execute()
        except BaseException as error:
            if is_cancellation(error):
                raise
            report = _Report(True, error)
        finally:
            self._reports.put(report or _Report(True, StopDrive()))

    async def advance(self, drive: Drive) -> bool:
        """Run the script with ``drive`` until it parks again (``False``) or ends (``True``).

        Raises:
            StopDrive: the run moved on under the drive.
        """
        self._drives.put(drive)
        report = await self._reports.take()
        assert report is not None, "the script task reports to each drive"
        if report.error is not None:
            raise report.error
        return report.finished

    async def park(self) -> Drive:
        """In the script task: tell the drive the run suspended, wait for the next drive.

        Raises:
            _Abandoned: the execution is given up instead.
        """
        assert self.drive is not None, "parked only by a running execution"
        self.mark = _Mark.of(self.drive.session.state)
        self._reports.put(_Report(False))
        drive = await self._drives.take()
        if drive is None:
            raise _Abandoned
        self.drive, self.mark = drive, None
        return drive

    def fits(self, state: RunState) -> bool:
        """Whether this parked execution may continue a run now in ``state``."""
        return self.mark is not None and self.mark == _Mark.of(state) and not state.in_flight

    def abandon(self) -> None:
        """Give the execution up (its task unwinds from where it parked, or ends at once)."""
        self._drives.put(None)

    async def _execute(self) -> _Report:
        script = ScriptContext(_ParkingSteps(self))
        try:
            result = normalize_json(await self._run(script), "the result of run")
            script.check_end()
        except BaseException as error:
            if is_cancellation(error):
                raise
            interrupt = interrupt_of(error)
            if isinstance(interrupt, _Abandoned):
                return _Report(True)
            if interrupt is not None:
                return _Report(True, StopDrive())  # the run moved on under it
            if not isinstance(error, Exception | BaseExceptionGroup):
                raise
            _log_end(self._current(), script.divergence, error)
            await self._current().fail_run(error_info(script.divergence or error))
            return _Report(True)
        if script.divergence is not None:  # the code caught the divergence: still a failure
            _log_end(self._current(), script.divergence, None)
            await self._current().fail_run(error_info(script.divergence))
            return _Report(True)
        await self._current().complete_run(result)
        return _Report(True)

    def _current(self) -> Drive:
        assert self.drive is not None, "an execution runs with a drive"
        return self.drive


@final
class _ParkingSteps:
    """Runs the steps the log has no outcome for; parks the execution when one suspends."""

    def __init__(self, execution: ScriptExecution) -> None:
        self._execution = execution

    @property
    def state(self) -> RunState:
        drive = self._execution.drive
        assert drive is not None, "an execution runs with a drive"
        return drive.session.state

    async def execute(
        self,
        key: StepKey,
        fn: ScriptStepHandler,
        position: int,
        previous: tuple[bool, JSONValue],
        retry: RetryPolicy | None,
    ) -> JSONValue:
        execution = self._execution
        while True:
            drive = execution.drive
            assert drive is not None, "an execution runs with a drive"
            policy = retry or drive.definition.retry
            try:
                return await run_step(drive, key, fn, position, previous, ScriptStepContext, policy)
            except (Suspended, RetryScheduled):
                await execution.park()  # re-enter this step with the next drive
            except StepError as failure:
                await drive.session.flush()
                info = failure.info
                raise StepFailedError(key[0], key[1], info.type, info.message) from None


@final
class ParkedScripts:
    """The worker's parked executions, least recently used first out."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 0)
        self._parked: OrderedDict[str, ScriptExecution] = OrderedDict()
        self._group: TaskGroup | None = None

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the script tasks until cancelled (every execution is then given up)."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._group = None
            for execution in self._parked.values():
                execution.abandon()
            self._parked.clear()

    def begin(self, run_id: str, run: ScriptRun) -> ScriptExecution:
        """A new execution of ``run`` (it waits for its first drive)."""
        group = self._group
        assert group is not None, "script tasks run while the worker serves"
        execution = ScriptExecution(run_id, run)
        group.start_soon(execution.serve)  # it takes its first drive when one is put
        return execution

    def take(self, run_id: str, state: RunState) -> ScriptExecution | None:
        """The parked execution of the run, if it may continue from ``state``."""
        execution = self._parked.pop(run_id, None)
        if execution is not None and not execution.fits(state):
            execution.abandon()
            return None
        return execution

    def keep(self, execution: ScriptExecution) -> None:
        """Keep a parked execution for the run's next drive."""
        if self._capacity == 0:
            execution.abandon()
            return
        self._parked[execution.run_id] = execution
        self._parked.move_to_end(execution.run_id)
        while len(self._parked) > self._capacity:
            _, oldest = self._parked.popitem(last=False)
            oldest.abandon()


def _log_end(drive: Drive, divergence: BaseException | None, error: BaseException | None) -> None:
    state = drive.session.state
    extra: dict[str, Any] = {"run_id": state.run_id, "workflow": state.workflow}
    if divergence is not None:
        logger.warning("run %s diverged from its history: %s", state.run_id, divergence,
                       extra=extra)  # fmt: skip
    elif error is not None:
        logger.warning("run %s: run raised %s: %s", state.run_id, type(error).__name__, error,
                       exc_info=error, extra=extra)  # fmt: skip
