"""The ``step_stats`` and ``workflow_stats`` read models.

``step_stats`` has one row per workflow and step: completions, failures (no
attempt left), retries (failed attempts followed by another), and the
distribution of step durations (last ``StepStarted`` to ``StepCompleted``).
``workflow_stats`` has one row per workflow and status: how many runs are in
that status now, and for ended statuses the distribution of run durations.

Durations are kept as a histogram with logarithmic buckets 5 % wide, so
percentiles are exact to within 5 % and a row stays small however many runs
it counts; the maximum is kept exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import final

from projections.rows import RunRow
from stemlog.model.facts import AnyFact, StepCompleted, StepFailed, StepStarted

_BASE = 1.05
_MIN_SECONDS = 1e-6


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration."""
    return math.ceil(math.log(max(seconds, _MIN_SECONDS)) / math.log(_BASE))


def bucket_upper(bucket: int) -> float:
    """The largest duration in a bucket (seconds)."""
    return float(_BASE**bucket)


def percentile(histogram: Mapping[str, int], fraction: float, maximum: float) -> float | None:
    """The duration below which ``fraction`` of the samples fall (``None`` without samples)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(math.ceil(fraction * total), 1)
    seen = 0
    for bucket in sorted(histogram, key=int):
        seen += histogram[bucket]
        if seen >= rank:
            return min(bucket_upper(int(bucket)), maximum)
    return maximum


class _Durations:
    """A histogram of durations and its exact maximum (mixed into both stats rows)."""

    histogram: dict[str, int]
    max_seconds: float

    @property
    def p50_seconds(self) -> float | None:
        return percentile(self.histogram, 0.50, self.max_seconds)

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.histogram, 0.95, self.max_seconds)

    def add_duration(self, seconds: float) -> None:
        key = str(bucket_of(seconds))
        self.histogram[key] = self.histogram.get(key, 0) + 1
        self.max_seconds = max(self.max_seconds, seconds)

    def merge_durations(self, other: _Durations) -> None:
        for bucket, count in other.histogram.items():
            self.histogram[bucket] = self.histogram.get(bucket, 0) + count
        self.max_seconds = max(self.max_seconds, other.max_seconds)


@final
@dataclass(slots=True)
class StepStats(_Durations):
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


@final
@dataclass(slots=True)
class WorkflowStats(_Durations):
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


@final
class StatsDelta:
    """What one page of facts adds to the stats models."""

    def __init__(self) -> None:
        self.steps: dict[tuple[str, str], StepStats] = {}
        self.workflows: dict[tuple[str, str], WorkflowStats] = {}

    def add_run(self, before: RunRow | None, after: RunRow, facts: Iterable[AnyFact]) -> None:
        """Account for one run's facts of the page, which took it from ``before`` to ``after``."""
        started_at = None if before is None else before.step_started_at
        for fact in facts:
            started_at = self._add_fact(after.workflow, fact, started_at)
        old = None if before is None else str(before.status)
        new = str(after.status)
        if old != new:
            if old is not None:
                self._workflow(after.workflow, old).count -= 1
            self._workflow(after.workflow, new).count += 1
            if after.ended_at is not None:
                seconds = (after.ended_at - after.created_at).total_seconds()
                self._workflow(after.workflow, new).add_duration(seconds)

    def _add_fact(
        self, workflow: str, fact: AnyFact, started_at: datetime | None
    ) -> datetime | None:
        match fact:
            case StepStarted():
                return fact.timestamp
            case StepCompleted(step=step):
                stats = self._step(workflow, step)
                stats.completions += 1
                if started_at is not None:
                    stats.add_duration((fact.timestamp - started_at).total_seconds())
                return None
            case StepFailed(step=step, retry_at=retry_at):
                stats = self._step(workflow, step)
                if retry_at is None:
                    stats.failures += 1
                else:
                    stats.retries += 1
                return None
        return started_at

    def _step(self, workflow: str, step: str) -> StepStats:
        key = (workflow, step)
        if key not in self.steps:
            self.steps[key] = StepStats(workflow, step)
        return self.steps[key]

    def _workflow(self, workflow: str, status: str) -> WorkflowStats:
        key = (workflow, status)
        if key not in self.workflows:
            self.workflows[key] = WorkflowStats(workflow, status)
        return self.workflows[key]
