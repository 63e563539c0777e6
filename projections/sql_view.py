"""The runs/watchers/timers view in SQL, for SQLite and PostgreSQL.

The SQL is written once with ``?`` markers and ``{runs}``-style table names;
each backend's view renders it (PostgreSQL: ``%s`` and schema-qualified
identifiers). Times are stored as integer microseconds since the epoch (exact
and index-friendly), JSON columns as orjson text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from projections.rows import RunRow, timer_due, watcher_topic
from projections.view import APPLICATION_NAME, PositionConflictError, RunsQuery
from stemlog.children import CHILD_TOPIC_PREFIX
from stemlog.records import RunStatus

_COLUMNS = (
    "run_id",
    "seq",
    "workflow",
    "kind",
    "version",
    "status",
    "params",
    "created_at",
    "updated_at",
    "position",
    "parent_run_id",
    "ttl",
    "result",
    "error",
    "current_step",
    "wait_topic",
    "wake_at",
    "deadline",
    "retry_at",
    "attempts",
    "cancel_reason",
    "ended_at",
    "inbox",
    "max_run",
    "max_suspend",
    "suspended_at",
    "expires_at",
)
_JSON = frozenset({"params", "result", "error", "inbox"})
_TIMES = frozenset(
    {"created_at", "updated_at", "wake_at", "deadline", "retry_at", "ended_at", "suspended_at",
     "expires_at"}
)  # fmt: skip

_CREATE = (
    "CREATE TABLE IF NOT EXISTS {runs} (run_id TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
    "workflow TEXT NOT NULL, kind TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, "
    "params TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, "
    "position BIGINT NOT NULL, parent_run_id TEXT, ttl DOUBLE PRECISION, result TEXT, "
    "error TEXT, current_step TEXT, wait_topic TEXT, wake_at BIGINT, deadline BIGINT, "
    "retry_at BIGINT, attempts INTEGER NOT NULL, cancel_reason TEXT, ended_at BIGINT, "
    "inbox TEXT NOT NULL, max_run DOUBLE PRECISION, max_suspend DOUBLE PRECISION, "
    "suspended_at BIGINT, expires_at BIGINT)",
    "CREATE INDEX IF NOT EXISTS {runs_seq_index} ON {runs} (seq)",
    "CREATE INDEX IF NOT EXISTS {runs_status_index} ON {runs} (status, seq)",
    "CREATE INDEX IF NOT EXISTS {runs_workflow_index} ON {runs} (workflow, status, seq)",
    "CREATE INDEX IF NOT EXISTS {runs_parent_index} ON {runs} (parent_run_id)",
    "CREATE TABLE IF NOT EXISTS {watchers} (topic TEXT NOT NULL, run_id TEXT NOT NULL, "
    "PRIMARY KEY (topic, run_id))",
    "CREATE INDEX IF NOT EXISTS {watchers_run_index} ON {watchers} (run_id)",
    "CREATE TABLE IF NOT EXISTS {timers} (run_id TEXT PRIMARY KEY, due_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {timers_due_index} ON {timers} (due_at)",
)
_TABLES = ("runs", "watchers", "timers")
_INDEXES = (
    "runs_seq_index",
    "runs_status_index",
    "runs_workflow_index",
    "runs_parent_index",
    "watchers_run_index",
    "timers_due_index",
)

_UPSERT_ROW = (
    "INSERT INTO {runs} ("
    + ", ".join(_COLUMNS)
    + ") VALUES ("
    + ", ".join("?" for _ in _COLUMNS)
    + ") ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "run_id")
)
_CAS_TRACKING = (
    "INSERT INTO {tracking} AS t (application_name, notification_id) VALUES (?, ?) "
    "ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id "
    "WHERE t.notification_id = ? RETURNING notification_id"
)


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int | None) -> datetime | None:
    if micros is None:
        return None
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def row_to_record(row: RunRow) -> tuple[Any, ...]:
    """A row as the tuple of column values the SQL views store."""
    values: list[Any] = []
    for column in _COLUMNS:
        value = getattr(row, column)
        if column in _JSON:
            value = None if value is None and column != "inbox" else orjson.dumps(value).decode()
        elif column in _TIMES:
            value = _micros(value)
        elif column == "status":
            value = str(value)
        values.append(value)
    return tuple(values)


def record_to_row(record: Any) -> RunRow:
    """A stored record (name-indexable) back as a row."""
    fields: dict[str, Any] = {}
    for column in _COLUMNS:
        value = record[column]
        if column in _JSON:
            value = None if value is None else orjson.loads(value)
        elif column in _TIMES:
            value = _moment(value)
        elif column == "status":
            value = RunStatus(value)
        fields[column] = value
    return RunRow(**fields)


class _SQLRunsView:
    """The queries; a backend supplies ``_sql``, ``_transaction`` and the tracking table."""

    tracking_table: str

    def _sql(self, template: str) -> Any:
        raise AssertionError("implemented by each backend")  # pragma: no cover

    def _transaction(self, *, commit: bool) -> Any:
        raise AssertionError("implemented by each backend")  # pragma: no cover

    def _select(self, template: str, params: Sequence[Any]) -> list[Any]:
        with self._transaction(commit=False) as cursor:
            cursor.execute(self._sql(template), params)
            return list(cursor.fetchall())

    def position(self) -> int:
        rows = self._select(
            "SELECT notification_id FROM {tracking} WHERE application_name = ?",
            (APPLICATION_NAME,),
        )
        return int(rows[0]["notification_id"]) if rows else 0

    def load_rows(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        found: dict[str, RunRow] = {}
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for record in self._select(f"SELECT * FROM {{runs}} WHERE run_id IN ({marks})", chunk):
                row = record_to_row(record)
                found[row.run_id] = row
        return found

    def write_page(self, rows: Sequence[RunRow], expected: int, last: int) -> None:
        with self._transaction(commit=True) as cursor:
            cursor.execute(self._sql(_CAS_TRACKING), (APPLICATION_NAME, last, expected))
            if cursor.fetchone() is None:
                raise PositionConflictError
            if not rows:
                return
            ids = [(row.run_id,) for row in rows]
            cursor.executemany(self._sql(_UPSERT_ROW), [row_to_record(row) for row in rows])
            cursor.executemany(self._sql("DELETE FROM {watchers} WHERE run_id = ?"), ids)
            cursor.executemany(self._sql("DELETE FROM {timers} WHERE run_id = ?"), ids)
            watchers = [(t, r.run_id) for r in rows if (t := watcher_topic(r)) is not None]
            if watchers:
                cursor.executemany(
                    self._sql("INSERT INTO {watchers} (topic, run_id) VALUES (?, ?)"), watchers
                )
            timers = [(r.run_id, _micros(d)) for r in rows if (d := timer_due(r)) is not None]
            if timers:
                cursor.executemany(
                    self._sql("INSERT INTO {timers} (run_id, due_at) VALUES (?, ?)"), timers
                )

    def get_row(self, run_id: str) -> RunRow | None:
        records = self._select("SELECT * FROM {runs} WHERE run_id = ?", (run_id,))
        return record_to_row(records[0]) if records else None

    def list_rows(self, query: RunsQuery) -> list[RunRow]:
        clauses: list[str] = ["seq > ?"]
        params: list[Any] = [query.after_seq or 0]
        if query.workflow is not None:
            clauses.append("workflow = ?")
            params.append(query.workflow)
        if query.status is not None:
            clauses.append("status = ?")
            params.append(str(query.status))
        if query.expired_before is not None:
            clauses.append("(expires_at IS NULL OR expires_at > ?)")
            params.append(_micros(query.expired_before))
        params.append(query.limit)
        sql = f"SELECT * FROM {{runs}} WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        return [record_to_row(record) for record in self._select(sql, params)]

    def waiting_on(self, topic: str) -> list[str]:
        records = self._select("SELECT run_id FROM {watchers} WHERE topic = ?", (topic,))
        return [record["run_id"] for record in records]

    def due(self, until: datetime, limit: int) -> list[tuple[str, datetime]]:
        records = self._select(
            "SELECT run_id, due_at FROM {timers} WHERE due_at <= ? ORDER BY due_at LIMIT ?",
            (_micros(until), limit),
        )
        return [(record["run_id"], _moment(record["due_at"]) or until) for record in records]

    def next_due(self) -> datetime | None:
        records = self._select("SELECT MIN(due_at) AS due_at FROM {timers}", ())
        return _moment(records[0]["due_at"]) if records else None

    def children(self, parent_run_id: str) -> list[str]:
        records = self._select(
            "SELECT run_id FROM {runs} WHERE parent_run_id = ? AND status IN (?, ?) ORDER BY seq",
            (parent_run_id, "running", "suspended"),
        )
        return [record["run_id"] for record in records]

    def child_waits(self) -> list[tuple[str, str]]:
        records = self._select(
            "SELECT run_id, topic FROM {watchers} WHERE topic LIKE ?", (CHILD_TOPIC_PREFIX + "%",)
        )
        prefix = len(CHILD_TOPIC_PREFIX)
        return [(record["run_id"], record["topic"][prefix:]) for record in records]

    def runnable(self, limit: int) -> list[str]:
        records = self._select(
            "SELECT run_id FROM {runs} WHERE status = ? ORDER BY seq LIMIT ?", ("running", limit)
        )
        return [record["run_id"] for record in records]

    def clear(self) -> None:
        with self._transaction(commit=True) as cursor:
            for table in _TABLES:
                cursor.execute(self._sql(f"DELETE FROM {{{table}}}"))
            cursor.execute(
                self._sql("DELETE FROM {tracking} WHERE application_name = ?"), (APPLICATION_NAME,)
            )


class SQLiteRunsView(_SQLRunsView, SQLiteTrackingRecorder):
    """The view in the SQLite file of the log (tables ``stemlog_runs``, ...)."""

    tracking_table = "tracking"

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        self._names = {name: f"stemlog_{name}" for name in (*_TABLES, *_INDEXES)}
        self._names["tracking"] = self.tracking_table
        self._rendered: dict[str, str] = {}
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        return [*statements, *(self._sql(t) for t in _CREATE)]

    def _sql(self, template: str) -> str:
        rendered = self._rendered.get(template)
        if rendered is None:
            rendered = self._rendered[template] = template.format(**self._names)
        return rendered

    def _transaction(self, *, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)

    def close(self) -> None:
        """The log's application owns (and closes) the shared datastore."""


class PostgresRunsView(_SQLRunsView, PostgresTrackingRecorder):
    """The view in the PostgreSQL database of the log (tables ``stemlog_runs``, ...)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = self.datastore.schema
        self._names = {name: Identifier(schema, f"stemlog_{name}") for name in _TABLES} | {
            name: Identifier(f"stemlog_{name}") for name in _INDEXES
        }
        self._names["tracking"] = Identifier(schema, self.tracking_table_name)
        self._rendered: dict[str, Composed] = {}
        for template in _CREATE:
            self.sql_create_statements.append(self._sql(template))

    def _sql(self, template: str) -> Composed:
        rendered = self._rendered.get(template)
        if rendered is None:
            text = template.replace("?", "%s")
            rendered = self._rendered[template] = SQL(text).format(**self._names)
        return rendered

    def _transaction(self, *, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)

    def close(self) -> None:
        """The log's application owns (and closes) the shared datastore."""
