"""Control flow that unwinds user code: internal, never seen by a caller.

These are ``BaseException`` subclasses so that a handler's ``except
Exception`` cannot swallow them. When user code runs them through its own
task groups they arrive wrapped in exception groups;
:func:`stemlog.execution.outcomes.interrupt_of` unwraps them.
"""

from __future__ import annotations


class RunInterrupt(BaseException):
    """Base of the internal signals that unwind a handler or a script's ``run``."""


class SuspendStep(RunInterrupt):
    """Unwinds an async handler at ``await ctx.wait_for_event``/``sleep_for``."""
