"""The SQL tables of the read models, and how rows are stored in them.

Templates use ``?`` markers and ``{runs}``-style names; each backend renders
them (PostgreSQL: ``%s`` and schema-qualified identifiers). Times are integer
microseconds since the epoch (exact and index-friendly), JSON columns orjson
text. The ``runs`` columns are exactly the fields of :class:`RunRow`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, final

import orjson

from projections.runs import RunRow
from projections.step_stats import StepStats
from projections.timers import timer_due
from projections.watchers import watcher_topic
from projections.workflow_stats import WorkflowStats
from stemlog.clock import from_micros, to_micros
from stemlog.model.records import RunStatus

MODEL_VERSIONS: dict[str, int] = {
    "runs": 2,
    "watchers": 1,
    "timers": 1,
    "step_stats": 1,
    "workflow_stats": 2,
}
"""Each read model's name and version; a stored version that differs rebuilds the models."""

_RUN_TYPES = {
    "run_id": "TEXT PRIMARY KEY", "seq": "BIGINT NOT NULL", "workflow": "TEXT NOT NULL",
    "kind": "TEXT NOT NULL", "version": "INTEGER NOT NULL", "status": "TEXT NOT NULL",
    "params": "TEXT NOT NULL", "created_at": "BIGINT NOT NULL", "updated_at": "BIGINT NOT NULL",
    "position": "BIGINT NOT NULL", "parent_run_id": "TEXT", "ttl": "DOUBLE PRECISION",
    "result": "TEXT", "error": "TEXT", "current_step": "TEXT", "wait_topic": "TEXT",
    "wake_at": "BIGINT", "deadline": "BIGINT", "retry_at": "BIGINT",
    "attempts": "INTEGER NOT NULL", "cancel_reason": "TEXT", "ended_at": "BIGINT",
    "expires_at": "BIGINT", "due_at": "BIGINT", "state": "TEXT NOT NULL", "blocked": "TEXT",
}  # fmt: skip
COLUMNS = tuple(field.name for field in fields(RunRow))
assert set(COLUMNS) == set(_RUN_TYPES), "the runs table must hold exactly RunRow's fields"
_JSON = frozenset({"params", "result", "error", "state"})
_TIMES = frozenset(c for c in COLUMNS if c.endswith("_at")) | {"deadline"}

MODEL_TABLES = ("runs", "watchers", "timers", "step_stats", "workflow_stats")
INDEXES = (
    "runs_seq_index", "runs_status_index", "runs_workflow_index", "runs_parent_index",
    "watchers_run_index", "timers_due_index",
)  # fmt: skip
QUERY_INDEXES = {
    "runs_seq_index": "CREATE INDEX IF NOT EXISTS {runs_seq_index} ON {runs} (seq)",
    "runs_status_index": "CREATE INDEX IF NOT EXISTS {runs_status_index} ON {runs} (status, seq)",
    "runs_workflow_index":
        "CREATE INDEX IF NOT EXISTS {runs_workflow_index} ON {runs} (workflow, status, seq)",
    "runs_parent_index": "CREATE INDEX IF NOT EXISTS {runs_parent_index} ON {runs} (parent_run_id)",
}  # fmt: skip
"""The ``runs`` indexes only queries use (writing a page never reads through them): a
rebuild makes them once at the end rather than row by row."""
CREATE = (
    "CREATE TABLE IF NOT EXISTS {runs} ("
    + ", ".join(f"{column} {_RUN_TYPES[column]}" for column in COLUMNS)
    + ")",
    *QUERY_INDEXES.values(),
    "CREATE TABLE IF NOT EXISTS {watchers} (topic TEXT NOT NULL, run_id TEXT NOT NULL, "
    "PRIMARY KEY (topic, run_id))",
    "CREATE INDEX IF NOT EXISTS {watchers_run_index} ON {watchers} (run_id)",
    "CREATE TABLE IF NOT EXISTS {timers} (run_id TEXT PRIMARY KEY, due_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {timers_due_index} ON {timers} (due_at)",
    "CREATE TABLE IF NOT EXISTS {step_stats} (workflow TEXT NOT NULL, step TEXT NOT NULL, "
    "completions BIGINT NOT NULL, failures BIGINT NOT NULL, retries BIGINT NOT NULL, "
    "histogram TEXT NOT NULL, max_seconds DOUBLE PRECISION NOT NULL, PRIMARY KEY (workflow, step))",
    "CREATE TABLE IF NOT EXISTS {workflow_stats} (workflow TEXT NOT NULL, status TEXT NOT NULL, "
    "count BIGINT NOT NULL, histogram TEXT NOT NULL, max_seconds DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (workflow, status))",
    "CREATE TABLE IF NOT EXISTS {models} (name TEXT PRIMARY KEY, version INTEGER NOT NULL)",
)
SIDE_TABLES = ("models",)
"""Tables beside the models: their versions (kept on rebuild)."""
UPSERT_RUN = (
    "INSERT INTO {runs} (" + ", ".join(COLUMNS) + ") VALUES ("
    + ", ".join("?" for _ in COLUMNS) + ") ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "run_id")
)  # fmt: skip
UPSERT_STEP_STATS = (
    "INSERT INTO {step_stats} (workflow, step, completions, failures, retries, histogram, "
    "max_seconds) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow, step) DO UPDATE SET "
    "completions = excluded.completions, failures = excluded.failures, "
    "retries = excluded.retries, histogram = excluded.histogram, "
    "max_seconds = excluded.max_seconds"
)
UPSERT_WORKFLOW_STATS = (
    "INSERT INTO {workflow_stats} (workflow, status, count, histogram, max_seconds) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workflow, status) DO UPDATE SET "
    "count = excluded.count, histogram = excluded.histogram, max_seconds = excluded.max_seconds"
)
CAS_TRACKING = (
    "INSERT INTO {tracking} AS t (application_name, notification_id) VALUES (?, ?) "
    "ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id "
    "WHERE t.notification_id = ? RETURNING notification_id"
)


