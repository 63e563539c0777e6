"""SQLite persistence with an explicit ``synchronous`` setting.

eventsourcing switches file databases to WAL but leaves ``synchronous`` at
SQLite's default. stemlog states it: ``FULL`` (the default, an fsync per
commit: a committed fact survives power loss) or ``NORMAL`` (opt-in with
``?synchronous=normal``: in WAL mode still corruption-safe and crash-safe for
the process, but the last commits may be lost if the machine loses power).
"""

from __future__ import annotations

from typing import ClassVar

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment


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
    """SQLite with ``PRAGMA synchronous=FULL`` on every connection."""

    pool_class: ClassVar[type[_PragmaConnectionPool]] = _PragmaConnectionPool

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = self.pool_class(db_name=old.db_name, lock_timeout=old.lock_timeout)


class SQLiteNormalSyncFactory(SQLiteFullSyncFactory):
    """SQLite with ``PRAGMA synchronous=NORMAL`` (opt-in, see the module docstring)."""

    pool_class = _NormalPool
