"""The app's core: opening and closing it, and what it knows of workflows.

:class:`AppCore` holds what every part of the facade needs — the parsed
store URL, the clock, the registry and, while the app is open, the runtime —
and is the async context manager that owns the runtime's one task group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

from anyio import AsyncContextManagerMixin

from stemlog.authoring.definition import WorkflowDefinition
from stemlog.authoring.registry import Registry
from stemlog.authoring.workflows import Definable
from stemlog.clock import Clock, Duration, SystemClock, to_seconds
from stemlog.errors import AppNotOpenError, InvalidPayloadError
from stemlog.model.ids import parse_run_id
from stemlog.runtime.runtime import Runtime, open_runtime
from stemlog.store.urls import parse_store_url


def run_id_of(run_id: object) -> str:
    """A run id or key as the run's id (what the store and the signals know it by).

    Raises:
        UnknownRunError: neither a UUID nor a usable key.
    """
    return str(parse_run_id(run_id))


class AppCore(AsyncContextManagerMixin):
    """Opening, closing and registration; the base of :class:`~stemlog.app.WorkflowApp`."""

    def __init__(
        self,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
        store_timeout: Duration = 30.0,
        create: bool = True,
    ) -> None:
        self.url = url
        self._backend = parse_store_url(url)
        self._clock: Clock = clock or SystemClock()
        self._with_worker = worker
        self._lease = to_seconds(lease, "lease", positive=True)
        self._store_timeout = to_seconds(store_timeout, "store_timeout", positive=True)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidPayloadError("concurrency", f"an int >= 1 is needed, got {concurrency!r}")
        self._concurrency = concurrency
        self._create = create
        self._registry = Registry()
        self._runtime: Runtime | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
        store_timeout: Duration = 30.0,
        create: bool = True,
    ) -> Self:
        """An app on ``memory://``, ``sqlite:///path`` or ``postgresql://...``.

        Use it with ``async with``: entering opens the store and starts the
        background tasks, leaving stops them and closes the store.

        Args:
            url: the store (see :func:`stemlog.store.urls.parse_store_url`).
            worker: run the built-in worker (drives runs, fires timers).
            clock: where time comes from (tests inject a ``ManualClock``).
            lease: how long a claim on a run lasts without a heartbeat.
            concurrency: how many runs the worker drives at once.
            store_timeout: how long a call waits for a store that went away
                (a restarting database, a locked file) before it fails with
                ``StoreUnavailableError``; the background work keeps retrying.
            create: create the store if it does not exist yet; ``False`` makes a
                missing SQLite file an ``InvalidStoreURLError`` instead (for tools
                that only read or act on runs that must exist).

        Raises:
            InvalidStoreURLError: the URL is not understood.
            InvalidPayloadError: a duration or ``concurrency`` that means nothing.
        """
        return cls(url, worker=worker, clock=clock, lease=lease, concurrency=concurrency,
                   store_timeout=store_timeout, create=create)  # fmt: skip

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Self]:
        async with open_runtime(
            self._backend, self._registry, self._clock,
            worker=self._with_worker, concurrency=self._concurrency, lease=self._lease,
            store_timeout=self._store_timeout, create=self._create,
        ) as runtime:  # fmt: skip
            self._runtime = runtime
            try:
                yield self
            finally:
                self._runtime = None

    def _open(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            raise AppNotOpenError()
        return runtime

    def register_flows(self, flows: Sequence[Definable]) -> None:
        """Register flows (or their definitions) so runs of them can start and be driven.

        Registering in an open app resumes the runs of those workflows that the
        log left runnable (registration usually follows ``open``).
        """
        self.register_workflows(flows)

    def register_scripts(self, scripts: Sequence[Definable]) -> None:
        """Register workflow scripts (or their definitions)."""
        self.register_workflows(scripts)

    def register_workflows(self, definitions: Sequence[Definable]) -> None:
        """Register definitions of either kind."""
        self._registry.add_all(definitions)
        runtime = self._runtime
        if runtime is not None:
            runtime.recover_soon()

    def definitions(self) -> list[WorkflowDefinition]:
        """Every registered definition (to register the same ones in another app)."""
        return self._registry.all()

    def manifest(self) -> list[dict[str, Any]]:
        """Every definition registered in this app, described for tooling."""
        return [definition.manifest() for definition in self._registry.all()]

    async def workflows(self) -> list[dict[str, Any]]:
        """Every workflow version any app has registered with this store (the store's
        catalog), described as :meth:`manifest` describes this app's: what a process
        without the code can start by name.

        Raises:
            StoreUnavailableError: the store stayed away longer than ``store_timeout``.
        """
        runtime = self._open()
        await runtime.catalog.flush()
        entries = await runtime.store.blocking(runtime.store.catalog.entries)
        return [entry.manifest() for entry in entries]
