"""The cancellation policy a run carries in its ``RunStarted`` fact and its state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from stemlog.clock import Duration, optional_seconds, to_seconds
from stemlog.codec import JSONObject, JSONValue


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

    def __post_init__(self) -> None:
        """Refuse limits that mean nothing (NaN, infinities, negatives, over 100 years).

        Raises:
            InvalidPayloadError: such a limit.
        """
        optional_seconds(self.max_run_duration, "CancellationPolicy.max_run_duration")
        optional_seconds(self.max_suspend_duration, "CancellationPolicy.max_suspend_duration")

    @property
    def max_run_seconds(self) -> float | None:
        """``max_run_duration`` in seconds."""
        return _seconds_or_none(self.max_run_duration)

    @property
    def max_suspend_seconds(self) -> float | None:
        """``max_suspend_duration`` in seconds."""
        return _seconds_or_none(self.max_suspend_duration)

    def to_json(self) -> JSONObject:
        """The form stored in ``RunStarted.policy`` (seconds)."""
        return {
            "max_run_duration": self.max_run_seconds,
            "max_suspend_duration": self.max_suspend_seconds,
        }

    @classmethod
    def from_json(cls, data: JSONValue) -> CancellationPolicy | None:
        """The policy stored in a ``RunStarted`` fact, if any.

        Raises:
            InvalidPayloadError: the stored limits mean nothing (the run that
                carries them is set aside as blocked).
        """
        if not isinstance(data, dict) or not data:
            return None
        return cls(_number(data.get("max_run_duration")), _number(data.get("max_suspend_duration")))


def _number(value: JSONValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _seconds_or_none(duration: Duration | None) -> float | None:
    return None if duration is None else to_seconds(duration, "a cancellation limit")
