"""Retry and cancellation policies.

Retries: a step is retried when a :class:`RetryPolicy` applies to it (given
to the step, or as the default of its Flow/WorkflowScript); with none, an
exception fails the step at once, as in DBOS. A start whose worker died
(the log holds ``StepStarted`` with no outcome) always counts as an attempt,
and the step fails once ``max_attempts`` starts have been used, from the
applicable policy or, with none, from ``RetryPolicy()``; so a step that kills
its process fails the run instead of looping forever, while a run that meets
one crash simply resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, final

from stemlog.clock import Duration, to_seconds
from stemlog.codec import JSONValue


@final
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a failing step runs again.

    Attempt ``n`` (counting from 1) that fails is followed, after
    ``min(initial_delay * backoff ** (n - 1), max_delay)``, by attempt
    ``n + 1``, up to ``max_attempts`` attempts. Exceptions that are instances
    of a class in ``non_retryable`` fail the step at once. The wait is a
    durable timer: it survives a restart.
    """

    max_attempts: int = 3
    initial_delay: Duration = 1.0
    backoff: float = 2.0
    max_delay: Duration = 60.0
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.backoff < 1.0:
            raise ValueError(f"backoff must be >= 1.0, got {self.backoff!r}")
        to_seconds(self.initial_delay)
        to_seconds(self.max_delay)
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after failed attempt ``attempt``."""
        seconds = to_seconds(self.initial_delay) * self.backoff ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, to_seconds(self.max_delay)))

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` with ``error`` gets another attempt."""
        return attempt < self.max_attempts and not isinstance(error, self.non_retryable)


DEFAULT_CRASH_ATTEMPTS = RetryPolicy().max_attempts
"""Starts a step gets when no policy applies and its worker keeps dying."""


@final
@dataclass(frozen=True, slots=True)
class CancellationPolicy:
    """Limits after which the worker cancels a run by itself.

    ``max_run_duration`` counts from the run's start; ``max_suspend_duration``
    from the moment it last suspended. The run ends ``cancelled`` with the
    reason ``"max_run_duration"`` or ``"max_suspend_duration"``.
    """

    max_run_duration: Duration | None = None
    max_suspend_duration: Duration | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """The form stored in ``RunStarted.policy`` (seconds)."""
        return {
            "max_run_duration": _seconds_or_none(self.max_run_duration),
            "max_suspend_duration": _seconds_or_none(self.max_suspend_duration),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CancellationPolicy | None:
        """The policy stored in a ``RunStarted`` fact, if any."""
        if not data:
            return None
        return cls(data.get("max_run_duration"), data.get("max_suspend_duration"))


def _seconds_or_none(duration: Duration | None) -> float | None:
    return None if duration is None else to_seconds(duration)
