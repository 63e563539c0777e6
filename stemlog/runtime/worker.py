"""The in-app worker: drives runnable runs, fires timers and deadlines, holds leases.

One worker lives in each app opened with ``worker=True``, inside the app's
task group. A run is driven by at most one task at a time (``schedule`` on a
run already being driven marks it to be driven again when that drive ends),
and up to ``concurrency`` runs are driven at once. Timers are kept in a heap
fed by the drives themselves and by the ``timers`` view (so timers recorded
before a restart, or by another process, fire too); the timer task sleeps
until the earliest one through the clock, and is woken when an earlier one
arrives, so nothing polls.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import final

import anyio
from anyio import CapacityLimiter
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from stemlog.authoring.definitions import WorkflowDefinition
from stemlog.clock import Clock
from stemlog.errors import UnknownRunError
from stemlog.execution.executor import RunDriver
from stemlog.execution.session import RunSession
from stemlog.model.children import ChildLauncher
from stemlog.model.fold import RunState
from stemlog.model.records import RunStatus
from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.leases import Leases

Resolver = Callable[[str, int], WorkflowDefinition | None]


@final
class Worker:
    """Executes runs of registered workflows."""

    def __init__(
        self,
        store: RunStore,
        resolve: Resolver,
        clock: Clock,
        *,
        concurrency: int,
        leases: Leases,
        children: ChildLauncher | None = None,
        settled: Callable[[RunState], None] | None = None,
        enforce: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._children = children
        self._settled = settled
        self._enforce = enforce
        self._resolve = resolve
        self._clock = clock
        self._concurrency = concurrency
        self.leases = leases
        self.handler_limiter = CapacityLimiter(max(concurrency, 1))
        self._send: MemoryObjectSendStream[str]
        self._receive: MemoryObjectReceiveStream[str]
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)
        self._active: set[str] = set()
        self._fresh: dict[str, Run] = {}
        self._again: set[str] = set()
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._timers_changed = anyio.Event()
        self._tasks: TaskGroup | None = None

    def schedule(self, run_id: str, run: Run | None = None) -> None:
        """Drive ``run_id`` soon (again, if a drive of it is under way).

        ``run`` is the aggregate as just committed, which saves a reload; if it
        turns out stale, the drive's first commit conflicts and reloads.
        """
        if run_id in self._active:
            self._again.add(run_id)
            self._fresh.pop(run_id, None)
            return
        self._active.add(run_id)
        if run is not None:
            self._fresh[run_id] = run
        with contextlib.suppress(anyio.ClosedResourceError):  # the app is closing
            self._send.send_nowait(run_id)

    def busy(self) -> int:
        """How many runs are being driven or waiting to be."""
        return len(self._active)

    def set_timer_min(self, run_id: str, due_at: datetime) -> None:
        """Fire ``run_id``'s timer at ``due_at`` unless an earlier one is set."""
        current = self._due.get(run_id)
        if current is None or due_at < current:
            self.set_timer(run_id, due_at)

    def set_timer(self, run_id: str, due_at: datetime | None) -> None:
        """Fire ``run_id``'s timer at ``due_at`` (``None`` forgets it)."""
        if due_at is None:
            self._due.pop(run_id, None)
            return
        if self._due.get(run_id) == due_at:
            return
        self._due[run_id] = due_at
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due_at, run_id))
        if earliest is None or due_at < earliest:
            self._timers_changed.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Drive runs and fire timers until cancelled."""
        with self._send, self._receive:
            async with anyio.create_task_group() as group:
                self._tasks = group
                for _ in range(self._concurrency):
                    group.start_soon(self._drive_loop)
                group.start_soon(self._timer_loop)
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
        if not await self.leases.claim(run_id):
            # Another worker holds it: look again once its lease could have expired.
            self.set_timer_min(run_id, self._clock.now() + self.leases.duration)
            return
        try:
            run = fresh or await self._store.load(run_id)
            await self._drive_claimed(run)
        except UnknownRunError:
            return
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.leases.release(run_id)

    async def _drive_claimed(self, run: Run) -> None:
        state = run.state
        cancel = state.cancel_due()
        if cancel is not None:  # armed before a long step, so the policy can act during it
            self.set_timer_min(state.run_id, cancel[0])
        definition = self._resolve(state.workflow, state.workflow_version)
        if definition is None or state.status.is_terminal or await self._cancelled_by_policy(state):
            self._note_timer(state)
            return
        session = RunSession(run, self._store)
        driver = RunDriver(session, definition, self._clock, self.handler_limiter, self._children)
        await driver.wake_if_due()
        await driver.drive()
        self._note_timer(session.state)
        if self._settled is not None:
            self._settled(session.state)

    async def _cancelled_by_policy(self, state: RunState) -> bool:
        due = state.cancel_due()
        if due is None or due[0] > self._clock.now() or self._enforce is None:
            return False
        return await self._enforce(state.run_id)

    def _note_timer(self, state: RunState) -> None:
        dues: list[datetime] = []
        if state.wait is not None and state.wait.due_at is not None:
            dues.append(state.wait.due_at)
        elif state.status is RunStatus.RUNNING and state.retry_at is not None:
            dues.append(state.retry_at)
        cancel = state.cancel_due()
        if cancel is not None:
            dues.append(cancel[0])
        self.set_timer(state.run_id, min(dues, default=None))

    async def _timer_loop(self) -> None:
        while True:
            self._timers_changed = anyio.Event()
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                due_at, run_id = heapq.heappop(self._heap)
                if self._due.get(run_id) == due_at:
                    del self._due[run_id]
                    self._fire(run_id)
            if not self._heap:
                await self._timers_changed.wait()
                continue
            earliest = self._heap[0][0]
            async with anyio.create_task_group() as group:
                group.start_soon(self._sleep_then_cancel, earliest, group.cancel_scope)
                await self._timers_changed.wait()
                group.cancel_scope.cancel()

    def _fire(self, run_id: str) -> None:
        """A timer is due: a policy may cancel the run even mid-step; then drive it."""
        if run_id in self._active and self._enforce is not None and self._tasks is not None:
            self._tasks.start_soon(self._enforce_now, run_id)
        self.schedule(run_id)

    async def _enforce_now(self, run_id: str) -> None:
        if self._enforce is not None:
            await self._enforce(run_id)

    async def _sleep_then_cancel(self, moment: datetime, scope: anyio.CancelScope) -> None:
        await self._clock.sleep_until(moment)
        scope.cancel()

    async def _lease_loop(self) -> None:
        while True:
            await anyio.sleep(max(self.leases.duration.total_seconds() / 3, 0.05))
            await self.leases.renew()
