"""The embedded store: one SQLite file holds the log and its read models.

``synchronous`` is stated, not left to SQLite's default: ``FULL`` (the
default, an fsync per commit: a committed fact survives power loss) or
``NORMAL`` (opt-in with ``?synchronous=normal``: in WAL mode still
corruption-safe and crash-safe for the process, but the last commits may be
lost if the machine loses power).

Any number of processes and apps, with workers or without, share a file (in
WAL mode SQLite takes several processes): work is claimed from the run index
(:mod:`stemlog.store.sqlite_index`), a table in the file written in each
append's transaction, in ``BEGIN IMMEDIATE`` transactions, so two workers
never take the same run, and a dead worker's claims run out and are taken
over, as on PostgreSQL. A process hears of the others' commits by watching
SQLite's ``PRAGMA data_version`` every ``HINT_SECONDS`` (20 ms); the read
models are kept by the one process holding the projector's file lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final
from urllib.parse import unquote
from uuid import UUID

import anyio
from eventsourcing.application import Application
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteFactory,
)
from eventsourcing.utils import Environment

from stemlog.errors import InvalidStoreURLError
from stemlog.store.base import (
    Hints,
    Leadership,
    Share,
    StoreCore,
    StoredRow,
    no_lock,
)
from stemlog.store.catalog import CATALOG_TABLE, Catalog, SQLCatalog
from stemlog.store.sqlite_index import IndexedSQLiteRecorder

POLL_SECONDS = 0.2
"""How often a process reads the log for other processes' facts without a hint."""
HINT_SECONDS = 0.02
"""How often a process looks at the file's ``data_version`` for other processes' writes."""


class _PragmaConnectionPool(SQLiteConnectionPool):
    synchronous: ClassVar[str] = "FULL"

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        return connection


class _NormalPool(_PragmaConnectionPool):
    synchronous = "NORMAL"


class SQLiteFullSyncFactory(SQLiteFactory):
    """SQLite with ``PRAGMA synchronous=FULL`` on every connection and the run index."""

    pool_class: ClassVar[type[_PragmaConnectionPool]] = _PragmaConnectionPool
    application_recorder_class = IndexedSQLiteRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = self.pool_class(db_name=old.db_name, lock_timeout=old.lock_timeout)


class SQLiteNormalSyncFactory(SQLiteFullSyncFactory):
    """SQLite with ``PRAGMA synchronous=NORMAL`` (opt-in, see the module docstring)."""

    pool_class = _NormalPool


