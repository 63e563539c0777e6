"""The in-app worker: claims due runs from the run index and drives them.

One worker lives in each app opened with ``worker=True``, inside the app's
task group. Work is claimed, never raced: the worker drives a run only while
it holds the run's claim in the index (:mod:`stemlog.store.index`). It gets
claims two ways —

* in the append itself: a drive's commits keep the claim while the run can
  move and give it up when it suspends or ends, and a command of this app
  (a start, an emit) takes the claim for this worker when it has room;
* by a claim round (:mod:`stemlog.runtime.claimer`): one statement claims a
  batch of due runs (a sleep ended, a retry came, a run started elsewhere, a
  claim of a dead worker ran out), when a hint says there may be work, when
  the next known due time comes, and every few seconds otherwise.

All claims are renewed by one statement every third of the lease, and given
up when the worker closes. A run is driven by at most one task at a time
(``schedule`` on a run already being driven marks it to be driven again when
that drive ends), and up to ``concurrency`` runs are driven at once. Each
drive is isolated: an unexpected exception in one run's drive fails that
run, logged, and never reaches the app.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import final

import anyio
from anyio import CapacityLimiter
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from stemlog.authoring.context import ChildLauncher
from stemlog.authoring.definition import WorkflowDefinition
from stemlog.clock import Clock, from_micros
from stemlog.errors import (
    InvalidPayloadError,
    StoreUnavailableError,
    StoreWriteError,
    UnknownRunError,
)
from stemlog.execution.drive import Drive
from stemlog.execution.driver import RunDriver
from stemlog.execution.outcomes import error_info, interrupt_of, is_cancellation
from stemlog.execution.parked import ParkedScripts
from stemlog.execution.session import RunSession
from stemlog.model.children import CHILD_TOPIC_PREFIX
from stemlog.model.run import Run, StaleDecisionError
from stemlog.model.schedule import cancel_due, ready_at, runnable, waiting_topic
from stemlog.model.state import RunState
from stemlog.runtime.claimer import STORE_RETRY, Claimer, log_takeover, sleep_then_cancel
from stemlog.runtime.held import HeldClaims
from stemlog.runtime.policies import Canceller, Policies
from stemlog.runtime.run_cache import RunCache
from stemlog.runtime.timers import Timers
from stemlog.runtime.writes import ClaimingWriter, UnstoredStarts
from stemlog.store.events import RunStore
from stemlog.store.index import Claimed, ClaimMode

Resolver = Callable[[str, int], WorkflowDefinition | None]
Deliverer = Callable[[str], Awaitable[None]]
Served = Callable[[], Sequence[str]]

logger = logging.getLogger("stemlog.worker")

CACHED_RUNS = 1024
"""How many driven runs a worker keeps in memory (at least four per drive it runs at once)."""
PARKED_SCRIPTS = 1024
"""How many suspended script executions a worker keeps to continue (0: re-enter ``run``
from its top on every resume, as a fresh worker does)."""

_DRIVING: contextvars.ContextVar[bool] = contextvars.ContextVar("stemlog_driving", default=False)
"""Set in the worker's tasks: a start made by a step (or a script) stores its run at
once rather than wait for a drive, which might wait for the step's own (no deadlock,
whatever the concurrency)."""

SNAPSHOT_EVERY = 1000
"""A run is snapshotted each time its history passes a multiple of this many facts,
so loading it from the store reads at most that many facts after its snapshot."""


@final
class Worker:
    """Executes runs of registered workflows, claimed from the run index."""

    def __init__(
        self,
        store: RunStore,
        resolve: Resolver,
        served: Served,
        clock: Clock,
        *,
        owner: str,
        lease: float,
        concurrency: int,
        children: ChildLauncher,
        cancel: Canceller,
        deliver: Deliverer,
    ) -> None:
        self._store = store
        self._resolve = resolve
        self._served = served
        self._clock = clock
        self.owner = owner
        self.lease = timedelta(seconds=lease)
        self._concurrency = max(concurrency, 1)
        self._children = children
        self._deliver = deliver
        self.handler_limiter = CapacityLimiter(self._concurrency)
        self._send: MemoryObjectSendStream[str]
        self._receive: MemoryObjectReceiveStream[str]
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)
        self._active: set[str] = set()
        self._held = HeldClaims()
        """Runs whose claim this worker holds (as its commits and claim rounds said)."""
        self._sessions: dict[str, RunSession] = {}
        self._policies = Policies(store, clock, cancel, self._sessions)
        self._fresh: dict[str, Run] = {}
        self._again: set[str] = set()
        self._unstored = UnstoredStarts()
        """New runs handed over by ``start`` before they were stored (see :mod:`.writes`)."""
        self._aside: dict[str, str] = {}
        """Runs set aside as blocked (their history cannot be read), with why."""
        self._taken_over: dict[str, tuple[str, datetime]] = {}
        self._cache = RunCache(max(CACHED_RUNS, 4 * concurrency))
        self._scripts = ParkedScripts(max(PARKED_SCRIPTS, 4 * concurrency) if PARKED_SCRIPTS else 0)
        self.timers = Timers()
        """Moments to look at runs this worker holds: a policy limit during a step,
        a drive to try again once the store is back."""
        self._claims = Claimer(store, clock, served, self._held,
                               room=lambda: self._concurrency - len(self._active),
                               claimed=self._claimed)  # fmt: skip
        store.serve_claims(owner, lease)

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
        try:
            self._send.send_nowait(run_id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._active.discard(run_id)  # the worker has stopped
            if self._unstored.drop(run_id):
                self._held.released(run_id)

    async def start_here(self, run: Run) -> bool:
        """Drive a new run that is not stored yet: its ``RunStarted`` goes to the store
        with the drive's first commit (see :mod:`stemlog.runtime.writes`). Returns once
        that commit is done, whether it stored the run (``False``: the drive ended
        before it; nothing of the run is stored).

        Raises:
            StoreUnavailableError, StoreWriteError: what the first commit raised.
        """
        if _DRIVING.get():
            return False  # a step of a drive here starts it: it never waits for a drive
        run_id = run.state.run_id
        waiter = self._unstored.add(run_id)
        self._held.committed(run_id, 0, True)  # the drive's commits take the claim
        self.schedule(run_id, run)
        return await waiter.stored()

    def claim_mode(self, run: Run) -> ClaimMode:
        """How a command of this app commits ``run``: take its claim for this worker
        when the worker serves it and has room to drive it now."""
        state = run.state
        if len(self._active) >= self._concurrency or not self._serves(state):
            return ClaimMode.KEEP
        return ClaimMode.TAKE

    def note(self, run: Run, held: bool | None, claimable: bool) -> None:
        """A commit of this process left ``run`` as it is now.

        ``held`` says whether this worker holds its claim now (``None``: the
        commit did not touch the claim); ``claimable``, whether the commit left
        some run that any worker may claim now.
        """
        state = run.state
        if held is not None:
            self._held.committed(state.run_id, state.position, held)
        if claimable:
            self.hint()
        if state.run_id not in self._held:
            if not self._serves(state):
                return
            if runnable(state, self._clock.now()):
                self._cache.put(run)  # a claim round may take it soon: no load then
            when = ready_at(state)  # a sleep, a retry, a deadline: claim it then
            if when is not None:
                self.hint_at(when)
            return
        session = self._sessions.get(state.run_id)
        if session is not None and session.state is state:
            return  # this worker's own drive goes on by itself
        if runnable(state, self._clock.now()):
            self.schedule(state.run_id, run)

    def hint(self) -> None:
        """There may be runs to claim now."""
        self._claims.hint()

    def remote_hint(self) -> None:
        """Another process left a run to claim."""
        self._claims.remote_hint()

    def hint_at(self, moment: datetime) -> None:
        """There may be runs to claim at ``moment``."""
        self._claims.hint_at(moment)

    def _claimed(self, item: Claimed) -> None:
        """A claim round took ``item``: drive it (note whose claim had run out), from the
        cached aggregate as it is if that is the version the claim saw."""
        if item.previous is not None:
            self._taken_over[item.run_id] = (item.previous[0], from_micros(item.previous[1]))
        cached = self._cache.take(item.run_id)
        if cached is not None and cached.version != item.version:
            self._cache.put(cached)  # behind the log: the drive fast-forwards it
            cached = None
        self.schedule(item.run_id, cached)

    def holds(self, run_id: str) -> bool:
        """Whether this worker holds the run's claim (so it drives it, and hears of its
        end from its own commits)."""
        return run_id in self._held

    def _serves(self, state: RunState) -> bool:
        return self._resolve(state.workflow, state.workflow_version) is not None

    def busy(self) -> int:
        """How many runs are being driven or waiting to be."""
        return len(self._active)

    # -- the loops -----------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Claim and drive runs, fire timers and renew claims until cancelled; give
        every claim up on the way out."""
        _DRIVING.set(True)  # for every task the worker starts (they copy this context)
        with self._send, self._receive:
            try:
                await self._claims.release_dead_workers()
                async with anyio.create_task_group() as group:
                    await group.start(self._scripts.serve)
                    for _ in range(self._concurrency):
                        group.start_soon(self._drive_loop)
                    group.start_soon(self._timer_loop, group)
                    group.start_soon(self._claims.run)
                    group.start_soon(self._claims.renew, self.lease)
                    task_status.started()
            finally:
                for run_id in self._unstored.drop_all():  # their starts store them
                    self._held.released(run_id)
                with (
                    anyio.CancelScope(shield=True),
                    anyio.move_on_after(5),
                    contextlib.suppress(StoreUnavailableError, StoreWriteError),
                ):
                    await self._store.release_owners([self.owner])  # else they run out

    async def _drive_loop(self) -> None:
        async for run_id in self._receive:
            try:
                await self._drive(run_id)
            finally:
                self._active.discard(run_id)
                if run_id in self._again:
                    self._again.discard(run_id)
                    self.schedule(run_id)
                elif self._claims.more and self._concurrency - len(self._active) >= self._batch():
                    self.hint()

    def _batch(self) -> int:
        """Room a claim round waits for while runs queue up (claims go in batches)."""
        return max(1, self._concurrency // 4)

    async def _drive(self, run_id: str) -> None:
        fresh = self._fresh.pop(run_id, None)
        if run_id not in self._held:
            return  # its claim went (given up, or taken over after it ran out)
        run: Run | None = None
        try:
            cached = self._cache.take(run_id)
            run = fresh or await self._load(run_id, cached)
            if run is not None:
                run = await self._drive_claimed(run)
        except (StoreUnavailableError, StoreWriteError):
            # Not the run's fault: drive it again once the store may be back.
            self.timers.set_earlier(run_id, self._clock.now() + STORE_RETRY)
            return
        except BaseException as error:
            if is_cancellation(error) or isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            # An internal signal only ends the drive; a run not stored yet is its start's.
            if interrupt_of(error) is None and run_id not in self._unstored:
                await self._fail_broken(run_id, error)
        finally:
            self._sessions.pop(run_id, None)
            if self._unstored.drop(run_id):  # ended before its first commit: not stored
                self._held.released(run_id)
                run = None
        if run is not None and run_id in self._held and run_id not in self._again:
            await self._give_up(run)

    async def _give_up(self, run: Run) -> None:
        """The drive ended without an append that gave the claim up: give it up now,
        with the run's index row as its state says (so nobody claims it for nothing)."""
        run_id = run.state.run_id
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(5),
            contextlib.suppress(StoreUnavailableError, StoreWriteError),
        ):
            result = await self._store.settle(run)
            if run_id not in result.held:
                self._held.released(run_id)
            if result.claimable:
                self.hint()

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
            self._held.released(run_id)
            return None
        except InvalidPayloadError as error:  # its history cannot be read or folded
            self._set_aside(run_id, str(error))
            return None

    def _set_aside(self, run_id: str, reason: str) -> None:
        """Keep the run's claim (renewed while this worker lives) so no worker of this
        code tries it again and again; a worker started later tries once more."""
        if run_id not in self._aside:
            self._aside[run_id] = reason
            logger.warning("run %s set aside as blocked: %s", run_id, reason,
                           extra={"run_id": run_id})  # fmt: skip

    async def _drive_claimed(self, run: Run) -> Run:
        """Drive the claimed run; the aggregate as the drive left it."""
        state = run.state
        previous_holder = self._taken_over.pop(state.run_id, None)
        cancel = cancel_due(state)
        if cancel is not None:  # armed before a long step, so the policy can act during it
            self.timers.set_earlier(state.run_id, cancel.at)
        definition = self._resolve(state.workflow, state.workflow_version)
        if definition is None or state.status.is_terminal or await self._policies.enforce(state):
            return run
        run = await self._deliver_child_outcome(run)
        state = run.state
        log_takeover(state, previous_holder, self._clock.now())
        session = self._sessions[state.run_id] = RunSession(
            run, ClaimingWriter(self._store, self._unstored)
        )
        drive = Drive(session, definition, self._clock, self.handler_limiter, self._children)
        driver = RunDriver(drive, self._scripts)
        await driver.wake_if_due()
        await driver.drive()
        if session.moved_on:
            self._again.add(state.run_id)  # decide again from what is stored now
            return session.run
        if not session.state.status.is_terminal:
            self._cache.put(session.run)
        if session.run.version // SNAPSHOT_EVERY > state.position // SNAPSHOT_EVERY:
            with contextlib.suppress(StoreUnavailableError, StoreWriteError):
                await self._store.snapshot(session.run)
        return session.run

    async def _deliver_child_outcome(self, run: Run) -> Run:
        """A run waiting on a child is claimed when that child ended: deliver the
        child's outcome first (idempotent), then drive from what is stored."""
        topic = waiting_topic(run.state)
        if topic is None or not topic.startswith(CHILD_TOPIC_PREFIX):
            return run
        await self._deliver(topic.removeprefix(CHILD_TOPIC_PREFIX))
        return await self._store.fast_forward(run)

    async def _fail_broken(self, run_id: str, error: BaseException) -> None:
        """A drive raised what no step or pass handles: fail that run, keep the worker."""
        logger.error("run %s failed: its drive raised %s", run_id, type(error).__name__,
                     exc_info=error, extra={"run_id": run_id})  # fmt: skip
        info = error_info(error).to_json()
        try:
            run = await self._store.load(run_id)
            if not run.state.status.is_terminal:
                run.fail(info, self._clock.now())
                await self._store.commit(run, claim=ClaimMode.TAKE)
        except Exception:
            logger.exception("run %s: recording its failure failed too", run_id,
                             extra={"run_id": run_id})  # fmt: skip

    async def _timer_loop(self, group: TaskGroup) -> None:
        while True:
            changed = self.timers.reset_changed()
            now = self._clock.now()
            for run_id in self.timers.pop_due(now):
                if run_id in self._active and self._policies.due_during_step(run_id, now):
                    group.start_soon(self._policies.enforce_now, run_id)
                if run_id in self._held:
                    self.schedule(run_id)
            earliest = self.timers.earliest()
            if earliest is None:
                await changed.wait()
                continue
            async with anyio.create_task_group() as sleeper:
                sleeper.start_soon(sleep_then_cancel, self._clock, earliest, sleeper.cancel_scope)
                await changed.wait()
                sleeper.cancel_scope.cancel()
