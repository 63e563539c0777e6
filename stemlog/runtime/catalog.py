"""Keeping the store's workflow catalog up to date with this app's registry.

Registration is a plain call (``app.register_flows``), so the catalog is
written in the background: once when the app opens and again whenever more
definitions are registered. A store that is away only delays it (it is tried
again, with backoff); nothing waits for it but :meth:`CatalogWriter.flush`.
"""

from __future__ import annotations

import logging
from typing import final

import anyio
from anyio.abc import TaskStatus

from stemlog.authoring.definition import WorkflowDefinition
from stemlog.authoring.registry import Registry
from stemlog.errors import StoreUnavailableError, StoreWriteError
from stemlog.store.catalog import CatalogEntry
from stemlog.store.events import RunStore

logger = logging.getLogger("stemlog.runtime")

_RETRY_SECONDS = 1.0
_MAX_RETRY_SECONDS = 60.0


def catalog_entry(definition: WorkflowDefinition) -> CatalogEntry:
    """What the catalog keeps of a definition."""
    steps = tuple(step.name for step in definition.steps)
    return CatalogEntry(
        definition.name, definition.version, definition.kind, definition.fingerprint, steps
    )


@final
class CatalogWriter:
    """Upserts the registry's definitions that the catalog does not have yet."""

    def __init__(self, store: RunStore, registry: Registry) -> None:
        self._store = store
        self._registry = registry
        self._recorded: set[CatalogEntry] = set()
        self._changed = anyio.Event()
        self._changed.set()  # whatever was registered before the app opened

    def changed(self) -> None:
        """More definitions were registered."""
        self._changed.set()

    async def flush(self) -> None:
        """Record what is not recorded yet, now.

        Raises:
            StoreUnavailableError, StoreWriteError: the store did not take it.
        """
        entries = [catalog_entry(d) for d in self._registry.all()]
        fresh = [entry for entry in entries if entry not in self._recorded]
        if fresh:
            await self._store.blocking(self._store.catalog.record, fresh)
            self._recorded.update(fresh)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled: record definitions as they are registered. A store that does
        not take the write (away, read-only) is tried again with backoff, logged once."""
        task_status.started()
        delay = _RETRY_SECONDS
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            try:
                await self.flush()
            except (StoreUnavailableError, StoreWriteError) as error:
                if delay == _RETRY_SECONDS:
                    logger.warning("could not record the registered workflows: %s", error)
                self._changed.set()
                await anyio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
            else:
                delay = _RETRY_SECONDS
