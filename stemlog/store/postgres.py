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
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, final
from urllib.parse import unquote, urlsplit
from uuid import UUID

import anyio
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import BaseInfrastructureFactory
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from stemlog.errors import InvalidStoreURLError
from stemlog.store.base import (
    Hints,
    Leadership,
    StoreCore,
    StoredRow,
    rows_of_notifications,
)
from stemlog.store.catalog import CATALOG_TABLE, Catalog, SQLCatalog
from stemlog.store.postgres_recorder import (
    READY_CHANNEL,
    OnceRecorder,
    StemlogPostgresRecorder,
)

logger = logging.getLogger("stemlog.store")

_LISTEN_BACKOFF = 0.1
"""The first wait before making the LISTEN connection again (it doubles, up to 5 s)."""

_LISTEN_TICK = 0.05
"""Seconds between looks at which channels are wanted (no round trip: a wait on the
connection's socket)."""
FALLBACK_POLL_SECONDS = 1.0
"""How long to wait for a NOTIFY before reading the log anyway."""

_SCHEMA_LOCK_KEY = 0x5713_6C06  # "stemlog" schema creation


RECONNECT_SECONDS = 1.0
"""How long the connection pool keeps retrying one lost connection with backoff
before it gives that attempt up; the next call then connects afresh."""


_SHARED_DATASTORES: dict[str, PostgresDatastore] = {}
"""Partition 0's datastore while the store builds its other partitions' applications."""
_SHARED_KEY = "STEMLOG_SHARED_DATASTORE"

MAX_PARTITIONS = 64

_PARTITIONS_DDL = "CREATE TABLE IF NOT EXISTS {table} (partitions integer NOT NULL)"


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


class PartitionFactory(PostgresFactory):
    """The factory of a partition after the first: its own tables (named after the
    partition's application), partition 0's datastore — one pool per process, however
    many partitions."""

    application_recorder_class = OnceRecorder

    def __init__(self, env: Environment) -> None:
        BaseInfrastructureFactory.__init__(self, env)
        self.datastore = _SHARED_DATASTORES[env[_SHARED_KEY]]

    def close(self) -> None:
        """Partition 0's factory closes the shared datastore."""


def _datastore(log: Application[UUID]) -> PostgresDatastore:
    recorder = log.recorder
    assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
    return recorder.datastore


@final
@dataclass(frozen=True, slots=True)
class _Listening:
    """What one process listens for: the channels, and when it wants each kind."""

    log_channels: tuple[str, ...]
    own: str
    on_log: Callable[[], None]
    on_ready: Callable[[], None]
    wants_log: Callable[[], bool]
    wants_ready: bool

    def wanted(self) -> set[str]:
        """The channels to listen on now."""
        channels = set(self.log_channels) if self.wants_log() else set()
        if self.wants_ready:
            channels.add(READY_CHANNEL)
        return channels


