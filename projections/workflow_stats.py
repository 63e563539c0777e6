"""The ``workflow_stats`` read model: per workflow and status, how many runs are in
that status now, and for ended statuses the distribution of run durations.

Counts move with each status change a fact causes, one fact at a time, so
however the log is cut into pages the rows come out the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import final

from projections.histogram import Durations


@final
@dataclass(slots=True)
class WorkflowStats(Durations):
    """One ``workflow_stats`` row: runs of ``workflow`` now in ``status``."""

    workflow: str
    status: str
    count: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    max_seconds: float = 0.0

    def merge(self, other: WorkflowStats) -> None:
        """Add the counts of ``other`` (same workflow and status)."""
        self.count += other.count
        self.merge_durations(other)

    @property
    def empty(self) -> bool:
        """No run is in this status and none ever ended in it: the row is not kept."""
        return self.count == 0 and not self.histogram
