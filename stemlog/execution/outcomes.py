"""How a step's handler is called and how its outcome unwinds the executor."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any

import anyio
from anyio import CapacityLimiter

from stemlog.authoring.context import StepContext
from stemlog.authoring.definitions import StepHandler
from stemlog.model.fold import StepKey
from stemlog.model.records import ErrorInfo


class Suspended(BaseException):
    """The run recorded a wait; unwinds a script's ``run`` (internal)."""


class RetryScheduled(BaseException):
    """A failed step waits for its next attempt; unwinds a script's ``run`` (internal)."""


class StepError(Exception):
    """A step failed for good and the failure is applied (internal)."""

    def __init__(self, key: StepKey, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.key = key
        self.info = info


def error_info(error: BaseException) -> ErrorInfo:
    """The recorded form of an exception: qualified type, message, traceback."""
    kind = type(error)
    builtin = kind.__module__ == "builtins"
    name = kind.__qualname__ if builtin else f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(error))
    return ErrorInfo(name, str(error), text)


def _is_async(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - callable objects
    )


async def call_handler(handler: StepHandler, ctx: StepContext, limiter: CapacityLimiter) -> Any:
    """Await an async handler; run a sync one in a worker thread."""
    if _is_async(handler):
        return await handler(ctx)
    result = await anyio.to_thread.run_sync(handler, ctx, limiter=limiter)
    if inspect.isawaitable(result):
        result = await result
    return result
