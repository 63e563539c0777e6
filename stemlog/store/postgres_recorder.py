"""The PostgreSQL recorder: one round trip per append, the run index beside the log.

An append is one call of the server-side function ``stemlog_append``: it
takes the log table's lock (so notification ids commit in order and a
follower never skips a fact — eventsourcing's own ``POSTGRES_ENABLE_DB_FUNCTIONS``
path does not take it), inserts the facts, settles the run index with the
rules of :func:`stemlog.store.index.settle`, and notifies: the log's channel
(followers read on) and, when the append left a run that any worker may claim
now, the ready channel (idle workers claim) — with this process's ``origin``
as payload, so a process ignores the hints of its own appends. Every other index statement is a
single autocommitted statement too: a claim of a batch, a renewal of every
claim of a worker, a read.

eventsourcing retries a failed call ten times inside it (two seconds and
more while the server is away); this recorder makes each call once, and the
store retries on its own, with backoff, up to the app's ``store_timeout``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from stemlog.model.children import child_topic
from stemlog.store.catalog import CATALOG_TABLE
from stemlog.store.index import (
    AppendConflict,
    AppendResult,
    Claimed,
    ClaimMode,
    ClaimRound,
    IndexEntry,
    IndexRow,
)
from stemlog.store.postgres_sql import (
    APPEND,
    CALL_APPEND,
    CLAIM,
    CLOCK_MICROS,
    DDL,
    FOLLOW,
    FOLLOWERS_TABLE,
    INDEX_TABLE,
    PARTITION,
    READY_CHANNEL,
    UNFOLLOW,
)


def _once(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method without eventsourcing's retry decorator (``functools.wraps`` keeps it)."""
    return getattr(method, "__wrapped__", method)


class OnceRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, each call made once (the recorder of the
    partitions after the first: they are read through it, appended to by the first's
    append function)."""

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


class StemlogPostgresRecorder(OnceRecorder):
    """The recorder of partition 0: the run index
    (:class:`~stemlog.store.index.IndexedRecorder`) and the append of every partition."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.origin = os.urandom(8).hex()
        """This process's name in its NOTIFY payloads (its own hints are not news to it)."""
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_lock = threading.Lock()
        self._event_tables: list[Composed] = []
        """Each partition's events table (set with the append function)."""
        self._names: dict[str, Composable] = {
            "index": _qualified(datastore, INDEX_TABLE),
            "meta": _qualified(datastore, "stemlog_run_index_meta"),
            "catalog": _qualified(datastore, CATALOG_TABLE),
            "due": _qualified(datastore, "stemlog_due"),
            "append": _qualified(datastore, "stemlog_append"),
            "event_type": _qualified(datastore, self.stored_event_type_name),
            "followers": _qualified(datastore, FOLLOWERS_TABLE),
            "clock_micros": SQL(CLOCK_MICROS),
            "ready_channel": Literal(READY_CHANNEL),
            "lock_timeout": Literal(f"{datastore.lock_timeout}s"),
        }
        for statement in DDL:
            self.sql_create_statements.append(self._sql(statement))
        self._call_append = self._sql(CALL_APPEND)
        self._claim = self._sql(CLAIM)
        self.follow_statement = self._sql(FOLLOW)
        """Say (on any connection) that ``origin`` follows the log for ``micros`` more."""
        self.unfollow_statement = self._sql(UNFOLLOW)
        """Say that ``origin`` no longer follows the log (and forget expired followers)."""

    def create_append_function(self, partitions: Sequence[tuple[str, str]]) -> None:
        """(Re)create ``stemlog_append`` for these partitions' ``(events table, channel)``,
        partition 0 first (blocking; in the schema lock)."""
        schema = Identifier(self.datastore.schema)
        blocks = [
            SQL(PARTITION).format(
                number=Literal(number),
                table=SQL("{0}.{1}").format(schema, Identifier(table)),
                channel=Literal(channel),
            )
            for number, (table, channel) in enumerate(partitions)
        ]
        self._event_tables = [SQL("{0}.{1}").format(schema, Identifier(table))
                              for table, _ in partitions]  # fmt: skip
        first = self._event_tables[0]
        names = {**self._names, "partitions": SQL("").join(blocks), "first_table": first}
        statement = SQL(APPEND).format(**names)
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement)

    def _sql(self, template: str) -> Composed:
        return SQL(template).format(**self._names)

    # -- the index -----------------------------------------------------------------------

    def append(
        self,
        stored_events: Sequence[StoredEvent],
        partitions: Sequence[int],
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        inserting: bool = True,
    ) -> AppendResult:
        events = [
            self.construct_pg_stored_event(
                e.originator_id, e.originator_version, e.topic, e.state
            )
            for e in stored_events
        ]  # fmt: skip
        params = (
            events,
            list(partitions),
            [e.run_id for e in entries],
            [e.version for e in entries],
            [e.served for e in entries],
            [e.ready_at for e in entries],
            [e.waiting_on for e in entries],
            [e.mode.value for e in entries],
            [e.waits_for_child for e in entries],
            [e.wakes_parent for e in entries],
            [child_topic(e.run_id) if e.mode is ClaimMode.END else None for e in entries],
            owner,
            claim_until,
            now,
            inserting,
            self.origin,
        )
        try:
            row = self._write(self._call_append, params)
        except AppendConflict as conflict:
            taken = self._taken(stored_events, partitions)
            raise AppendConflict(str(conflict), taken) from conflict
        return AppendResult(list(row["ids"] or []), frozenset(row["held"] or ()),
                            bool(row["claimable"]))  # fmt: skip

    def put_index(
        self,
        entries: Sequence[IndexEntry],
        owner: str | None,
        claim_until: int,
        now: int,
        *,
        insert: bool = False,
    ) -> AppendResult:
        return self.append([], [], entries, owner, claim_until, now, inserting=insert)

    def claim(
        self, owner: str, now: int, claim_until: int, limit: int, serves: Sequence[str]
    ) -> ClaimRound:
        if not serves:
            return ClaimRound([], None)
        params = {"now": now, "serves": list(serves), "limit": limit, "owner": owner,
                  "until": claim_until}  # fmt: skip
        claimed: list[Claimed] = []
        next_due = None
        for row in self._fetch(self._claim, params):
            if row["run_id"] is None:
                next_due = row["next_due"]
                continue
            previous = row["previous"]
            taken = None if previous in (None, owner) else (previous, row["previous_expires"] or 0)
            claimed.append(Claimed(row["run_id"], taken, row["version"]))
        return ClaimRound(claimed, next_due)

    def renew(self, owner: str, claim_until: int) -> None:
        self._fetch(self._sql(
            "UPDATE {index} SET claim_expires = %s, due_at = {due}(ready_at, claimed_by, %s) "
            "WHERE claimed_by = %s"
        ), (claim_until, claim_until, owner))  # fmt: skip

    def release_owners(self, owners: Sequence[str]) -> None:
        if owners:
            self._fetch(self._sql(
                "UPDATE {index} SET claimed_by = NULL, claim_expires = NULL, due_at = ready_at "
                "WHERE claimed_by = ANY(%s)"
            ), (list(owners),))  # fmt: skip

    def claimers(self) -> list[str]:
        sql = "SELECT DISTINCT claimed_by FROM {index} WHERE claimed_by IS NOT NULL"
        return sorted(str(row["claimed_by"]) for row in self._fetch(self._sql(sql), ()))

    def waiting_on(self, topic: str) -> list[str]:
        sql = self._sql("SELECT run_id FROM {index} WHERE waiting_on = %s")
        return [str(row["run_id"]) for row in self._fetch(sql, (topic,))]

    def holders(self, run_ids: Sequence[str], now: int) -> dict[str, tuple[str, int]]:
        if not run_ids:
            return {}
        sql = self._sql(
            "SELECT run_id, claimed_by, claim_expires FROM {index} WHERE run_id = ANY(%s) "
            "AND claimed_by IS NOT NULL AND claim_expires >= %s"
        )
        rows = self._fetch(sql, (list(run_ids), now))
        return {str(r["run_id"]): (str(r["claimed_by"]), int(r["claim_expires"])) for r in rows}

    def index_rows(self) -> list[IndexRow]:
        sql = self._sql(
            "SELECT run_id, version, served, ready_at, due_at, claimed_by, claim_expires, "
            "waiting_on "
            "FROM {index}"
        )
        return [IndexRow(**row) for row in self._fetch(sql, ())]

    def index_backfilled(self) -> bool:
        return bool(self._fetch(self._sql("SELECT backfilled FROM {meta}"), ()))

    def mark_backfilled(self) -> None:
        self._fetch(self._sql("INSERT INTO {meta} (backfilled) SELECT 1 WHERE NOT EXISTS "
                              "(SELECT 1 FROM {meta})"), ())  # fmt: skip

    def _write(self, statement: Composed, params: Any) -> Any:
        """The append on the writer's own connection (appends never wait for a pooled
        connection behind reads, and keep their prepared statement); made again when
        a fault broke it."""
        with self._writer_lock:
            connection = self._writer
            try:
                if connection is None or connection.closed:
                    connection = self._writer = self._connect_writer()
                with connection.cursor() as cursor:
                    cursor.execute(statement, params, prepare=True)
                    return cursor.fetchone()
            except psycopg.IntegrityError as error:
                raise AppendConflict(str(error), frozenset()) from error
            except psycopg.Error:
                if connection is not None and connection.broken:
                    self._writer = None
                    connection.close()
                raise

    def _connect_writer(self) -> psycopg.Connection[Any]:
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
        timeout = self.datastore.pool.timeout
        connection = psycopg.connect(autocommit=True, connect_timeout=max(int(timeout), 1),
                                     **kwargs)  # fmt: skip
        idle = int(self.datastore.idle_in_transaction_session_timeout * 1000)
        connection.execute(f"SET idle_in_transaction_session_timeout = '{idle}ms'")
        return connection

    def close_writer(self) -> None:
        """Close the writer's connection (the store closes)."""
        with self._writer_lock:
            connection, self._writer = self._writer, None
        if connection is not None:
            connection.close()

    def _taken(
        self, stored_events: Sequence[StoredEvent], partitions: Sequence[int]
    ) -> frozenset[UUID]:
        """The runs whose version in ``stored_events`` another writer has stored: one
        statement over the partitions concerned (after an append failed on a taken
        version, which PostgreSQL reports for the first one only)."""
        wanted: dict[int, tuple[list[UUID], list[int]]] = {}
        for event, partition in zip(stored_events, partitions, strict=True):
            ids, versions = wanted.setdefault(partition, ([], []))
            ids.append(UUID(str(event.originator_id)))
            versions.append(event.originator_version)
        selects = [
            SQL("SELECT originator_id FROM {0} WHERE (originator_id, originator_version) IN "
                "(SELECT * FROM unnest(%s::uuid[], %s::bigint[]))").format(self._event_tables[n])
            for n in wanted
        ]  # fmt: skip
        params = [array for pair in wanted.values() for array in pair]
        rows = self._fetch(SQL(" UNION ").join(selects), params)
        return frozenset(row["originator_id"] for row in rows)

    def _fetch(self, statement: Composed, params: Any) -> list[Any]:
        """One autocommitted statement (no BEGIN, no ROLLBACK), its rows."""
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []


def _qualified(datastore: PostgresDatastore, name: str) -> Composed:
    return SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(name))


def datastore_of(log: Application[UUID]) -> PostgresDatastore:
    """The PostgreSQL datastore of a partition's application."""
    recorder = log.recorder
    assert isinstance(recorder, PostgresApplicationRecorder), "a PostgreSQL store's recorder"
    return recorder.datastore


def own_connection_settings(datastore: PostgresDatastore) -> dict[str, Any]:
    """The connection settings of the store's pool, for a connection of one's own
    (plain tuple rows)."""
    kwargs = datastore.pool.kwargs
    assert isinstance(kwargs, dict), "eventsourcing passes the pool its settings as a dict"
    return {key: value for key, value in kwargs.items() if key != "row_factory"}
