"""The live process: an open store, its read side, its worker, and how they are wired.

:func:`open_runtime` is an async context manager that owns one task group for
every background task (jobs, worker, projector, tail). Facts reach the one
dispatcher from the store's commits and from the tail; commands only write.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import final

import anyio

from stemlog.authoring.registry import Registry
from stemlog.clock import Clock
from stemlog.errors import InvalidStoreURLError, StoreUnavailableError, StoreWriteError
from stemlog.runtime.background import Background
from stemlog.runtime.commands import Commands
from stemlog.runtime.dispatch import Dispatcher
from stemlog.runtime.read_side import ReadSide
from stemlog.runtime.signals import RunSignals
from stemlog.runtime.worker import Worker
from stemlog.store.base import Backend, Leases
from stemlog.store.events import RunStore
from stemlog.store.faults import Fault, classify, describe, unreachable_at_open

_FAR = datetime(9999, 1, 1, tzinfo=UTC)

logger = logging.getLogger("stemlog.runtime")


@final
class Runtime:
    """The parts of an open app; built by :func:`open_runtime`."""

    def __init__(
        self,
        store: RunStore,
        views: ReadSide,
        registry: Registry,
        clock: Clock,
        *,
        worker: Worker | None,
        commands: Commands,
    ) -> None:
        self.store = store
        self.views = views
        self.registry = registry
        self.clock = clock
        self.signals = RunSignals()
        self.background = Background()
        self.commands = commands
        self.worker = worker
        self.leases: Leases | None = (
            worker.leases if worker is not None else store.backend.lease_reader(clock, store)
        )
        """Whose claims status views show (this worker's, or every worker's)."""
        self.dispatcher = Dispatcher(
            self.signals, views.log_moved, self.background,
            commands.deliver_child_outcome, worker,
        )  # fmt: skip

    async def recover(self) -> None:
        """Resume what the log left to do: runnable runs, timers, children's outcomes."""
        worker = self.worker
        if worker is None:
            return
        views = self.views
        await views.catch_up()
        for run_id in await views.call(views.view.runnable, 1_000_000):
            worker.schedule(run_id)
        for run_id, due_at in await views.call(views.view.due, _FAR, 1_000_000):
            worker.timers.set(run_id, due_at)
        for _parent, child in await views.call(views.view.child_waits):
            self.background.submit(self.commands.deliver_child_outcome, child)

    def recover_soon(self) -> None:
        """Recover again in the background (new definitions were registered)."""
        self.background.submit(self.recover)


def _open_store(backend: Backend, store_timeout: float) -> tuple[RunStore, ReadSide]:
    with backend.schema_lock():
        store = RunStore(backend, store_timeout=store_timeout)
        try:
            backend.prepare(store.log)
            return store, ReadSide.create(store)
        except BaseException:
            store.close()
            raise


async def _open_when_reachable(
    backend: Backend, store_timeout: float
) -> tuple[RunStore, ReadSide]:
    """Open the store, waiting up to ``store_timeout`` while it is away.

    Raises:
        StoreUnavailableError: away that long, or it cannot be opened as named
            (no such file or database, not a database, refused credentials).
        StoreWriteError: it refuses writes (a read-only file, a full disk).
    """
    deadline = anyio.current_time() + store_timeout
    delay = 0.1
    while True:
        try:
            return await anyio.to_thread.run_sync(_open_store, backend, store_timeout)
        except Exception as error:
            if unreachable_at_open(error):
                raise StoreUnavailableError(backend.where, describe(error)) from error
            fault = classify(error)
            if fault is None:
                raise
            if fault is Fault.REFUSING:
                raise StoreWriteError(backend.where, describe(error)) from error
            if anyio.current_time() + delay > deadline:
                raise StoreUnavailableError(backend.where, describe(error)) from error
            logger.warning("store %s is unavailable (%s); retrying", backend.where,
                           describe(error))  # fmt: skip
            await anyio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _worker_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@asynccontextmanager
async def open_runtime(
    backend: Backend,
    registry: Registry,
    clock: Clock,
    *,
    worker: bool,
    concurrency: int,
    lease: float,
    store_timeout: float,
    create: bool = True,
) -> AsyncIterator[Runtime]:
    """Open the store, start the background tasks, and close it all on exit.

    Raises:
        InvalidStoreURLError: with ``create=False``, the URL names no existing store.
    """
    if not create and not backend.exists():
        raise InvalidStoreURLError(backend.url, "no such database (nothing was created)")
    store, views = await _open_when_reachable(backend, store_timeout)
    guard = backend.worker_guard() if worker else None
    try:
        if guard is not None:
            guard.acquire()
        commands = Commands(store, views, registry, clock)
        driver = None
        if worker:
            leases = backend.leases(_worker_owner(), lease, clock, store)
            driver = Worker(
                store, registry.resolve, clock, leases, concurrency=concurrency,
                children=commands, cancel=commands.cancel,
            )  # fmt: skip
        runtime = Runtime(store, views, registry, clock, worker=driver, commands=commands)
        store.add_listener(runtime.dispatcher.appended)
        raised: BaseException | None = None
        async with anyio.create_task_group() as group:
            await group.start(runtime.background.serve)
            if driver is not None:
                await group.start(driver.run)
            await group.start(views.follow)
            tail = backend.tail(store, runtime.dispatcher.appended)
            if tail is not None:
                await group.start(tail.run)
            await runtime.recover()
            try:
                yield runtime
            except BaseException as error:
                # The caller's own exception: raised as it is, after the group
                # (a task group would wrap it in an exception group).
                raised = error
            finally:
                group.cancel_scope.cancel()
        if raised is not None:
            raise raised
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)
        if guard is not None:
            guard.release()