@final
class FileLeadership:
    """The projector's lead as an exclusive lock on a file next to the database, taken
    without waiting; the operating system drops it when the process dies."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    def lead(self) -> frozenset[int]:
        return frozenset({0}) if self._take() else frozenset()

    def _take(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False  # a read-only folder: no background projector here
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def resign(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@final
@dataclass(frozen=True, slots=True)
class SQLiteBackend:
    """``sqlite:///path/to/file.db[?synchronous=normal&lock_timeout=S]``."""

    url: str
    path: str
    env: dict[str, str]
    name: str = "sqlite"
    inline_calls: bool = False
    commits_inline_when_alone: bool = True
    """On SQLite a lone writer commits on the event loop: a thread hop costs ~0.1 ms,
    a third of an fsync."""

    @property
    def where(self) -> str:
        return f"sqlite:///{self.path}"

    @classmethod
    def from_url(cls, url: str, path: str, query: dict[str, str]) -> SQLiteBackend:
        """Parse the path and options of a ``sqlite://`` URL.

        Raises:
            InvalidStoreURLError: no file named, or an unknown ``synchronous``.
        """
        if not path or path == "/":
            raise InvalidStoreURLError(url, "sqlite URLs name a file: sqlite:///path/to/file.db")
        db_name = unquote(path[1:])
        if "partitions" in query:
            raise InvalidStoreURLError(url, "partitions are for PostgreSQL (SQLite has one "
                                            "writer lock whatever the tables)")  # fmt: skip
        synchronous = query.get("synchronous", "full").lower()
        if synchronous not in ("full", "normal"):
            raise InvalidStoreURLError(url, "synchronous is 'full' (default) or 'normal'")
        factory = "SQLiteNormalSyncFactory" if synchronous == "normal" else "SQLiteFullSyncFactory"
        env = {"PERSISTENCE_MODULE": f"{__name__}:{factory}", "SQLITE_DBNAME": db_name}
        if "lock_timeout" in query:
            if not query["lock_timeout"].isdigit():
                reason = "lock_timeout is whole seconds (SQLite's busy timeout)"
                raise InvalidStoreURLError(url, reason)
            env["SQLITE_LOCK_TIMEOUT"] = query["lock_timeout"]
        return cls(url, db_name, env)

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def read_rows(
        self,
        log: Application[UUID],
        start: int,
        limit: int,
        stop: int | None,
        share: Share | None = None,
    ) -> list[StoredRow]:
        """One query, rows as plain tuples as stored (no ``sqlite3.Row``, no notification
        objects; run ids in eventsourcing's 32 hex digits, which the decoder dashes once
        per run rather than once per fact); a share's rows chosen by SQLite (the others
        are not even fetched)."""
        recorder = log.recorder
        assert isinstance(recorder, SQLiteApplicationRecorder), "a SQLite store's recorder"
        table = recorder.events_table_name
        columns = "rowid, originator_id, originator_version, topic, state"
        where = "rowid >= ?" if stop is None else "rowid >= ? AND rowid <= ?"
        params: tuple[int, ...] = (start,) if stop is None else (start, stop)
        if share is not None:  # the digits are hex characters: nothing to escape
            digits = ", ".join(f"'{digit}'" for digit in sorted(share.digits))
            where += f" AND substr(originator_id, -1) IN ({digits})"
        sql = f"SELECT {columns} FROM {table} WHERE {where} ORDER BY rowid LIMIT ?"
        params = (*params, limit)
        with recorder.datastore.transaction(commit=False) as cursor:
            raw = cursor.sqlite_cursor
            raw.row_factory = None  # tuples: half the cost of sqlite3.Row
            raw.execute(sql, params)
            rows: list[StoredRow] = raw.fetchall()
        return rows

    def schema_lock(self) -> AbstractContextManager[None]:
        return no_lock()  # SQLite's own write lock serialises table creation

    def partition_count(self, log: Application[UUID]) -> int:
        return 1  # partitions are for PostgreSQL: one writer lock is all there is here

    def partition_env(self, number: int, log: Application[UUID]) -> dict[str, str]:
        raise AssertionError("a store of one partition")  # pragma: no cover

    def prepare(self, store: StoreCore) -> None:
        """Check the file takes writes (the recorder created the tables if it could).

        A read-only file or folder fails the open here, with a typed error,
        rather than the first write of a run later.
        """
        recorder = store.log.recorder
        assert isinstance(recorder, IndexedSQLiteRecorder), "a SQLite store's recorder"
        recorder.check_writable()

    def heal(self, log: Application[UUID]) -> None:
        """Nothing to heal: no connections are kept across a fault."""

    def catalog(self, store: StoreCore) -> Catalog:
        recorder = store.log.recorder
        assert isinstance(recorder, IndexedSQLiteRecorder), "a SQLite store's recorder"
        return SQLCatalog(recorder.datastore, CATALOG_TABLE, "?")

    def hints(self, store: StoreCore) -> Hints | None:
        return DataVersionHints(self.path)

    def leadership(self, store: StoreCore) -> Leadership:
        return FileLeadership(f"{self.path}.projector.lock")

    @property
    def tail_interval(self) -> float | None:
        return POLL_SECONDS


@final
class DataVersionHints:
    """Hints from SQLite's ``PRAGMA data_version``, which changes on a connection when
    any other connection (another process, or this one's pool) commits to the file.

    One connection of its own, asked every ``HINT_SECONDS`` in a worker thread;
    the answer comes from the file's shared memory, without reading pages.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    async def run(
        self,
        on_log: Callable[[], None],
        on_ready: Callable[[], None],
        *,
        wants_log: Callable[[], bool],
        wants_ready: bool,
    ) -> None:
        """Watch ``data_version`` whatever is wanted: a look costs no I/O."""
        stop = False

        def watch() -> None:
            connection = sqlite3.connect(self._path, check_same_thread=False)
            try:
                seen = None
                while not stop:
                    try:
                        version = connection.execute("PRAGMA data_version").fetchone()[0]
                    except sqlite3.Error:
                        version = None  # locked or away: look again
                    if version is not None and version != seen:
                        if seen is not None:
                            anyio.from_thread.run_sync(on_log)
                            anyio.from_thread.run_sync(on_ready)
                        seen = version
                    time.sleep(HINT_SECONDS)
            except RuntimeError:
                return  # the event loop has ended: the app closed
            finally:
                connection.close()

        try:
            await anyio.to_thread.run_sync(watch, abandon_on_cancel=True)
        finally:
            stop = True

    def reconsider(self) -> None:
        """Nothing to do: ``data_version`` is watched whatever is wanted."""
