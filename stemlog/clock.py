"""Clocks and durations.

The engine reads time only through a :class:`Clock`, so tests can inject a
:class:`ManualClock` and move time forward without sleeping.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeAlias, final

import anyio

from stemlog.errors import InvalidPayloadError

Duration: TypeAlias = float | int | timedelta
"""Float seconds or a ``timedelta``."""


MAX_DURATION = 100 * 365.25 * 86_400.0
"""The longest duration stemlog keeps (100 years): anything longer would overflow
the datetimes it is added to, or is a mistake."""


def to_seconds(duration: Duration, what: str = "a duration", *, positive: bool = False) -> float:
    """Validate a duration and return it as float seconds.

    The one place durations are checked: ``sleep``, ``sleep_for``,
    ``timeout=``, ``ttl``, ``lease``, retry delays and policy limits all come
    through here before anything is written.

    Args:
        duration: float seconds or a ``timedelta``.
        what: how the value is named in the error ("ttl", "timeout", ...).
        positive: zero is refused too (a lease, a store timeout).

    Raises:
        InvalidPayloadError: not a number or a ``timedelta``; NaN or an
            infinity; negative (or zero with ``positive``); over
            :data:`MAX_DURATION`.
    """
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, int | float) and not isinstance(duration, bool):
        try:
            seconds = float(duration)
        except OverflowError:  # an int beyond any float
            seconds = math.inf
        if not math.isfinite(seconds):
            needed = f"a finite number of seconds is needed, got {duration!r}"
            raise InvalidPayloadError(what, needed)
    else:
        raise InvalidPayloadError(
            what, f"float seconds or a timedelta are needed, got {duration!r}"
        )
    if seconds < 0 or (positive and seconds == 0):
        bound = "greater than zero" if positive else "zero or more"
        raise InvalidPayloadError(what, f"a duration of {bound} seconds is needed, got {seconds}")
    if seconds > MAX_DURATION:
        raise InvalidPayloadError(
            what, f"at most {MAX_DURATION:,.0f} seconds (100 years), got {seconds:,.0f}"
        )
    return seconds


def optional_seconds(duration: Duration | None, what: str) -> float | None:
    """:func:`to_seconds`, with ``None`` passed through (no limit, no timeout)."""
    return None if duration is None else to_seconds(duration, what)


def require_aware(moment: datetime, what: str) -> datetime:
    """Return ``moment`` in UTC.

    Raises:
        InvalidPayloadError: ``moment`` is not a datetime, or a naive one.
    """
    if not isinstance(moment, datetime):
        raise InvalidPayloadError(what, f"an aware datetime is needed, got {moment!r}")
    if moment.tzinfo is None:
        raise InvalidPayloadError(what, "an aware datetime is needed, got a naive one")
    return moment.astimezone(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """An aware time as integer microseconds since the epoch (exact, index-friendly)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC time."""
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


class Clock(Protocol):
    """Where the engine gets the current time and waits for a moment."""

    def now(self) -> datetime:
        """The current time, an aware UTC datetime."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once ``now() >= moment`` (callers cancel it to stop waiting)."""
        ...


@final
class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        delay = (moment - self.now()).total_seconds()
        if delay > 0:
            await anyio.sleep(delay)


@final
class ManualClock:
    """A clock that moves only when told to, for tests.

    ``advance`` wakes every ``sleep_until`` whose moment has come. It must be
    called from the event loop that runs the app.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = require_aware(start, "start") if start else datetime(2030, 1, 1, tzinfo=UTC)
        self._changed: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def advance(self, duration: Duration) -> None:
        """Move the clock forward and wake sleepers that are due."""
        self._now += timedelta(seconds=to_seconds(duration, "ManualClock.advance"))
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def sleep_until(self, moment: datetime) -> None:
        while self._now < moment:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
