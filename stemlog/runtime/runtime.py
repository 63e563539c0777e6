"""The live process: an open store, its read side, its worker, and how they are wired.

:func:`open_runtime` is an async context manager that owns one task group for
every background task (worker, projector, hints, tail). Facts reach the one
dispatcher from the store's commits and from the tail; commands only write;
the backend's hints wake the tail, the read models and the worker's claim
rounds when another process writes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import final

import anyio

from stemlog.authoring.registry import Registry
from stemlog.clock import Clock
from stemlog.errors import InvalidStoreURLError, StoreUnavailableError, StoreWriteError
from stemlog.runtime.catalog import CatalogWriter
from stemlog.runtime.claimer import worker_owner
from stemlog.runtime.commands import Commands
from stemlog.runtime.dispatch import Dispatcher
from stemlog.runtime.read_side import ReadSide
from stemlog.runtime.signals import RunSignals
from stemlog.runtime.worker import Worker
from stemlog.store.base import Backend, Hints
from stemlog.store.events import RunStore
from stemlog.store.faults import Fault, classify, describe, unreachable_at_open
from stemlog.store.index import served_key
from stemlog.store.tail import PollingTail

_BACKFILL_LIMIT = 10_000_000
_CATALOG_ON_CLOSE_SECONDS = 2.0

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
        hints: Hints | None,
    ) -> None:
        self.store = store
        self.views = views
        self.registry = registry
        self.clock = clock
        self.signals = RunSignals()
        self.commands = commands
        self.worker = worker
        self.catalog = CatalogWriter(store, registry)
        self.dispatcher = Dispatcher(self.signals, views.appended, worker)
        interval = store.backend.tail_interval
        self.tail = None if interval is None else PollingTail(
            store, self.dispatcher.appended, interval,
            wanted=self.tail_wanted, look_again=self.signals.look_again,
            on_following=self._following_changed,
        )  # fmt: skip
        self.hints = hints
        """Other processes' hints (``None``: nobody else can write), told when the tail
        starts or stops following."""
        self.signals.on_first_watch = self._first_watch

    def tail_wanted(self) -> bool:
        """Whether somebody here waits for a run that this app's worker does not hold:
        its end may be appended by another process, which only the tail reads. (A run
        the worker holds ends in a commit of this process; should the worker lose it,
        the tail sees so at its next round, within its interval.)"""
        worker = self.worker
        if worker is None:
            return self.signals.has_watchers()
        return any(not worker.holds(run_id) for run_id in self.signals.watched())

    def _first_watch(self, run_id: str) -> None:
        tail = self.tail
        if tail is not None and not tail.following and self.tail_wanted():
            tail.wake()

    def _following_changed(self) -> None:
        if self.hints is not None:
            self.hints.reconsider()

    def tail_following(self) -> bool:
        """Whether the tail reads the log now (what the log's hints are wanted for)."""
        return self.tail is not None and self.tail.following

    def log_hint(self) -> None:
        """Another process may have appended: the tail and the read models look."""
        if self.tail is not None:
            self.tail.wake()
        self.views.log_moved()

    def ready_hint(self) -> None:
        """Another process may have left a run to claim."""
        if self.worker is not None:
            self.worker.remote_hint()

    def recover_soon(self) -> None:
        """New definitions were registered: the catalog records them and the worker
        claims what it now serves."""
        self.catalog.changed()
        if self.worker is not None:
            self.worker.hint()


def _open_store(backend: Backend, store_timeout: float, clock: Clock) -> tuple[RunStore, ReadSide]:
    with backend.schema_lock():
        store = RunStore(backend, store_timeout=store_timeout, clock=clock)
        try:
            views = ReadSide.create(store)
            if not store.index.index_backfilled():
                # A store written before the run index existed: fill it, once.
                for projector in views.projectors:
                    projector.catch_up()
                written = store.backfill_index(views.view.unfinished(_BACKFILL_LIMIT))
                if written:
                    logger.info("run index filled with %d unfinished runs", written)
            return store, views
        except BaseException:
            store.close()
            raise


async def _open_when_reachable(
    backend: Backend, store_timeout: float, clock: Clock
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
            return await anyio.to_thread.run_sync(_open_store, backend, store_timeout, clock)
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


async def _record_catalog(runtime: Runtime) -> None:
    """Record what was registered before the app closes (a short-lived process may
    register and leave before the background writer ran); best effort, briefly."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CATALOG_ON_CLOSE_SECONDS):
        try:
            await runtime.catalog.flush()
        except (StoreUnavailableError, StoreWriteError) as error:
            logger.warning("could not record the registered workflows: %s", error)


def _served(registry: Registry) -> list[str]:
    return [served_key(d.name, d.version) for d in registry.all()]


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
    store, views = await _open_when_reachable(backend, store_timeout, clock)
    try:
        commands = Commands(store, views, registry, clock)
        driver = None
        if worker:
            driver = Worker(
                store, registry.resolve, lambda: _served(registry), clock, owner=worker_owner(),
                lease=lease, concurrency=concurrency, children=commands, cancel=commands.cancel,
                deliver=commands.deliver_child_outcome,
            )  # fmt: skip
            commands.claim_mode = driver.claim_mode
            commands.start_here = driver.start_here
        hints = backend.hints(store)
        runtime = Runtime(store, views, registry, clock, worker=driver, commands=commands,
                          hints=hints)  # fmt: skip
        store.add_listener(runtime.dispatcher.appended)
        raised: BaseException | None = None
        async with anyio.create_task_group() as group:
            if driver is not None:
                await group.start(driver.run)
            await group.start(views.follow, backend.leadership(store))
            await group.start(runtime.catalog.run)
            if hints is not None:
                group.start_soon(functools.partial(
                    hints.run, runtime.log_hint, runtime.ready_hint,
                    wants_log=runtime.tail_following, wants_ready=driver is not None,
                ))  # fmt: skip
            if runtime.tail is not None:
                await group.start(runtime.tail.run)
            try:
                yield runtime
            except BaseException as error:
                # The caller's own exception: raised as it is, after the group
                # (a task group would wrap it in an exception group).
                raised = error
            finally:
                await _record_catalog(runtime)
                group.cancel_scope.cancel()
        if raised is not None:
            raise raised
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)
