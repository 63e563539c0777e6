"""Work the runtime starts after it opened, run in the app's one task group.

Jobs are handed over through a stream, so whoever submits needs no handle on
the task group: a job submitted while the app closes is dropped, never
started in a group that is gone. A job that fails is logged and the app
goes on.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, final

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from stemlog.errors import StoreUnavailableError, StoreWriteError

Job = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]

logger = logging.getLogger("stemlog.runtime")

_RETRY = 1.0
"""The first wait before a job that met an unavailable store runs again (it doubles)."""
_RETRY_MAX = 30.0


@final
class Background:
    """Runs submitted jobs concurrently until the app closes."""

    def __init__(self) -> None:
        self._send: MemoryObjectSendStream[Job]
        self._receive: MemoryObjectReceiveStream[Job]
        self._send, self._receive = anyio.create_memory_object_stream[Job](math.inf)

    def submit(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``function(*args)`` soon (dropped once the app is closing)."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait((function, args))

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start each submitted job in a task group of its own, until cancelled."""
        with self._send, self._receive:
            async with anyio.create_task_group() as jobs:
                task_status.started()
                async for function, args in self._receive:
                    jobs.start_soon(_guarded, function, args)


async def _guarded(function: Callable[..., Awaitable[None]], args: tuple[Any, ...]) -> None:
    """Run a job; while the store is away it is tried again (the store logs that)."""
    delay = _RETRY
    while True:
        try:
            await function(*args)
            return
        except (StoreUnavailableError, StoreWriteError):
            await anyio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)
        except Exception:
            name = getattr(function, "__qualname__", function)
            logger.exception("a background job failed: %s", name)
            return
