"""Retry and cancellation policies.

Retries: a step is retried when a :class:`RetryPolicy` applies to it (given
to the step, or as the default of its Flow/WorkflowScript); with none, an
exception fails the step at once, as in DBOS. A start whose worker died
(the log holds ``StepStarted`` with no outcome) always counts as an attempt,
and the step fails once ``max_attempts`` starts have been used, from the
applicable policy or, with none, from ``RetryPolicy()``; so a step that kills
its process fails the run instead of looping forever, while a run that meets
one crash simply resumes.

:class:`CancellationPolicy` is part of a run's state, so it is defined in
:mod:`stemlog.model.policy` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import final

from stemlog.clock import Duration, to_seconds
from stemlog.errors import InvalidPayloadError
from stemlog.model.policy import CancellationPolicy

__all__ = ["DEFAULT_CRASH_ATTEMPTS", "CancellationPolicy", "RetryPolicy"]


@final
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a failing step runs again.

    Attempt ``n`` (counting from 1) that fails is followed, after
    ``min(initial_delay * backoff ** (n - 1), max_delay)``, by attempt
    ``n + 1``, up to ``max_attempts`` attempts. Exceptions that are instances
    of a class in ``non_retryable`` fail the step at once. The wait is a
    durable timer: it survives a restart.

    Raises:
        InvalidPayloadError: a field that means nothing (``max_attempts < 1``,
            ``backoff < 1``, a delay that is not a duration).
    """

    max_attempts: int = 3
    initial_delay: Duration = 1.0
    backoff: float = 2.0
    max_delay: Duration = 60.0
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise InvalidPayloadError(
                "RetryPolicy.max_attempts", f"an int >= 1 is needed, got {attempts!r}"
            )
        backoff = self.backoff
        if isinstance(backoff, bool) or not isinstance(backoff, int | float):
            raise InvalidPayloadError("RetryPolicy.backoff", f"a number is needed, got {backoff!r}")
        if not 1.0 <= backoff <= _MAX_BACKOFF:
            raise InvalidPayloadError(
                "RetryPolicy.backoff", f"between 1.0 and {_MAX_BACKOFF} is needed, got {backoff!r}"
            )
        to_seconds(self.initial_delay, "RetryPolicy.initial_delay")
        to_seconds(self.max_delay, "RetryPolicy.max_delay")
        if not isinstance(self.non_retryable, tuple | list) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException)
            for kind in self.non_retryable
        ):
            raise InvalidPayloadError(
                "RetryPolicy.non_retryable", "a tuple of exception classes is needed"
            )
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after failed attempt ``attempt``."""
        ceiling = to_seconds(self.max_delay)
        try:
            seconds = to_seconds(self.initial_delay) * self.backoff ** max(attempt - 1, 0)
        except OverflowError:
            seconds = ceiling
        return timedelta(seconds=min(seconds, ceiling))

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` with ``error`` gets another attempt."""
        return attempt < self.max_attempts and not isinstance(error, self.non_retryable)


_MAX_BACKOFF = 1000.0

DEFAULT_CRASH_ATTEMPTS = RetryPolicy().max_attempts
"""Starts a step gets when no policy applies and its worker keeps dying."""
