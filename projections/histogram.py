"""Durations as a histogram with logarithmic buckets 5 % wide.

Percentiles are exact to within 5 % and a stats row stays small however many
samples it counts; the maximum is kept exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_BASE = 1.05
_MIN_SECONDS = 1e-6
_LOG_BASE = math.log(_BASE)
"""Computed once: the same float ``math.log(_BASE)`` gives every time."""


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration."""
    return math.ceil(math.log(max(seconds, _MIN_SECONDS)) / _LOG_BASE)


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


class Durations:
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

    def merge_durations(self, other: Durations) -> None:
        for bucket, count in other.histogram.items():
            self.histogram[bucket] = self.histogram.get(bucket, 0) + count
        self.max_seconds = max(self.max_seconds, other.max_seconds)
