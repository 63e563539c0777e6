"""How a step's handler is called, and how its outcome unwinds the executor.

A handler or a script's ``run`` may run its own anyio task groups, so the
internal signals (:class:`~stemlog.authoring.interrupts.RunInterrupt`) can
reach the executor wrapped in exception groups. :func:`interrupt_of` finds
them there; cancellation is never taken for one of them and never swallowed.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any

import anyio
from anyio import CapacityLimiter

from stemlog.authoring.context import StepContext, StepHandler
from stemlog.authoring.interrupts import RunInterrupt, SuspendStep
from stemlog.model.records import ErrorInfo
from stemlog.model.state import StepKey

__all__ = [
    "RetryScheduled",
    "StepError",
    "StopDrive",
    "SuspendStep",
    "Suspended",
    "call_handler",
    "error_info",
    "interrupt_of",
    "is_cancellation",
]  # fmt: skip


class Suspended(RunInterrupt):
    """The run recorded a wait (flushed); unwinds a script's ``run``."""


class RetryScheduled(RunInterrupt):
    """A failed step waits for its next attempt (flushed); unwinds a script's ``run``."""


class StopDrive(RunInterrupt):
    """The run moved on under the executor (ended, cancelled, or taken over)."""


class StepError(Exception):
    """A step failed for good and the failure is applied (internal)."""

    def __init__(self, key: StepKey, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.key = key
        self.info = info


_PRECEDENCE: tuple[type[RunInterrupt], ...] = (StopDrive, Suspended, RetryScheduled, SuspendStep)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def is_cancellation(error: BaseException) -> bool:
    """Whether ``error`` is (or holds) the event loop's cancellation, which must propagate."""
    cancelled = anyio.get_cancelled_exc_class()
    return any(isinstance(leaf, cancelled) for leaf in _leaves(error))


def interrupt_of(error: BaseException) -> RunInterrupt | None:
    """The internal signal ``error`` stands for, or ``None`` if it is a real error.

    A group counts as a signal when every exception in it is one (a handler's
    task group whose tasks suspended); a :class:`StopDrive` anywhere wins,
    since the run has moved on whatever else happened.
    """
    leaves = _leaves(error)
    signals = [leaf for leaf in leaves if isinstance(leaf, RunInterrupt)]
    stop = next((leaf for leaf in signals if isinstance(leaf, StopDrive)), None)
    if stop is not None:
        return stop
    if not signals or len(signals) != len(leaves):
        return None
    return min(signals, key=_rank)


def _rank(signal: RunInterrupt) -> int:
    return next((i for i, kind in enumerate(_PRECEDENCE) if isinstance(signal, kind)), 99)


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
