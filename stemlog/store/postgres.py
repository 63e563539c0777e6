"""The scale-out store: PostgreSQL through eventsourcing's postgres module.

Any number of processes on any number of machines share one database. What
is specific to PostgreSQL lives here: the URL's settings, the advisory lock
that serialises table creation, and the LISTEN connection that wakes a
process when another one appends (the log's channel) or leaves a run to
claim (the ready channel). The recorder, with its one-round-trip append and
the run index through which worker processes share runs, is
:mod:`stemlog.store.postgres_recorder`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import final
from urllib.parse import unquote, urlsplit
from uuid import UUID

import anyio
import psycopg
from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from stemlog.errors import InvalidStoreURLError
from stemlog.store.base import (
    Hints,
    Leadership,
    NoGuard,
    StoreCore,
    StoredRow,
    WorkerGuard,
    rows_of_notifications,
)
from stemlog.store.postgres_recorder import READY_CHANNEL, StemlogPostgresRecorder

logger = logging.getLogger("stemlog.store")

_LISTEN_BACKOFF = 0.1
"""The first wait before making the LISTEN connection again (it doubles, up to 5 s)."""

FALLBACK_POLL_SECONDS = 1.0
"""How long to wait for a NOTIFY before reading the log anyway."""

_SCHEMA_LOCK_KEY = 0x5713_6C06  # "stemlog" schema creation


RECONNECT_SECONDS = 1.0
"""How long the connection pool keeps retrying one lost connection with backoff
before it gives that attempt up; the next call then connects afresh."""


class StemlogPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with :class:`StemlogPostgresRecorder`, and
    a pool that reconnects as soon as the server is back.

    psycopg_pool retries a lost connection with exponential backoff (1, 2, 4,
    8 s ...) for five minutes; after a long outage its next attempt may come
    seconds after the server is back, longer than a call's ``store_timeout``.
    Giving an attempt up after ``RECONNECT_SECONDS`` lets the next call grow
    the pool with a fresh attempt, made at once.
    """

    application_recorder_class = StemlogPostgresRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.datastore.pool.reconnect_timeout = RECONNECT_SECONDS


def _listen(
    log: Application[UUID],
    on_log: Callable[[], None],
    on_ready: Callable[[], None],
    stopped: Callable[[], bool],
) -> None:
    """In a worker thread: LISTEN on the log's and the ready channel, and call back.

    NOTIFY is only a hint (whoever is woken reads or claims from the
    database, so nothing is missed). The connection is its own (not the
    pool's), closed when the app stops. When the server goes away the
    connection is made again with backoff, and both callbacks are called once
    it is back, for what was appended meanwhile.
    """
    recorder = log.recorder
    assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
    kwargs = recorder.datastore.pool.kwargs
    assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
    settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
    log_channel = recorder.channel_name
    own = getattr(recorder, "origin", None)
    delay = _LISTEN_BACKOFF
    while not stopped():
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5, **settings) as connection:
                for channel in (log_channel, READY_CHANNEL):
                    connection.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                delay = _LISTEN_BACKOFF
                anyio.from_thread.run_sync(on_log)
                anyio.from_thread.run_sync(on_ready)
                while not stopped():
                    for notify in connection.notifies(timeout=0.25):
                        if notify.payload == own:
                            continue  # this process's own append: it knows already
                        hint = on_ready if notify.channel == READY_CHANNEL else on_log
                        anyio.from_thread.run_sync(hint)
        except psycopg.Error as error:
            if stopped():
                return
            logger.debug("LISTEN connection lost (%s); again in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except RuntimeError:
            return  # the event loop has ended: the app closed


@final
class ListenHints:
    """Hints from PostgreSQL's LISTEN/NOTIFY (one connection per process)."""

    def __init__(self, log: Application[UUID]) -> None:
        self._log = log

    async def run(self, on_log: Callable[[], None], on_ready: Callable[[], None]) -> None:
        stop = False
        try:
            await anyio.to_thread.run_sync(
                _listen, self._log, on_log, on_ready, lambda: stop, abandon_on_cancel=True
            )
        finally:
            stop = True  # the thread ends within a quarter of a second


@final
class AdvisoryLeadership:
    """The projector's lead as a session advisory lock, held on a connection of its
    own: when the process dies or the server drops the connection, the lock goes
    with it and another process takes the lead at its next try."""

    def __init__(self, log: Application[UUID]) -> None:
        recorder = log.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
        kwargs = recorder.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
        self._settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
        self._key = f"{recorder.datastore.schema}.stemlog_projector"
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def try_lead(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute("SELECT 1")  # still connected: still the leader
                return True
            except psycopg.Error:
                self.resign()
                return False
        try:
            connection = psycopg.connect(autocommit=True, connect_timeout=2, **self._settings)
        except psycopg.Error:
            return False
        try:
            row = connection.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self._key,)
            ).fetchone()
        except psycopg.Error:
            connection.close()
            return False
        if row is not None and row[0]:
            self._connection = connection
            return True
        connection.close()
        return False

    def resign(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


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
            # No ping before each use (a round trip per call): a call on a
            # connection a restart killed fails, the store drops the pool's dead
            # connections (heal) and tries again. A checkout waits this long for
            # a connection while the server is away, and the store's own retries
            # take over from there.
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
        """The recorder creates its tables (the log, the run index) and functions."""

    def heal(self, log: Application[UUID]) -> None:
        """Test the pool's idle connections and replace the dead ones (after a call
        failed on one: the server restarted, or dropped it)."""
        recorder = log.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
        with contextlib.suppress(psycopg.Error):
            recorder.datastore.pool.check()

    def worker_guard(self) -> WorkerGuard:
        return NoGuard()  # any number of worker processes share a database

    def hints(self, store: StoreCore) -> Hints | None:
        return ListenHints(store.log)

    def leadership(self, store: StoreCore) -> Leadership:
        return AdvisoryLeadership(store.log)

    @property
    def tail_interval(self) -> float | None:
        return FALLBACK_POLL_SECONDS