def _listen(
    settings: dict[str, Any], listening: _Listening, stopped: Callable[[], bool]
) -> None:
    """In a worker thread: LISTEN on the channels wanted now (a partition's log
    channel while somebody here follows the log, the ready channel when the app
    has a worker), and call back.

    Each listening backend wakes up (a transaction, CPU on the server) for each
    NOTIFY on its channels, its own process's included, so channels nobody here
    wants are not listened on: they are LISTENed to and UNLISTENed as the wish
    changes (looked at every ``_LISTEN_TICK`` seconds; when log hints start, the
    log is read once for what came before). NOTIFY is only a hint (whoever is
    woken reads or claims from the database, so nothing is missed); hints whose
    payload is this process's ``own`` name are its own appends', which it knows
    of already. The connection is its own (not the pool's), closed when the app
    stops. When the server goes away the connection is made again with backoff,
    and both callbacks are called once it is back, for what was appended
    meanwhile.
    """
    delay = _LISTEN_BACKOFF
    while not stopped():
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5, **settings) as connection:
                heard: set[str] = set()
                delay = _LISTEN_BACKOFF
                anyio.from_thread.run_sync(listening.on_log)
                anyio.from_thread.run_sync(listening.on_ready)
                while not stopped():
                    heard = _relisten(connection, heard, listening)
                    for notify in connection.notifies(timeout=_LISTEN_TICK):
                        if notify.payload == listening.own:
                            continue  # this process's own append: it knows already
                        ready = notify.channel == READY_CHANNEL
                        anyio.from_thread.run_sync(
                            listening.on_ready if ready else listening.on_log
                        )
        except psycopg.Error as error:
            if stopped():
                return
            logger.debug("LISTEN connection lost (%s); again in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except RuntimeError:
            return  # the event loop has ended: the app closed


def _relisten(connection: psycopg.Connection[Any], heard: set[str],
              listening: _Listening) -> set[str]:  # fmt: skip
    """LISTEN to the channels newly wanted, UNLISTEN the others; the channels heard now.
    When log channels are newly heard, read the log once (what came before)."""
    wanted = listening.wanted()
    if wanted == heard:
        return heard
    for channel in sorted(wanted - heard):
        connection.execute(SQL("LISTEN {0}").format(Identifier(channel)))
    for channel in sorted(heard - wanted):
        connection.execute(SQL("UNLISTEN {0}").format(Identifier(channel)))
    if (wanted - heard) & set(listening.log_channels):
        anyio.from_thread.run_sync(listening.on_log)
    return wanted


@final
class ListenHints:
    """Hints from PostgreSQL's LISTEN/NOTIFY (one connection per process)."""

    def __init__(self, store: StoreCore) -> None:
        recorder = store.log.recorder
        assert isinstance(recorder, StemlogPostgresRecorder), "a PostgreSQL store's recorder"
        kwargs = recorder.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
        self._settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
        channels = []
        for number in range(store.partitions):
            partition = store.partition_recorder(number)
            assert isinstance(partition, PostgresApplicationRecorder), "a PostgreSQL recorder"
            channels.append(partition.channel_name)
        self._log_channels = tuple(channels)
        self._own = recorder.origin

    async def run(
        self,
        on_log: Callable[[], None],
        on_ready: Callable[[], None],
        *,
        wants_log: Callable[[], bool],
        wants_ready: bool,
    ) -> None:
        listening = _Listening(self._log_channels, self._own, on_log, on_ready, wants_log,
                               wants_ready)  # fmt: skip
        stop = False
        try:
            await anyio.to_thread.run_sync(
                _listen, self._settings, listening, lambda: stop, abandon_on_cancel=True
            )
        finally:
            stop = True  # the thread ends within one tick


@final
class AdvisoryLeadership:
    """The projectors' leads as session advisory locks, one per partition, held on a
    connection of its own: when the process dies or the server drops the
    connection, its locks go with it and other processes take the leads at
    their next try.

    The processes share the partitions: each counts the processes competing
    (the connections named ``stemlog-projector:<schema>``) and leads at most its
    share, ``ceil(partitions / processes)``, giving up the excess when more
    arrive. It tries the free partitions from an offset of its own, so
    processes starting together spread over them.
    """

    def __init__(self, log: Application[UUID], partitions: int) -> None:
        datastore = _datastore(log)
        kwargs = datastore.pool.kwargs
        assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
        self._settings = {key: value for key, value in kwargs.items() if key != "row_factory"}
        self._name = f"stemlog-projector:{datastore.schema}"
        self._keys = [f"{datastore.schema}.stemlog_projector.{p}" for p in range(partitions)]
        self._offset = int.from_bytes(os.urandom(2), "big") % partitions
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held: set[int] = set()

    def lead(self) -> frozenset[int]:
        try:
            connection = self._connect()
            competing = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (self._name,),
            ).fetchone()
            share = math.ceil(len(self._keys) / max(int(competing[0]) if competing else 1, 1))
            for number in sorted(self._held, reverse=True)[: max(len(self._held) - share, 0)]:
                connection.execute("SELECT pg_advisory_unlock(hashtext(%s))",
                                   (self._keys[number],))  # fmt: skip
                self._held.discard(number)
            for step in range(len(self._keys)):
                if len(self._held) >= share:
                    break
                number = (self._offset + step) % len(self._keys)
                if number in self._held:
                    continue
                row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                                         (self._keys[number],)).fetchone()  # fmt: skip
                if row is not None and row[0]:
                    self._held.add(number)
        except psycopg.Error:
            self.resign()  # the connection went, and its locks with it
        return frozenset(self._held)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._connection is None or self._connection.closed:
            self._held.clear()
            self._connection = psycopg.connect(
                autocommit=True, connect_timeout=2, application_name=self._name, **self._settings
            )
        return self._connection

    def resign(self) -> None:
        connection, self._connection = self._connection, None
        self._held.clear()
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


