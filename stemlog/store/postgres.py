"""The scale-out store: PostgreSQL through eventsourcing's postgres module.

Any number of processes on any number of machines share one database. What
is specific to PostgreSQL lives here and beside it: the URL's settings and
the advisory lock that serialises table creation (here); the LISTEN
connection that wakes a process when another one appends or leaves a run to
claim, and the projectors' leads (:mod:`stemlog.store.postgres_hints`); the
recorder, with its one-round-trip append and the run index through which
worker processes share runs (:mod:`stemlog.store.postgres_recorder`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import final
from urllib.parse import unquote, urlsplit
from uuid import UUID

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
    Share,
    StoreCore,
    StoredRow,
    rows_of_notifications,
)
from stemlog.store.catalog import CATALOG_TABLE, Catalog, SQLCatalog
from stemlog.store.postgres_hints import AdvisoryLeadership, ListenHints
from stemlog.store.postgres_recorder import OnceRecorder, StemlogPostgresRecorder, datastore_of

logger = logging.getLogger("stemlog.store")

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
        self,
        log: Application[UUID],
        start: int,
        limit: int,
        stop: int | None,
        share: Share | None = None,
    ) -> list[StoredRow]:
        return rows_of_notifications(log, start, limit, stop, share)

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
        datastore = datastore_of(log)
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
        _SHARED_DATASTORES[key] = datastore_of(log)
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
        datastore = datastore_of(store.log)
        schema = datastore.schema.replace('"', '""')
        return SQLCatalog(datastore, f'"{schema}"."{CATALOG_TABLE}"', "%s")

    def hints(self, store: StoreCore) -> Hints | None:
        return ListenHints(store)

    def leadership(self, store: StoreCore) -> Leadership:
        return AdvisoryLeadership(store.log, store.partitions)

    @property
    def tail_interval(self) -> float | None:
        return FALLBACK_POLL_SECONDS
