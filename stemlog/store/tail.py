"""Following the facts other processes append.

Facts this process commits reach its dispatcher at once (the store's commit
listener); a tail reads the rest of the log for the others: a run started,
emitted to or cancelled from another process (a CLI, a web server, another
worker). It reads from the head at start, so nothing before is delivered,
and skips the positions this process committed itself. A backend decides how
it is woken: PostgreSQL by LISTEN/NOTIFY (:mod:`stemlog.store.postgres`),
SQLite by polling.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, final

import anyio
from anyio.abc import TaskStatus

from stemlog.errors import StoreUnavailableError, StoreWriteError
from stemlog.store.base import Appended, AppendListener, StoreCore

PAGE = 1000
"""Facts read per round trip."""

Waker = Callable[[Callable[[], None]], Coroutine[Any, Any, None]]
"""Runs until cancelled, calling its argument whenever the log may have moved."""


@final
class PollingTail:
    """Reads the log after its position every ``interval`` seconds, or when woken."""

    def __init__(
        self,
        store: StoreCore,
        listener: AppendListener,
        interval: float,
        waker: Waker | None = None,
    ) -> None:
        self._store = store
        self._listener = listener
        self._interval = interval
        self._waker = waker
        self._position = 0
        self._woken = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the log from its head now until cancelled."""
        self._store.track_local()
        self._position = await self._store.blocking(self._store.head)  # fails the open if away
        async with anyio.create_task_group() as group:
            if self._waker is not None:
                group.start_soon(self._waker, self._wake)
            task_status.started()
            while True:
                with anyio.move_on_after(self._interval):
                    await self._woken.wait()
                self._woken = anyio.Event()
                await self._catch_up()

    def _wake(self) -> None:
        self._woken.set()

    async def _catch_up(self) -> None:
        """Read and deliver what follows the position; while the store is away, keep
        the position and try again at the next round (the store logs it)."""
        try:
            await self._read_on()
        except (StoreUnavailableError, StoreWriteError):
            return

    async def _read_on(self) -> None:
        store = self._store
        while True:
            page = await store.blocking(store.read, self._position + 1, PAGE)
            if not page:
                return
            self._position = max(self._position, page[-1].position)
            remote = [item for item in page if not store.take_local(item.position)]
            store.forget_local_through(self._position)
            if remote:
                self._listener(Appended(remote, local=False))
