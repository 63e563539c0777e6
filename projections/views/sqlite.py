"""The read models in the log's SQLite file (tables ``stemlog_runs``, ...)."""

from __future__ import annotations

from typing import Any

from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from projections.views import schema
from projections.views.sql import SQLRunsView


class SQLiteRunsView(SQLRunsView, SQLiteTrackingRecorder):
    """The models in the SQLite file of the log (tables ``stemlog_runs``, ...)."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        names = (*schema.MODEL_TABLES, *schema.INDEXES, *schema.SIDE_TABLES)
        self._names = {name: f"stemlog_{name}" for name in names}
        self._names["tracking"] = "tracking"
        self._rendered: dict[str, str] = {}
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        return [*statements, *(self.render(t) for t in schema.CREATE)]

    def render(self, template: str) -> str:
        rendered = self._rendered.get(template)
        if rendered is None:
            rendered = self._rendered[template] = template.format(**self._names)
        return rendered

    def transaction(self, *, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)

    def close(self) -> None:
        """The datastore is shared with the log's application, which closes it."""
