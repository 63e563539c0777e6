"""The in-app worker: drives runnable runs, fires timers and deadlines, holds leases.

One worker lives in each app opened with ``worker=True``, inside the app's
task group. A run is driven by at most one task at a time (``schedule`` on a
run already being driven marks it to be driven again when that drive ends),
and up to ``concurrency`` runs are driven at once. Each drive is isolated: an
unexpected exception in one run's drive fails that run, logged, and never
reaches the app.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import final

import anyio
from anyio import CapacityLimiter
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from stemlog.authoring.context import ChildLauncher
from stemlog.authoring.definition import WorkflowDefinition
from stemlog.clock import Clock
from stemlog.errors import (
    InvalidPayloadError,
    RunEndedError,
    StoreUnavailableError,
    StoreWriteError,
    UnknownRunError,
)
from stemlog.execution.drive import Drive
from stemlog.execution.driver import RunDriver
from stemlog.execution.outcomes import error_info, interrupt_of, is_cancellation
from stemlog.execution.parked import ParkedScripts
from stemlog.execution.session import RunSession
from stemlog.model.run import Run, StaleDecisionError
from stemlog.model.schedule import cancel_due, next_due, runnable
from stemlog.model.state import RunState, StepKey, step_label
from stemlog.runtime.run_cache import RunCache
from stemlog.runtime.timers import Timers
from stemlog.store.base import Leases
from stemlog.store.events import RunStore

Resolver = Callable[[str, int], WorkflowDefinition | None]
Canceller = Callable[[str, str], Awaitable[None]]

logger = logging.getLogger("stemlog.worker")

_STORE_RETRY = timedelta(seconds=2)

CACHED_RUNS = 1024
"""How many driven runs a worker keeps in memory (at least four per drive it runs at once)."""
PARKED_SCRIPTS = 1024
"""How many suspended script executions a worker keeps to continue (0: re-enter ``run``
from its top on every resume, as a fresh worker does)."""

SNAPSHOT_EVERY = 1000
"""A run is snapshotted each time its history passes a multiple of this many facts,
so loading it from the store reads at most that many facts after its snapshot."""
"""How soon a drive that met an unavailable store is tried again."""


@final
class Worker:
    """Executes runs of registered workflows."""

    def __init__(
        self,
        store: RunStore,
        resolve: Resolver,
        clock: Clock,
        leases: Leases,
        *,
        concurrency: int,
        children: ChildLauncher,
        cancel: Canceller,
    ) -> None:
        self._store = store
        self._resolve = resolve
        self._clock = clock
        self.leases = leases
        self._concurrency = concurrency
        self._children = children
        self._cancel = cancel
        self.handler_limiter = CapacityLimiter(max(concurrency, 1))
        self._send: MemoryObjectSendStream[str]
        self._receive: MemoryObjectReceiveStream[str]
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)
        self._active: set[str] = set()
        self._sessions: dict[str, RunSession] = {}
        self._fresh: dict[str, Run] = {}
        self._again: set[str] = set()
        self._aside: dict[str, str] = {}
        self._cache = RunCache(max(CACHED_RUNS, 4 * concurrency))
        self._scripts = ParkedScripts(max(PARKED_SCRIPTS, 4 * concurrency) if PARKED_SCRIPTS else 0)
        """Runs set aside as blocked (their history cannot be read), with why."""
        self.timers = Timers()

    # -- what the dispatcher tells the worker ----------------------------------

    def schedule(self, run_id: str, run: Run | None = None) -> None:
        """Drive ``run_id`` soon (again, if a drive of it is under way).

        ``run`` is the aggregate as just committed, which saves a reload; if it
        turns out stale, the drive's first commit conflicts and reloads.
        """
        if run_id in self._aside:
            return  # it cannot be read: leave it alone
        if run_id in self._active:
            self._again.add(run_id)
            self._fresh.pop(run_id, None)
            return
        self._active.add(run_id)
        if run is not None:
            self._fresh[run_id] = run
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(run_id)

    def note(self, run: Run, *, current: bool = True) -> None:
        """A commit left ``run`` as it is now: arm its timer, drive it if it can move.

        A commit of this worker's own drive of the run needs no new drive: the
        drive goes on by itself. ``current`` says the aggregate is the one just
        committed, so a drive may start from it instead of loading the run.
        """
        state = run.state
        session = self._sessions.get(state.run_id)
        if session is not None and session.state is state:
            return  # the drive arms the run's timer when it ends
        due = next_due(state)
        self.timers.set(state.run_id, None if due is None else due.at)
        if self._serves(state) and runnable(state, self._clock.now()):
            self.schedule(state.run_id, run if current else None)

    async def observe(self, run_id: str) -> None:
        """Another process appended to the run: look at it, then as :meth:`note`."""
        try:
            run = await self._store.load(run_id)
        except UnknownRunError:
            return
        self.note(run, current=False)  # by the time it is claimed it may be old

    def _serves(self, state: RunState) -> bool:
        return self._resolve(state.workflow, state.workflow_version) is not None

    def busy(self) -> int:
        """How many runs are being driven or waiting to be."""
        return len(self._active)

    # -- the loops -----------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Drive runs, fire timers and renew leases until cancelled."""
        with self._send, self._receive:
            async with anyio.create_task_group() as group:
                await group.start(self._scripts.serve)
                for _ in range(self._concurrency):
                    group.start_soon(self._drive_loop)
                group.start_soon(self._timer_loop, group)
                group.start_soon(self._lease_loop)
                task_status.started()

    async def _drive_loop(self) -> None:
        async for run_id in self._receive:
            try:
                await self._drive(run_id)
            finally:
                self._active.discard(run_id)
                if run_id in self._again:
                    self._again.discard(run_id)
                    self.schedule(run_id)

    async def _drive(self, run_id: str) -> None:
        # Claim first: with several workers, the losers spend one upsert, not a load.
        fresh = self._fresh.pop(run_id, None)
        try:
            claimed = await self.leases.claim(run_id)
        except (StoreUnavailableError, StoreWriteError):
            self.timers.set_earlier(run_id, self._clock.now() + _STORE_RETRY)
            return
        if not claimed:
            # Another worker holds it: look again once its lease could have expired.
            self.timers.set_earlier(run_id, self._clock.now() + self.leases.duration)
            return
        try:
            cached = self._cache.take(run_id)
            run = fresh or await self._load(run_id, cached)
            if run is not None:
                await self._drive_claimed(run)
        except (StoreUnavailableError, StoreWriteError):
            # Not the run's fault: drive it again once the store may be back.
            self.timers.set_earlier(run_id, self._clock.now() + _STORE_RETRY)
        except BaseException as error:
            if is_cancellation(error) or isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            if interrupt_of(error) is None:  # an internal signal only ends the drive
                await self._fail_broken(run_id, error)
        finally:
            self._sessions.pop(run_id, None)
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(5),
                contextlib.suppress(StoreUnavailableError, StoreWriteError),
            ):
                await self.leases.release(run_id)  # else it expires by itself

    async def _load(self, run_id: str, cached: Run | None) -> Run | None:
        """The run — the cached aggregate brought up to date, or loaded — or ``None``
        when it is gone or set aside (it cannot be read)."""
        try:
            if cached is not None:
                try:
                    return await self._store.fast_forward(cached)
                except StaleDecisionError:
                    pass  # not what the log says after all: load it
            return await self._store.load(run_id)
        except UnknownRunError:
            return None
        except InvalidPayloadError as error:  # its history cannot be read or folded
            self._set_aside(run_id, str(error))
            return None

    def _set_aside(self, run_id: str, reason: str) -> None:
        if run_id not in self._aside:
            self._aside[run_id] = reason
            logger.warning("run %s set aside as blocked: %s", run_id, reason,
                           extra={"run_id": run_id})  # fmt: skip

    def _note_takeover(self, state: RunState, previous: tuple[str, datetime] | None) -> None:
        """Log a run whose step was under way when its worker stopped (it runs again)."""
        if not state.in_flight or state.current is None:
            return
        since = state.step_started_at or state.updated_at or state.created_at
        waited = (self._clock.now() - since).total_seconds()
        whose = f"worker {previous[0]}" if previous is not None else "its worker"
        logger.warning(
            "run %s: step %s (attempt %d) was under way when %s stopped, %.1f s ago; "
            "taking it over", state.run_id, step_label(state.current), state.attempt, whose,
            waited, extra=_extra(state, state.current, state.attempt),
        )  # fmt: skip

    async def _drive_claimed(self, run: Run) -> None:
        state = run.state
        previous_holder = self.leases.taken_over.pop(state.run_id, None)
        cancel = cancel_due(state)
        if cancel is not None:  # armed before a long step, so the policy can act during it
            self.timers.set_earlier(state.run_id, cancel.at)
        definition = self._resolve(state.workflow, state.workflow_version)
        if definition is None or state.status.is_terminal or await self._enforce(state):
            self._arm(state)
            return
        self._note_takeover(state, previous_holder)
        session = self._sessions[state.run_id] = RunSession(run, self._store)
        drive = Drive(session, definition, self._clock, self.handler_limiter, self._children)
        driver = RunDriver(drive, self._scripts)
        await driver.wake_if_due()
        await driver.drive()
        self._arm(session.state)
        if session.moved_on:
            self._again.add(state.run_id)  # decide again from what is stored now
            return
        if not session.state.status.is_terminal:
            self._cache.put(session.run)
        if session.run.version // SNAPSHOT_EVERY > state.position // SNAPSHOT_EVERY:
            with contextlib.suppress(StoreUnavailableError, StoreWriteError):
                await self._store.snapshot(session.run)

    async def _enforce(self, state: RunState) -> bool:
        """Cancel the run if its cancellation policy says so now; whether it did."""
        due = cancel_due(state)
        if due is None or due.at > self._clock.now():
            return False
        with contextlib.suppress(RunEndedError, UnknownRunError):
            await self._cancel(state.run_id, str(due.reason))
        return True

    def _policy_due(self, run_id: str, now: datetime) -> bool:
        """Whether a run being driven may be due for cancellation by its policy."""
        session = self._sessions.get(run_id)
        if session is None:
            return False  # not in a step: its next drive applies the policy first
        due = cancel_due(session.state)
        return due is not None and due.at <= now

    async def _enforce_now(self, run_id: str) -> None:
        """A timer fired while the run is being driven: the policy may cancel it mid-step."""
        with contextlib.suppress(UnknownRunError, StoreUnavailableError, StoreWriteError):
            await self._enforce((await self._store.load(run_id)).state)

    async def _fail_broken(self, run_id: str, error: BaseException) -> None:
        """A drive raised what no step or pass handles: fail that run, keep the worker."""
        logger.error("run %s failed: its drive raised %s", run_id, type(error).__name__,
                     exc_info=error, extra={"run_id": run_id})  # fmt: skip
        info = error_info(error).to_json()
        try:
            run = await self._store.load(run_id)
            if not run.state.status.is_terminal:
                run.fail(info, self._clock.now())
                await self._store.commit(run)
        except Exception:
            logger.exception("run %s: recording its failure failed too", run_id,
                             extra={"run_id": run_id})  # fmt: skip

    def _arm(self, state: RunState) -> None:
        due = next_due(state)
        self.timers.set(state.run_id, None if due is None else due.at)

    async def _timer_loop(self, group: TaskGroup) -> None:
        while True:
            changed = self.timers.reset_changed()
            now = self._clock.now()
            for run_id in self.timers.pop_due(now):
                if run_id in self._active and self._policy_due(run_id, now):
                    group.start_soon(self._enforce_now, run_id)
                self.schedule(run_id)
            earliest = self.timers.earliest()
            if earliest is None:
                await changed.wait()
                continue
            async with anyio.create_task_group() as sleeper:
                sleeper.start_soon(self._sleep_then_cancel, earliest, sleeper.cancel_scope)
                await changed.wait()
                sleeper.cancel_scope.cancel()

    async def _sleep_then_cancel(self, moment: datetime, scope: anyio.CancelScope) -> None:
        await self._clock.sleep_until(moment)
        scope.cancel()

    async def _lease_loop(self) -> None:
        while True:
            await anyio.sleep(max(self.leases.duration.total_seconds() / 3, 0.05))
            with contextlib.suppress(StoreUnavailableError, StoreWriteError):
                await self.leases.renew()  # a missed heartbeat: the next one may land


def _extra(state: RunState, step: StepKey | None, attempt: int | None) -> dict[str, object]:
    """The fields every log record about a run carries."""
    return {
        "run_id": state.run_id, "workflow": state.workflow,
        "step": None if step is None else step_label(step), "attempt": attempt,
    }  # fmt: skip
