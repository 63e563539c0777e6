"""Helpers for testing code that uses stemlog.

:class:`ManualClock` moves only when told to: pass it to
``WorkflowApp.open(url, clock=clock)`` and ``clock.advance(60)`` fires the
timers, sleeps, deadlines and retries due by then, without waiting.
"""

from __future__ import annotations

from stemlog.clock import ManualClock

__all__ = ["ManualClock"]