@final
@dataclass(frozen=True, slots=True)
class PostgresBackend:
    """``postgresql://user:password@host:port/dbname[?schema=S&pool_size=N&...]``."""

    url: str
    env: dict[str, str]
    partitions: int | None = None
    """The partitions the URL asks for (``None``: as the store has them, one if new)."""
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
        partitions = None
        if "partitions" in query:
            text = query["partitions"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_PARTITIONS:
                reason = f"partitions is a whole number from 1 to {MAX_PARTITIONS}"
                raise InvalidStoreURLError(url, reason)
            partitions = int(text)
        return cls(url, env, partitions)

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

    def partition_count(self, log: Application[UUID]) -> int:
        """The store's partitions, from ``stemlog_partitions`` (written when the store is
        created: the URL's count, or one)."""
        datastore = _datastore(log)
        table = SQL("{0}.{1}").format(
            Identifier(datastore.schema), Identifier("stemlog_partitions")
        )
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL(_PARTITIONS_DDL).format(table=table))
            cursor.execute(SQL("SELECT partitions FROM {0}").format(table))
            row = cursor.fetchone()
            if row is None:
                count = self.partitions or 1
                cursor.execute(SQL("INSERT INTO {0} (partitions) VALUES (%s)").format(table),
                               (count,))  # fmt: skip
                return count
        stored = int(row["partitions"])
        if self.partitions is not None and self.partitions != stored:
            reason = (f"the store has {stored} partitions (fixed when it was created); "
                      f"ask for {stored} or none")  # fmt: skip
            raise InvalidStoreURLError(self.url, reason)
        return stored

    def partition_env(self, number: int, log: Application[UUID]) -> dict[str, str]:
        key = f"{id(log)}:{number}"
        _SHARED_DATASTORES[key] = _datastore(log)
        env = dict(self.env)
        env["PERSISTENCE_MODULE"] = f"{__name__}:PartitionFactory"
        env[_SHARED_KEY] = key
        return env

    def prepare(self, store: StoreCore) -> None:
        """The recorders made their tables; make the append function for every
        partition's table (and forget the datastore shared while building them)."""
        for number in range(1, store.partitions):
            _SHARED_DATASTORES.pop(f"{id(store.log)}:{number}", None)
        recorder = store.log.recorder
        assert isinstance(recorder, StemlogPostgresRecorder), "a PostgreSQL store's recorder"
        tables = []
        for number in range(store.partitions):
            partition = store.partition_recorder(number)
            assert isinstance(partition, PostgresApplicationRecorder), "a PostgreSQL recorder"
            tables.append((partition.events_table_name, partition.channel_name))
        recorder.create_append_function(tables)

    def heal(self, log: Application[UUID]) -> None:
        """Test the pool's idle connections and replace the dead ones (after a call
        failed on one: the server restarted, or dropped it)."""
        recorder = log.recorder
        assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
        with contextlib.suppress(psycopg.Error):
            recorder.datastore.pool.check()

    def catalog(self, store: StoreCore) -> Catalog:
        datastore = _datastore(store.log)
        schema = datastore.schema.replace('"', '""')
        return SQLCatalog(datastore, f'"{schema}"."{CATALOG_TABLE}"', "%s")

    def hints(self, store: StoreCore) -> Hints | None:
        return ListenHints(store)

    def leadership(self, store: StoreCore) -> Leadership:
        return AdvisoryLeadership(store.log, store.partitions)

    @property
    def tail_interval(self) -> float | None:
        return FALLBACK_POLL_SECONDS
