"""What a store error means, and what the store tells the logs about its health.

A database that restarts or a file that is locked for a while is *away*:
calls wait for it (up to the app's ``store_timeout``) and background work
retries until it is back. A database that refuses a write — a full disk, a
read-only file or transaction — is *refusing*: the call that wrote fails at
once with :class:`~stemlog.errors.StoreWriteError`. Anything else is a bug or
a misuse and is raised as it is.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from enum import Enum

import psycopg
from eventsourcing.persistence import DatabaseError, InterfaceError, OperationalError

logger = logging.getLogger("stemlog.store")

_REFUSING_SQLITE = ("disk is full", "readonly", "read-only", "disk i/o error")
_REFUSING_SQLSTATES = frozenset({"53100", "25006", "42501"})
"""Disk full, read-only transaction, insufficient privilege."""
_UNREACHABLE_SQLITE = ("unable to open database", "not a database", "no such table")
_UNREACHABLE_POSTGRES = (
    "does not exist",  # the database, or the role
    "password authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
)


class Fault(Enum):
    """What a store error means for the call that met it."""

    AWAY = "away"
    """The store is unavailable for now: wait and try again."""
    REFUSING = "refusing"
    """The store refuses the write (full, read-only): fail the call at once."""


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(error: BaseException) -> Fault | None:
    """The fault ``error`` stands for (``None``: not a fault of the store)."""
    chain = _chain(error)
    for cause in chain:
        if isinstance(cause, psycopg.Error) and cause.sqlstate in _REFUSING_SQLSTATES:
            return Fault.REFUSING
        if isinstance(cause, sqlite3.Error):
            text = str(cause).lower()
            if any(marker in text for marker in _REFUSING_SQLITE):
                return Fault.REFUSING
    if any(isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError) for cause in chain):
        return Fault.AWAY
    if any(isinstance(cause, sqlite3.OperationalError) for cause in chain):
        return Fault.AWAY  # "database is locked" beyond the busy timeout, mostly
    if isinstance(error, OperationalError | InterfaceError):
        return Fault.AWAY
    if isinstance(error, DatabaseError) and "lock" in str(error).lower():
        return Fault.AWAY
    return None


def unreachable_at_open(error: BaseException) -> bool:
    """Whether an error while opening means the store cannot be used as named (a
    missing file or database, not a database at all), rather than being away."""
    for cause in _chain(error):
        text = str(cause).lower()
        if isinstance(cause, sqlite3.Error) and any(m in text for m in _UNREACHABLE_SQLITE):
            return True
        if isinstance(cause, psycopg.Error) and (
            cause.sqlstate in ("3D000", "28P01", "28000")
            or any(marker in text for marker in _UNREACHABLE_POSTGRES)
        ):
            return True  # no such database or role; authentication refused
    return False


class StoreHealth:
    """Logs once when the store goes away and once when it is back."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._away_since: float | None = None

    @property
    def away(self) -> bool:
        """Whether the last call met the store away."""
        return self._away_since is not None

    def lost(self, error: BaseException) -> None:
        """A call found the store away."""
        if self._away_since is None:
            self._away_since = time.monotonic()
            logger.warning("store %s is unavailable (%s); retrying", self._where,
                           _first_line(error), extra={"store": self._where})  # fmt: skip

    def reached(self) -> None:
        """A call succeeded."""
        if self._away_since is not None:
            seconds = time.monotonic() - self._away_since
            self._away_since = None
            logger.info("store %s is back after %.1f s", self._where, seconds,
                        extra={"store": self._where})  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


def describe(error: BaseException) -> str:
    """A one-line description of a store error, for messages."""
    return _first_line(error)
