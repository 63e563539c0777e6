"""The read models in the log's PostgreSQL database (tables ``stemlog_runs``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.sql import SQL, Composed, Identifier

from projections.views import schema
from projections.views.sql import SQLRunsView


class PostgresRunsView(SQLRunsView, PostgresTrackingRecorder):
    """The models in the PostgreSQL database of the log (tables ``stemlog_runs``, ...)."""

    def _begin_snapshot(self, cursor: Any) -> None:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        tables = (*schema.MODEL_TABLES, *schema.SIDE_TABLES)
        self._names = {n: Identifier(self.datastore.schema, f"stemlog_{n}") for n in tables}
        self._names |= {name: Identifier(f"stemlog_{name}") for name in schema.INDEXES}
        self._names["tracking"] = Identifier(self.datastore.schema, self.tracking_table_name)
        self._rendered: dict[str, Composed] = {}
        for template in schema.CREATE:
            self.sql_create_statements.append(self.render(template))

    def render(self, template: str) -> Composed:
        rendered = self._rendered.get(template)
        if rendered is None:
            text = template.replace("?", "%s")
            rendered = self._rendered[template] = SQL(text).format(**self._names)
        return rendered

    def transaction(self, *, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)

    def _drop_index(self, name: str) -> Composed:
        """An index is named with its schema to be dropped (it is created in its table's)."""
        index = Identifier(self.datastore.schema, f"stemlog_{name}")
        return SQL("DROP INDEX IF EXISTS {}").format(index)

    def _lock_stats(self, cursor: Any) -> None:
        """A transaction-scoped advisory lock: the stats rows are read, merged and
        written by one partition's projector at a time."""
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                       (f"{self.datastore.schema}.stemlog_stats",))  # fmt: skip

    def _select(self, template: str, params: Sequence[Any] = ()) -> list[Any]:
        """One read in autocommit: a round trip, no ``BEGIN`` and ``ROLLBACK`` around it."""
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self.render(template), params)
            return list(cursor.fetchall())

    def close(self) -> None:
        """The datastore is shared with the log's application, which closes it."""
