"""The scale-out store: PostgreSQL through eventsourcing's postgres module.

Any number of processes on any number of machines share one database. What
is specific to PostgreSQL lives here: the URL's settings, the advisory lock
that serialises table creation, the LISTEN connection that wakes a process
when another one appends, and the ``stemlog_leases`` table through which
worker processes share runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, final
from urllib.parse import unquote, urlsplit
from uuid import UUID

import anyio
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from psycopg.sql import SQL, Composed, Identifier

from stemlog.clock import Clock, from_micros, to_micros
from stemlog.errors import InvalidStoreURLError
from stemlog.store.base import (
    AppendListener,
    Leases,
    LogTail,
    NoGuard,
    StoreCore,
    StoredRow,
    WorkerGuard,
    rows_of_notifications,
)
from stemlog.store.tail import PollingTail

logger = logging.getLogger("stemlog.store")

_LISTEN_BACKOFF = 0.1
"""The first wait before making the LISTEN connection again (it doubles, up to 5 s)."""

FALLBACK_POLL_SECONDS = 1.0
"""How long to wait for a NOTIFY before reading the log anyway."""

_SCHEMA_LOCK_KEY = 0x5713_6C06  # "stemlog" schema creation

_LEASES_DDL = (
    "CREATE TABLE IF NOT EXISTS {leases} (run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "expires_at BIGINT NOT NULL)"
)
_CLAIM = (
    "WITH previous AS (SELECT owner, expires_at FROM {leases} WHERE run_id = %s) "
    "INSERT INTO {leases} AS l (run_id, owner, expires_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE l.owner = excluded.owner OR l.expires_at < %s "
    "RETURNING (SELECT owner FROM previous) AS previous_owner, "
    "(SELECT expires_at FROM previous) AS previous_expiry"
)
"""One statement: take the run if nobody holds it, this worker does, or the holder's
lease ran out; returns the previous holder (to tell a takeover)."""


class StemlogPostgresRecorder(PostgresApplicationRecorder):
    """eventsourcing's recorder, each call made once.

    eventsourcing retries a failed call ten times inside it (two seconds and
    more while the server is away); the store retries on its own, with
    backoff, up to the app's ``store_timeout``, so a call made while the
    server is down fails when that timeout says, not tens of seconds later.
    """

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        return _once(PostgresApplicationRecorder.insert_events)(self, stored_events, **kwargs)

    def select_events(self, originator_id: Any, **kwargs: Any) -> Any:
        return _once(PostgresApplicationRecorder.select_events)(self, originator_id, **kwargs)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        method = _once(PostgresApplicationRecorder.select_notifications)
        notifications: Sequence[Notification] = method(
            self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )
        return notifications

    def max_notification_id(self) -> Any:
        return _once(PostgresApplicationRecorder.max_notification_id)(self)


def _once(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method without eventsourcing's retry decorator (``functools.wraps`` keeps it)."""
    return getattr(method, "__wrapped__", method)


class StemlogPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with :class:`StemlogPostgresRecorder`."""

    application_recorder_class = StemlogPostgresRecorder


def _datastore(log: Application[UUID]) -> PostgresDatastore:
    recorder = log.recorder
    assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
    return recorder.datastore


def _leases_table(datastore: PostgresDatastore) -> Identifier:
    return Identifier(datastore.schema, "stemlog_leases") if datastore.schema else Identifier(
        "stemlog_leases"
    )


@final
class TableLeases:
    """Claims as rows of ``stemlog_leases``, taken with one atomic upsert each, so
    any number of worker processes share runs."""

    def __init__(self, owner: str, duration: float, clock: Clock, store: StoreCore) -> None:
        self.owner = owner
        self.duration = timedelta(seconds=duration)
        self._clock = clock
        self._store = store
        self._datastore = _datastore(store.log)
        self._table = _leases_table(self._datastore)
        self._held: set[str] = set()
        self.taken_over: dict[str, tuple[str, datetime]] = {}

    def _sql(self, template: str) -> Composed:
        return SQL(template).format(leases=self._table)

    def _execute(self, template: str, params: tuple[Any, ...]) -> list[Any]:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._sql(template), params)
            return list(cursor.fetchall()) if cursor.description else []

    async def claim(self, run_id: str) -> bool:
        now = self._clock.now()
        params = (run_id, run_id, self.owner, to_micros(now + self.duration), to_micros(now))
        rows = await self._store.blocking(self._execute, _CLAIM, params)
        if not rows:
            return False
        self._held.add(run_id)
        previous, expiry = rows[0]["previous_owner"], rows[0]["previous_expiry"]
        if previous is not None and previous != self.owner:
            self.taken_over[run_id] = (str(previous), from_micros(int(expiry)))
        return True

    async def release(self, run_id: str) -> None:
        self._held.discard(run_id)
        sql = "DELETE FROM {leases} WHERE run_id = %s AND owner = %s"
        await self._store.blocking(self._execute, sql, (run_id, self.owner))

    async def renew(self) -> None:
        if not self._held:
            return
        until = to_micros(self._clock.now() + self.duration)
        sql = "UPDATE {leases} SET expires_at = %s WHERE owner = %s"
        await self._store.blocking(self._execute, sql, (until, self.owner))

    async def holder(self, run_id: str) -> tuple[str, datetime] | None:
        return (await self.holders([run_id])).get(run_id)

    async def holders(self, run_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        if not run_ids:
            return {}
        sql = "SELECT run_id, owner, expires_at FROM {leases} WHERE run_id = ANY(%s) " \
              "AND expires_at >= %s"  # fmt: skip
        params = (list(run_ids), to_micros(self._clock.now()))
        rows = await self._store.blocking(self._execute, sql, params)
        return {str(r["run_id"]): (str(r["owner"]), from_micros(r["expires_at"])) for r in rows}


def _listen(log: Application[UUID], wake: Callable[[], None], stopped: Callable[[], bool]) -> None:
    """In a worker thread: LISTEN on the log's channel and wake the tail.

    NOTIFY is only a wake-up (eventsourcing sends one per append); the tail
    then reads the log after its position, so nothing is missed. The
    connection is its own (not the pool's), closed when the app stops. When
    the server goes away the connection is made again with backoff, and the
    tail is woken once it is back, to read what was appended meanwhile.
    """
    recorder = log.recorder
    assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
    kwargs = recorder.datastore.pool.kwargs
    assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
    settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
    listen = SQL("LISTEN {0}").format(Identifier(recorder.channel_name))
    delay = _LISTEN_BACKOFF
    while not stopped():
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5, **settings) as connection:
                connection.execute(listen)
                delay = _LISTEN_BACKOFF
                anyio.from_thread.run_sync(wake)
                while not stopped():
                    for _ in connection.notifies(timeout=0.25, stop_after=1):
                        anyio.from_thread.run_sync(wake)
        except psycopg.Error as error:
            if stopped():
                return
            logger.debug("LISTEN connection lost (%s); again in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except RuntimeError:
            return  # the event loop has ended: the app closed


async def _listen_until_cancelled(log: Application[UUID], wake: Callable[[], None]) -> None:
    stop = False
    try:
        await anyio.to_thread.run_sync(_listen, log, wake, lambda: stop, abandon_on_cancel=True)
    finally:
        stop = True  # the thread ends within a quarter of a second


@final
@dataclass(frozen=True, slots=True)
class PostgresBackend:
    """``postgresql://user:password@host:port/dbname[?schema=S&pool_size=N&...]``."""

    url: str
    env: dict[str, str]
    name: str = "postgres"
    inline_calls: bool = False
    commits_inline_when_alone: bool = False

    @property
    def where(self) -> str:
        env = self.env
        schema = env.get("POSTGRES_SCHEMA")
        at = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
        return f"postgresql://{env['POSTGRES_USER']}@{at}" + (f"?schema={schema}" if schema else "")

    @classmethod
    def from_url(cls, url: str, query: dict[str, str]) -> PostgresBackend:
        """Parse a ``postgresql://`` URL.

        Raises:
            InvalidStoreURLError: no database named.
        """
        split = urlsplit(url)
        dbname = split.path.lstrip("/")
        if not dbname:
            raise InvalidStoreURLError(url, "postgresql URLs name a database: postgresql://host/db")
        env = {
            "PERSISTENCE_MODULE": f"{__name__}:StemlogPostgresFactory",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": split.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(split.port or 5432),
            "POSTGRES_USER": unquote(split.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(split.password or ""),
            "POSTGRES_POOL_SIZE": query.get("pool_size", "4"),
            "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", "8"),
            "POSTGRES_LOCK_TIMEOUT": query.get("lock_timeout", "10"),
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            # A pooled connection is checked before use, so one a server restart
            # killed is replaced instead of failing a call; a checkout waits this
            # long for a connection while the server is away (eventsourcing tries
            # ten times), and the store's own retries take over from there.
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", "2"),
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"]
        return cls(url, env)

    def exists(self) -> bool:
        return True  # a missing database fails the open with its own message

    def read_rows(
        self, log: Application[UUID], start: int, limit: int, stop: int | None
    ) -> list[StoredRow]:
        return rows_of_notifications(log, start, limit, stop)

    def schema_lock(self) -> AbstractContextManager[None]:
        """Serialise table creation between processes opening one database.

        eventsourcing creates its tables, types and functions on open;
        processes doing so at the same moment fail with "tuple concurrently
        updated". A session advisory lock makes them take turns.
        """
        return self._advisory_lock()

    @contextlib.contextmanager
    def _advisory_lock(self) -> Iterator[None]:
        env = self.env
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
        ) as connection:  # fmt: skip
            connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))

    def prepare(self, log: Application[UUID]) -> None:
        """Create the leases table."""
        datastore = _datastore(log)
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL(_LEASES_DDL).format(leases=_leases_table(datastore)))

    def worker_guard(self) -> WorkerGuard:
        return NoGuard()  # any number of worker processes share a database

    def leases(self, owner: str, duration: float, clock: Clock, store: StoreCore) -> Leases:
        return TableLeases(owner, duration, clock, store)

    def lease_reader(self, clock: Clock, store: StoreCore) -> Leases | None:
        return TableLeases("reader", 30.0, clock, store)

    def tail(self, store: StoreCore, listener: AppendListener) -> LogTail | None:
        async def waker(wake: Callable[[], None]) -> None:
            await _listen_until_cancelled(store.log, wake)

        return PollingTail(store, listener, FALLBACK_POLL_SECONDS, waker)
