"""The ``step_stats`` read model: per workflow and step, completions, failures,
retries and the distribution of step durations.

A failure is a ``StepFailed`` with no attempt left, a retry one followed by
another attempt; a duration runs from the step's last ``StepStarted`` to its
``StepCompleted`` (the state's ``step_started_at`` before the completion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import final

from projections.histogram import Durations
from stemlog.model.facts import AnyFact, StepCompleted, StepFailed


@final
@dataclass(slots=True)
class StepStats(Durations):
    """One ``step_stats`` row."""

    workflow: str
    step: str
    completions: int = 0
    failures: int = 0
    retries: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    max_seconds: float = 0.0

    def merge(self, other: StepStats) -> None:
        """Add the counts of ``other`` (same workflow and step)."""
        self.completions += other.completions
        self.failures += other.failures
        self.retries += other.retries
        self.merge_durations(other)

    def account(self, fact: AnyFact, step_started_at: datetime | None) -> None:
        """Count one step fact of this step (``step_started_at``: the state's, before it)."""
        match fact:
            case StepCompleted():
                self.completions += 1
                if step_started_at is not None:
                    self.add_duration((fact.timestamp - step_started_at).total_seconds())
            case StepFailed(retry_at=None):
                self.failures += 1
            case StepFailed():
                self.retries += 1
