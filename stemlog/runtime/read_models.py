"""The read models as an app exposes them: status, rebuild, audit copies, verify."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast, final

import anyio

from projections import audit
from projections.audit import Difference, RebuildResult
from projections.view import RunsView
from projections.views import view_class
from projections.views.schema import MODEL_VERSIONS
from stemlog.runtime.read_side import ReadSide
from stemlog.store.base import PartitionedLog
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url

Progress = Callable[[int, int], None]


@final
@dataclass(frozen=True, slots=True)
class StoreModels:
    """Opens a store and its read models again from the store's URL: what a rebuild's
    helper process folds with (see :mod:`projections.parallel`)."""

    url: str

    @contextlib.contextmanager
    def __call__(self) -> Iterator[tuple[PartitionedLog, RunsView]]:
        store = RunStore(parse_store_url(self.url))
        try:
            view = store.tracking_recorder(view_class(store.backend.name))
            yield store, cast(RunsView, view)
        finally:
            store.close()

    @classmethod
    def of(cls, store: RunStore) -> StoreModels | None:
        """The opener of this store's models, if another process can open them
        (an in-memory store cannot)."""
        return None if store.backend.name == "memory" else cls(store.backend.url)


@final
@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One read model: its version, the log position it reflects, and how far behind it is."""

    name: str
    version: int
    position: int
    lag: int


@final
class ReadModels:
    """``app.read_models``: operations on the ``runs``, ``watchers``, ``timers``,
    ``step_stats`` and ``workflow_stats`` models. Blocking work runs in a thread;
    rebuilds hold the projector's lock, so the app's own catch-ups wait for them."""

    def __init__(self, views: ReadSide) -> None:
        self._views = views

    async def status(self) -> list[ModelStatus]:
        """Name, version, position and lag of every model (they share their positions;
        with several partitions, the sums over them)."""
        position = head = 0
        for projector in self._views.projectors:
            position += await self._views.call(projector.view.position, projector.partition)
            head += await self._views.call(projector.head)
        return [
            ModelStatus(name, version, position, head - position)
            for name, version in MODEL_VERSIONS.items()
        ]

    async def rebuild(self, progress: Progress | None = None) -> RebuildResult:
        """Drop every model and replay the log from position 0."""
        views = self._views
        async with views.lock:
            helper = StoreModels.of(views.store)

            def rebuild() -> RebuildResult:
                return audit.rebuild(views.store, views.view, progress, helper=helper)

            return await anyio.to_thread.run_sync(rebuild)

    async def rebuild_as_of(
        self,
        into: Path,
        *,
        position: int | None = None,
        moment: datetime | None = None,
        progress: Progress | None = None,
    ) -> RebuildResult:
        """Write the models as they stood at ``position`` or ``moment`` into a new SQLite file.

        Raises:
            FileExistsError: ``into`` exists already.
        """
        log = self._views.store

        def build() -> RebuildResult:
            return audit.rebuild_as_of(
                log, into, position=position, moment=moment, progress=progress
            )

        return await anyio.to_thread.run_sync(build)

    async def verify(self, progress: Progress | None = None) -> list[Difference]:
        """Rebuild into a scratch store and compare every row with the live models."""
        views = self._views
        await views.catch_up()
        return await anyio.to_thread.run_sync(audit.verify, views.store, views.view, progress)
