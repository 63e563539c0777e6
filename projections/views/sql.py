"""The read models in SQL: the queries SQLite and PostgreSQL share.

The schema is :mod:`projections.views.schema`; each backend
(:mod:`projections.views.sqlite`, :mod:`projections.views.postgres`) renders
the templates and supplies its transactions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from projections.page import StatsDelta
from projections.runs import RunRow
from projections.step_stats import StepStats
from projections.view import PositionConflictError, RunsQuery
from projections.views import schema
from projections.workflow_stats import WorkflowStats
from stemlog.model.children import CHILD_TOPIC_PREFIX
from stemlog.store.base import partition_name


def record_values(record: Any) -> tuple[Any, ...]:
    # psycopg's dict rows iterate over keys, sqlite3.Row over values.
    return tuple(record.values()) if isinstance(record, dict) else tuple(record)


class SQLRunsView:
    """The queries; a backend supplies ``_sql`` and ``_transaction``."""

    partitions = 1

    def _lock_stats(self, cursor: Any) -> None:
        """Make projectors of different partitions take turns on the stats rows they
        share, in the page's transaction (SQLite's write lock does it already)."""

    def render(self, template: str) -> Any:
        raise AssertionError("implemented by each backend")  # pragma: no cover

    def transaction(self, *, commit: bool) -> Any:
        raise AssertionError("implemented by each backend")  # pragma: no cover

    def _select(self, template: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(self.render(template), params)
            return list(cursor.fetchall())

    # -- the models' versions --------------------------------------------------

    def ensure_models(self) -> bool:
        """Reset the models when their stored versions differ from the code's; whether it did."""
        stored = {r["name"]: r["version"] for r in self._select("SELECT * FROM {models}")}
        if stored == schema.MODEL_VERSIONS:
            return False
        if not stored and self.position() == 0:
            self._write_versions()
            return False
        self.clear()
        return True

    def clear(self) -> None:
        """Drop and re-create every model table and forget the position (to rebuild)."""
        with self.transaction(commit=True) as cursor:
            for table in (*schema.MODEL_TABLES, "models"):
                cursor.execute(self.render(f"DROP TABLE IF EXISTS {{{table}}}"))
            for statement in schema.CREATE:
                cursor.execute(self.render(statement))
            cursor.executemany(
                self.render("DELETE FROM {tracking} WHERE application_name = ?"),
                [(partition_name(p),) for p in range(self.partitions)],
            )
        self._write_versions()

    @contextlib.contextmanager
    def deferred_indexes(self) -> Iterator[None]:
        """Without the indexes only queries use while inside (a rebuild's pages are
        written faster), made again from the finished table on the way out."""
        with self.transaction(commit=True) as cursor:
            for name in schema.QUERY_INDEXES:
                cursor.execute(self._drop_index(name))
        try:
            yield
        finally:
            with self.transaction(commit=True) as cursor:
                for statement in schema.QUERY_INDEXES.values():
                    cursor.execute(self.render(statement))

    def _drop_index(self, name: str) -> Any:
        return self.render(f"DROP INDEX IF EXISTS {{{name}}}")

    def _write_versions(self) -> None:
        with self.transaction(commit=True) as cursor:
            cursor.executemany(
                self.render("INSERT INTO {models} (name, version) VALUES (?, ?)"),
                list(schema.MODEL_VERSIONS.items()),
            )

    # -- writing ----------------------------------------------------------------

    def position(self, partition: int = 0) -> int:
        rows = self._select(
            "SELECT notification_id FROM {tracking} WHERE application_name = ?",
            (partition_name(partition),),
        )
        return int(rows[0]["notification_id"]) if rows else 0

    def load_rows(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        found: dict[str, RunRow] = {}
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for record in self._select(f"SELECT * FROM {{runs}} WHERE run_id IN ({marks})", chunk):
                row = schema.record_to_row(record)
                found[row.run_id] = row
        return found

    def write_page(
        self,
        rows: Sequence[RunRow],
        expected: int,
        last: int,
        stats: StatsDelta | None = None,
        previous: Mapping[str, RunRow] | None = None,
        partition: int = 0,
    ) -> None:
        self.write_encoded_page(schema.encode_rows(rows, previous), expected, last, stats,
                                partition)  # fmt: skip

    def write_encoded_page(
        self,
        rows: schema.EncodedRows,
        expected: int,
        last: int,
        stats: StatsDelta | None = None,
        partition: int = 0,
    ) -> None:
        """:meth:`write_page` with the rows encoded already (by :func:`schema.encode_rows`).

        Raises:
            PositionConflictError: the position is not ``expected`` any more.
        """
        with self.transaction(commit=True) as cursor:
            name = partition_name(partition)
            cursor.execute(self.render(schema.CAS_TRACKING), (name, last, expected))
            if cursor.fetchone() is None:
                raise PositionConflictError
            if rows.records:
                self._write_rows(cursor, rows)
            if stats is not None:
                self._write_stats(cursor, stats)

    def _write_rows(self, cursor: Any, rows: schema.EncodedRows) -> None:
        cursor.executemany(self.render(schema.UPSERT_RUN), rows.records)
        if rows.stale_watchers:
            sql = "DELETE FROM {watchers} WHERE run_id = ?"
            cursor.executemany(self.render(sql), rows.stale_watchers)
        if rows.stale_timers:
            cursor.executemany(
                self.render("DELETE FROM {timers} WHERE run_id = ?"), rows.stale_timers
            )
        if rows.watchers:
            sql = "INSERT INTO {watchers} (topic, run_id) VALUES (?, ?)"
            cursor.executemany(self.render(sql), rows.watchers)
        if rows.timers:
            sql = "INSERT INTO {timers} (run_id, due_at) VALUES (?, ?)"
            cursor.executemany(self.render(sql), rows.timers)

    def _write_stats(self, cursor: Any, delta: StatsDelta) -> None:
        # Read-modify-write inside the page's transaction: one projector at a time.
        if delta.steps or delta.workflows:
            self._lock_stats(cursor)
        steps = self._merged_steps(cursor, list(delta.steps.values()))
        if steps:
            cursor.executemany(self.render(schema.UPSERT_STEP_STATS), steps)
        merged = self._merged_workflows(cursor, list(delta.workflows.values()))
        flows = [record for record in merged if record[2] != 0 or record[3] != "{}"]
        empty = [record[:2] for record in merged if record[2] == 0 and record[3] == "{}"]
        if flows:
            cursor.executemany(self.render(schema.UPSERT_WORKFLOW_STATS), flows)
        if empty:  # a status no run is in, with no durations: no row, as a rebuild leaves it
            sql = "DELETE FROM {workflow_stats} WHERE workflow = ? AND status = ?"
            cursor.executemany(self.render(sql), empty)

    def _stored(
        self, cursor: Any, table: str, column: str, keys: list[tuple[str, str]]
    ) -> list[Any]:
        """The rows of ``table`` with these ``(workflow, column)`` keys, one query per 400."""
        found: list[Any] = []
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            pairs = ", ".join("(?, ?)" for _ in chunk)
            sql = f"SELECT * FROM {{{table}}} WHERE (workflow, {column}) IN (VALUES {pairs})"
            cursor.execute(self.render(sql), [value for key in chunk for value in key])
            found.extend(cursor.fetchall())
        return found

    def _merged_steps(self, cursor: Any, changes: list[StepStats]) -> list[tuple[Any, ...]]:
        keys = [(change.workflow, change.step) for change in changes]
        stored: dict[tuple[str, str], StepStats] = {}
        for record in self._stored(cursor, "step_stats", "step", keys):
            current = schema.record_to_step_stats(record)
            stored[(current.workflow, current.step)] = current
        merged = []
        for change in changes:
            key = (change.workflow, change.step)
            step = stored.get(key) or StepStats(change.workflow, change.step)
            step.merge(change)
            merged.append(schema.step_stats_record(step))
        return merged

    def _merged_workflows(self, cursor: Any, changes: list[WorkflowStats]) -> list[tuple[Any, ...]]:
        keys = [(change.workflow, str(change.status)) for change in changes]
        stored: dict[tuple[str, str], WorkflowStats] = {}
        for record in self._stored(cursor, "workflow_stats", "status", keys):
            current = schema.record_to_workflow_stats(record)
            stored[(current.workflow, str(current.status))] = current
        merged = []
        for change in changes:
            key = (change.workflow, str(change.status))
            flow = stored.get(key) or WorkflowStats(change.workflow, change.status)
            flow.merge(change)
            merged.append(schema.workflow_stats_record(flow))
        return merged

    # -- reading ------------------------------------------------------------------

    def get_row(self, run_id: str) -> RunRow | None:
        records = self._select("SELECT * FROM {runs} WHERE run_id = ?", (run_id,))
        return schema.record_to_row(records[0]) if records else None

    def list_rows(self, query: RunsQuery) -> list[RunRow]:
        clauses: list[str] = ["seq > ?"]
        params: list[Any] = [query.after_seq if query.after_seq is not None else -1]
        if query.after_seq is not None and query.after_run_id is not None:
            clauses = ["(seq > ? OR (seq = ? AND run_id > ?))"]
            params = [query.after_seq, query.after_seq, query.after_run_id]
        if query.workflow is not None:
            clauses.append("workflow = ?")
            params.append(query.workflow)
        if query.status is not None:
            clauses.append("status = ?")
            params.append(str(query.status))
        if query.expired_before is not None:
            clauses.append("(expires_at IS NULL OR expires_at > ?)")
            params.append(schema.micros(query.expired_before))
        if query.id_prefix is not None:  # LIKE: a key range would follow the collation
            clauses.append("run_id LIKE ? ESCAPE '!'")
            escaped = query.id_prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params.append(escaped + "%")
        params.append(query.limit)
        sql = f"SELECT * FROM {{runs}} WHERE {' AND '.join(clauses)} ORDER BY seq, run_id LIMIT ?"
        return [schema.record_to_row(record) for record in self._select(sql, params)]

    def waiting_on(self, topic: str) -> list[str]:
        records = self._select("SELECT run_id FROM {watchers} WHERE topic = ?", (topic,))
        return [record["run_id"] for record in records]

    def due(self, until: datetime, limit: int) -> list[tuple[str, datetime]]:
        records = self._select(
            "SELECT run_id, due_at FROM {timers} WHERE due_at <= ? ORDER BY due_at LIMIT ?",
            (schema.micros(until), limit),
        )
        return [(r["run_id"], schema.moment(r["due_at"]) or until) for r in records]

    def next_due(self) -> datetime | None:
        records = self._select("SELECT MIN(due_at) AS due_at FROM {timers}")
        return schema.moment(records[0]["due_at"]) if records else None

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

    def unfinished(self, limit: int) -> list[str]:
        records = self._select(
            "SELECT run_id FROM {runs} WHERE status NOT IN (?, ?, ?) ORDER BY seq LIMIT ?",
            ("completed", "failed", "cancelled", limit),
        )
        return [record["run_id"] for record in records]

    def stats(self) -> tuple[list[StepStats], list[WorkflowStats]]:
        steps = self._select("SELECT * FROM {step_stats} ORDER BY workflow, step")
        flows = self._select("SELECT * FROM {workflow_stats} ORDER BY workflow, status")
        return (
            [schema.record_to_step_stats(r) for r in steps],
            [schema.record_to_workflow_stats(r) for r in flows],
        )

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every model and the position, read in one snapshot, in a
        canonical order (for ``verify``)."""
        orders = {"runs": "run_id", "watchers": "topic, run_id", "timers": "run_id",
                  "step_stats": "workflow, step", "workflow_stats": "workflow, status"}  # fmt: skip
        dumped: dict[str, list[tuple[Any, ...]]] = {}
        with self.transaction(commit=False) as cursor:
            self._begin_snapshot(cursor)
            for table, order in orders.items():
                cursor.execute(self.render(f"SELECT * FROM {{{table}}} ORDER BY {order}"))
                dumped[table] = [record_values(record) for record in cursor.fetchall()]
            positions = []
            for partition in range(self.partitions):
                cursor.execute(
                    self.render(
                        "SELECT notification_id FROM {tracking} WHERE application_name = ?"
                    ),
                    (partition_name(partition),),
                )
                record = cursor.fetchone()
                positions.append((0 if record is None else int(record["notification_id"]),))
        dumped["position"] = positions
        return dumped

    def _begin_snapshot(self, cursor: Any) -> None:
        """SQLite's read transaction is a snapshot already (WAL)."""
