"""The ``watchers`` read model: topic → the runs suspended on it (``emit`` reads it)."""

from __future__ import annotations

from projections.runs import RunRow


def watcher_topic(row: RunRow) -> str | None:
    """The topic the run waits on, if it is suspended on one (its ``watchers`` row)."""
    return row.wait_topic
