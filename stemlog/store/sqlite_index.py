"""The run index of a SQLite store: a table in the same file, written in the append's
transaction.

The rules are :func:`stemlog.store.index.settle`'s, run over the rows an
append touches (in-process statements are cheap, so the rows are read, settled
in Python and written back inside the one transaction). Claims are taken in a
``BEGIN IMMEDIATE`` transaction, so two processes claiming at once take turns
on the file's write lock instead of failing on a lock upgrade.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from stemlog.store.catalog import CATALOG_TABLE, catalog_ddl
from stemlog.store.index import (
    AppendConflict,
    AppendResult,
    Claimed,
    ClaimRound,
    IndexEntry,
    IndexRow,
    Settled,
    due_of,
    settle,
    taken_runs,
    touched_ids,
)

INDEX_TABLE = "stemlog_run_index"
_META_TABLE = "stemlog_run_index_meta"
_COLUMNS = "run_id, version, served, ready_at, due_at, claimed_by, claim_expires, waiting_on"
_CHUNK = 500
"""Run ids per ``IN (...)`` list (SQLite allows 999 parameters by default)."""

_DDL = (
    f"CREATE TABLE IF NOT EXISTS {INDEX_TABLE} (run_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "served TEXT NOT NULL, "
    "ready_at INTEGER, due_at INTEGER, claimed_by TEXT, claim_expires INTEGER, "
    "waiting_on TEXT) WITHOUT ROWID",
    f"CREATE INDEX IF NOT EXISTS {INDEX_TABLE}_due ON {INDEX_TABLE} (due_at) "
    "WHERE due_at IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {INDEX_TABLE}_waiting ON {INDEX_TABLE} (waiting_on) "
    "WHERE waiting_on IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {INDEX_TABLE}_claims ON {INDEX_TABLE} (claimed_by) "
    "WHERE claimed_by IS NOT NULL",
    f"CREATE TABLE IF NOT EXISTS {_META_TABLE} (backfilled INTEGER NOT NULL)",
    catalog_ddl(CATALOG_TABLE),
)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class IndexedSQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder with the run index
    (:class:`~stemlog.store.index.IndexedRecorder`)."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_DDL]

    # -- writes in the append's transaction --------------------------------------------

    def append(
        self,
        stored_events: Sequence[StoredEvent],
        partitions: Sequence[int],
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
    ) -> AppendResult:
        try:
            with self.datastore.transaction(commit=True) as cursor:
                positions = self._insert_events(cursor, stored_events) or []
                settled = self._settle(cursor, entries, owner, claim_until, now, appending=True)
        except IntegrityError as error:
            raise AppendConflict(str(error), taken_runs(self, stored_events)) from error
        return AppendResult(list(positions), settled.held, settled.claimable)

    def put_index(
        self,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        insert: bool = False,
    ) -> AppendResult:
        with self._immediate() as cursor:
            settled = self._settle(cursor, entries, owner, claim_until, now, appending=insert)
        return AppendResult([], settled.held, settled.claimable)

    def _settle(
        self,
        cursor: SQLiteCursor,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        appending: bool,
    ) -> Settled:
        existing = {row.run_id: row for row in self._rows(cursor, touched_ids(entries))}
        settled = settle(entries, existing, owner, claim_until, now, appending=appending)
        gone = [(run_id,) for run_id, row in settled.rows.items() if row is None]
        kept = [_values(row) for row in settled.rows.values() if row is not None]
        if gone:
            cursor.executemany(f"DELETE FROM {INDEX_TABLE} WHERE run_id = ?", gone)
        if kept:
            sql = f"INSERT OR REPLACE INTO {INDEX_TABLE} ({_COLUMNS}) VALUES ({_marks(8)})"
            cursor.executemany(sql, kept)
        return settled

    def _rows(self, cursor: SQLiteCursor, run_ids: Sequence[str]) -> list[IndexRow]:
        rows: list[IndexRow] = []
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start : start + _CHUNK]
            sql = f"SELECT {_COLUMNS} FROM {INDEX_TABLE} WHERE run_id IN ({_marks(len(chunk))})"
            cursor.execute(sql, chunk)
            rows.extend(_row(found) for found in cursor.fetchall())
        return rows

    def check_writable(self) -> None:
        """Take the write lock and give it back (raises if the file refuses writes)."""
        with self._immediate() as cursor:
            cursor.execute(f"DELETE FROM {_META_TABLE} WHERE backfilled < 0")

    # -- the workers' statements ------------------------------------------------------

    def claim(
        self, owner: str, now: int, claim_until: int, limit: int, serves: Sequence[str]
    ) -> ClaimRound:
        if not serves:
            return ClaimRound([], None)
        served = _marks(len(serves))
        with self._immediate() as cursor:
            cursor.execute(
                f"SELECT run_id, ready_at, claimed_by, claim_expires, version FROM {INDEX_TABLE} "
                f"WHERE due_at <= ? AND served IN ({served}) ORDER BY due_at LIMIT ?",
                (now, *serves, limit),
            )
            picked = cursor.fetchall()
            cursor.executemany(
                f"UPDATE {INDEX_TABLE} SET claimed_by = ?, claim_expires = ?, due_at = ? "
                "WHERE run_id = ?",
                [(owner, claim_until, due_of(row[1], owner, claim_until), row[0])
                 for row in picked],
            )  # fmt: skip
            cursor.execute(
                f"SELECT min(due_at) FROM {INDEX_TABLE} WHERE due_at > ? AND served IN ({served})",
                (now, *serves),
            )
            found = cursor.fetchone()
        claimed = [
            Claimed(row[0], None if row[2] in (None, owner) else (row[2], row[3] or 0), row[4])
            for row in picked
        ]
        return ClaimRound(claimed, None if found is None else found[0])

    def renew(self, owner: str, claim_until: int) -> None:
        with self._immediate() as cursor:
            cursor.execute(
                f"UPDATE {INDEX_TABLE} SET claim_expires = ?, due_at = CASE WHEN ready_at IS "
                "NULL OR ready_at < ? THEN ? ELSE ready_at END WHERE claimed_by = ?",
                (claim_until, claim_until, claim_until, owner),
            )

    def release_owners(self, owners: Sequence[str]) -> None:
        if not owners:
            return
        with self._immediate() as cursor:
            cursor.execute(
                f"UPDATE {INDEX_TABLE} SET claimed_by = NULL, claim_expires = NULL, "
                f"due_at = ready_at WHERE claimed_by IN ({_marks(len(owners))})",
                tuple(owners),
            )

    # -- reads --------------------------------------------------------------------------

    def claimers(self) -> list[str]:
        sql = f"SELECT DISTINCT claimed_by FROM {INDEX_TABLE} WHERE claimed_by IS NOT NULL"
        return sorted(str(row[0]) for row in self._read(sql, ()))

    def waiting_on(self, topic: str) -> list[str]:
        sql = f"SELECT run_id FROM {INDEX_TABLE} WHERE waiting_on = ?"
        return [str(row[0]) for row in self._read(sql, (topic,))]

    def holders(self, run_ids: Sequence[str], now: int) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(run_ids), _CHUNK):
            chunk = list(run_ids[start : start + _CHUNK])
            sql = (
                f"SELECT run_id, claimed_by, claim_expires FROM {INDEX_TABLE} WHERE run_id IN "
                f"({_marks(len(chunk))}) AND claimed_by IS NOT NULL AND claim_expires >= ?"
            )
            for row in self._read(sql, (*chunk, now)):
                found[str(row[0])] = (str(row[1]), int(row[2]))
        return found

    def index_rows(self) -> list[IndexRow]:
        return [_row(row) for row in self._read(f"SELECT {_COLUMNS} FROM {INDEX_TABLE}", ())]

    def index_backfilled(self) -> bool:
        return bool(self._read(f"SELECT backfilled FROM {_META_TABLE}", ()))

    def mark_backfilled(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {_META_TABLE}")
            cursor.execute(f"INSERT INTO {_META_TABLE} (backfilled) VALUES (1)")

    def close_writer(self) -> None:
        """Appends use the store's own connections: nothing of their own to close."""

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[SQLiteCursor]:
        """A write transaction that takes the file's write lock at ``BEGIN`` (waiting
        up to the busy timeout); errors are raised as SQLite raised them (the
        store's fault handling reads sqlite3's errors as they are)."""
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.rollback()
                raise
            finally:
                cursor.sqlite_cursor.close()


def _values(row: IndexRow) -> tuple[Any, ...]:
    return (row.run_id, row.version, row.served, row.ready_at, row.due_at, row.claimed_by,
            row.claim_expires, row.waiting_on)  # fmt: skip


def _row(values: Any) -> IndexRow:
    return IndexRow(str(values[0]), int(values[1]), str(values[2]), values[3], values[4],
                    None if values[5] is None else str(values[5]), values[6],
                    None if values[7] is None else str(values[7]))  # fmt: skip