def micros(moment: datetime | None) -> int | None:
    """A time as integer microseconds since the epoch (``None`` stays ``None``)."""
    return None if moment is None else to_micros(moment)


def moment(value: int | None) -> datetime | None:
    """Integer microseconds since the epoch as an aware UTC time (``None`` stays ``None``)."""
    return None if value is None else from_micros(value)


_VALUES = operator.attrgetter(*COLUMNS)
"""A row's fields in column order, in one call (a rebuild stores a row per run)."""
_TIME_INDEXES = tuple(index for index, column in enumerate(COLUMNS) if column in _TIMES)
_JSON_INDEXES = tuple(index for index, column in enumerate(COLUMNS) if column in _JSON)
_STATUS_INDEX = COLUMNS.index("status")
_STATE_INDEX = COLUMNS.index("state")


def row_to_record(row: RunRow) -> tuple[Any, ...]:
    """A row as the tuple of column values stored (``None`` stays ``NULL``, but the
    ``state`` column always holds an object)."""
    values = list(_VALUES(row))
    for index in _TIME_INDEXES:
        value = values[index]
        if value is not None:
            values[index] = to_micros(value)
    for index in _JSON_INDEXES:
        value = values[index]
        if value is not None or index == _STATE_INDEX:
            values[index] = orjson.dumps(value).decode()
    values[_STATUS_INDEX] = str(values[_STATUS_INDEX])
    return tuple(values)


_NEW: Any = object()
"""Marks a run the page started: it has no rows elsewhere to delete."""


@final
@dataclass(slots=True)
class EncodedRows:
    """A page's rows as the SQL views store them: the ``runs`` records, and what
    changes in ``watchers`` and ``timers``. Plain tuples: cheap to send to another
    process (a rebuild's helper encodes the rows it folds)."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    stale_watchers: list[tuple[str]] = field(default_factory=list)
    """Runs whose ``watchers`` rows are deleted (they may have one)."""
    stale_timers: list[tuple[str]] = field(default_factory=list)
    watchers: list[tuple[str, str]] = field(default_factory=list)
    timers: list[tuple[str, int]] = field(default_factory=list)

    def extend(self, other: EncodedRows) -> None:
        """Add another share's rows of the same page (they are of other runs)."""
        self.records += other.records
        self.stale_watchers += other.stale_watchers
        self.stale_timers += other.stale_timers
        self.watchers += other.watchers
        self.timers += other.timers


def encode_rows(rows: Sequence[RunRow], previous: Mapping[str, RunRow] | None) -> EncodedRows:
    """The rows a page leaves, as stored. With the rows as they were before the page
    (``previous``; runs the page started absent), only what existed is deleted."""
    olds = [None if previous is None else previous.get(r.run_id, _NEW) for r in rows]
    return EncodedRows(
        records=[row_to_record(r) for r in rows],
        stale_watchers=[(r.run_id,) for r, old in zip(rows, olds, strict=True)
                        if old is None or (old is not _NEW and watcher_topic(old))],
        stale_timers=[(r.run_id,) for r, old in zip(rows, olds, strict=True)
                      if old is None or (old is not _NEW and timer_due(old))],
        watchers=[(t, r.run_id) for r in rows if (t := watcher_topic(r)) is not None],
        timers=[(r.run_id, to_micros(d)) for r in rows if (d := timer_due(r)) is not None],
    )  # fmt: skip


def record_to_row(record: Any) -> RunRow:
    """A stored record (name-indexable) back as a row."""
    values: dict[str, Any] = {}
    for column in COLUMNS:
        value = record[column]
        if column in _JSON:
            value = None if value is None else orjson.loads(value)
        elif column in _TIMES:
            value = moment(value)
        elif column == "status":
            value = RunStatus(value)
        values[column] = value
    return RunRow(**values)


def _histogram_text(histogram: dict[str, int]) -> str:
    return orjson.dumps(histogram, option=orjson.OPT_SORT_KEYS).decode()


def step_stats_record(stats: StepStats) -> tuple[Any, ...]:
    return (
        stats.workflow, stats.step, stats.completions, stats.failures, stats.retries,
        _histogram_text(stats.histogram), stats.max_seconds,
    )  # fmt: skip


def record_to_step_stats(record: Any) -> StepStats:
    return StepStats(
        record["workflow"], record["step"], record["completions"], record["failures"],
        record["retries"], orjson.loads(record["histogram"]), record["max_seconds"],
    )  # fmt: skip


def workflow_stats_record(stats: WorkflowStats) -> tuple[Any, ...]:
    histogram = _histogram_text(stats.histogram)
    return (stats.workflow, stats.status, stats.count, histogram, stats.max_seconds)


def record_to_workflow_stats(record: Any) -> WorkflowStats:
    return WorkflowStats(
        record["workflow"], record["status"], record["count"],
        orjson.loads(record["histogram"]), record["max_seconds"],
    )  # fmt: skip
