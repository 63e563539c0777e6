"""The ``timers`` read model: when each run is next due (the worker arms them on open)."""

from __future__ import annotations

from datetime import datetime

from projections.runs import RunRow


def timer_due(row: RunRow) -> datetime | None:
    """The run's ``timers`` row: :func:`stemlog.model.schedule.next_due` of its state."""
    return row.due_at
