"""The parts of an open app and how they are wired together.

The engine owns the store, the views and their projector, the worker and the
task group they run in. Wiring: every commit wakes ``wait_for`` callers and
the projector; every projected page re-arms timers and tells parents about
children that ended (also those ended by other processes); every drive that
settles a run does the same for the runs it just drove.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, final

import anyio
from anyio.abc import TaskGroup

from stemlog.authoring.registry import Registry
from stemlog.clock import Clock
from stemlog.errors import RunEndedError, UnknownRunError
from stemlog.model.children import CHILD_TOPIC_PREFIX
from stemlog.model.facts import AnyFact
from stemlog.model.fold import RunState
from stemlog.runtime.delivery import Delivery
from stemlog.runtime.reactions import RemoteReactions
from stemlog.runtime.signals import RunSignals
from stemlog.runtime.starter import Starter
from stemlog.runtime.views import ViewKeeper
from stemlog.runtime.worker import Worker
from stemlog.store.events import RunStore
from stemlog.store.follower import LogFollower
from stemlog.store.leases import Leases, LocalLeases, TableLeases
from stemlog.store.urls import StoreConfig, schema_lock
from stemlog.store.worker_lock import WorkerLock


@final
class Engine:
    """An open store with its background tasks; built by ``WorkflowApp.__aenter__``."""

    def __init__(self, store: RunStore, views: ViewKeeper, registry: Registry, clock: Clock):
        self.store = store
        self.views = views
        self.clock = clock
        self.signals = RunSignals()
        self.starter = Starter(store, registry, clock)
        self.worker: Worker | None = None
        self.delivery = Delivery(store, views, clock, None)
        self.follower: LogFollower | None = None
        self._reactions = RemoteReactions(None, self._spawn_delivery)
        self._lock: WorkerLock | None = None
        self.lease_reader: Leases | None = None
        if store.config.backend == "postgres":  # claims of every worker process, for views
            self.lease_reader = TableLeases("reader", 30.0, clock, store, views.view)
        self._group: TaskGroup | None = None

    @classmethod
    async def open(
        cls,
        config: StoreConfig,
        registry: Registry,
        clock: Clock,
        *,
        worker: bool,
        concurrency: int,
        lease: float,
    ) -> Engine:
        """Open the store and start the background tasks."""
        def create() -> tuple[RunStore, ViewKeeper]:
            with schema_lock(config):
                store = RunStore(config)
                try:
                    return store, ViewKeeper.create(store)
                except BaseException:
                    store.close()
                    raise

        store, views = await anyio.to_thread.run_sync(create)
        try:
            engine = cls(store, views, registry, clock)
            await engine._start(registry, worker, concurrency, lease)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)
            raise
        return engine

    async def _start(
        self, registry: Registry, worker: bool, concurrency: int, lease: float
    ) -> None:
        self._group = await anyio.create_task_group().__aenter__()
        try:
            if worker:
                await self._start_worker(registry, concurrency, lease)
            self.store.add_listener(self._on_commit)
            await self._group.start(self.views.run, _ignore_pages)
            if self.store.config.backend != "memory":  # other processes may write
                self.follower = LogFollower(self.store, self._on_remote)
                await self._group.start(self.follower.run)
            await self.recover()
        except BaseException:
            await self.close()
            raise

    async def _start_worker(self, registry: Registry, concurrency: int, lease: float) -> None:
        assert self._group is not None
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        leases: Leases
        if self.store.config.backend == "postgres":
            leases = TableLeases(owner, lease, self.clock, self.store, self.views.view)
        else:
            if self.store.config.backend == "sqlite":
                self._lock = WorkerLock(self.store.config.env["SQLITE_DBNAME"])
                self._lock.acquire()
            leases = LocalLeases(owner, lease, self.clock)
        self.worker = Worker(
            self.store, registry.resolve, self.clock, concurrency=concurrency, leases=leases,
            children=self, settled=self._settled, enforce=self._enforce_policy,
        )  # fmt: skip
        await self._group.start(self.worker.run)
        self.lease_reader = leases
        busy = self.worker.busy
        self.store.solo = lambda: busy() <= 1
        self.delivery = Delivery(self.store, self.views, self.clock, self.worker)
        self._reactions = RemoteReactions(self.worker, self._spawn_delivery)

    async def recover(self) -> None:
        """Resume what the log left runnable: runs, timers, children's outcomes."""
        if self.worker is None or self._group is None:
            return
        await self.views.recover(self.worker)
        for _parent, child in await self.views.call(self.views.view.child_waits):
            self._group.start_soon(self.delivery.deliver_child_outcome, child)

    def recover_soon(self) -> None:
        """Recover again in the background (new definitions were registered)."""
        if self._group is not None:
            self._group.start_soon(self.recover)

    async def close(self) -> None:
        """Stop the background tasks, then close the store."""
        if self.follower is not None:
            self.follower.stop()
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.store.close)
        if self._lock is not None:
            self._lock.release()

    # -- wiring ---------------------------------------------------------------

    def _on_commit(self, facts: Sequence[Any]) -> None:
        self.signals.facts_committed(facts)
        self.views.log_moved()
        if self.follower is not None:
            self.follower.committed_here(facts)

    def _on_remote(self, facts: Sequence[AnyFact]) -> None:
        """Facts another process appended (seen through the follower)."""
        self.signals.facts_committed(facts)
        self.views.log_moved()
        self._reactions(facts)

    def _settled(self, state: RunState) -> None:
        """A drive left ``state``: tell the parent if it ended, or check the child it awaits."""
        if state.status.is_terminal and state.parent_run_id is not None:
            self._spawn_delivery(state.run_id)
        wait = state.wait
        if (
            wait is not None
            and wait.topic is not None
            and wait.topic.startswith(CHILD_TOPIC_PREFIX)
        ):
            self._spawn_delivery(wait.topic.removeprefix(CHILD_TOPIC_PREFIX))

    async def _enforce_policy(self, run_id: str) -> bool:
        """Cancel the run if its cancellation policy says so now; whether it did."""
        try:
            state = (await self.store.load(run_id)).state
        except UnknownRunError:
            return False
        due = state.cancel_due()
        if due is None or due[0] > self.clock.now():
            return False
        with contextlib.suppress(RunEndedError):
            await self.delivery.cancel(run_id, due[1])
        return True

    def _spawn_delivery(self, child_run_id: str) -> None:
        if self._group is not None:
            self._group.start_soon(self.delivery.deliver_child_outcome, child_run_id)

    async def start_child(self, workflow: Any, params: Any, parent_run_id: str, run_id: str) -> str:
        """Start a child run (or find it started) and schedule it."""
        child_id, run = await self.starter.start_child(workflow, params, parent_run_id, run_id)
        if self.worker is not None:
            self.worker.schedule(child_id, run)
        return child_id


def _ignore_pages(facts: Sequence[Any], rows: Sequence[Any]) -> None:
    """The projector's pages need no reaction: local commits and the follower wake all."""
