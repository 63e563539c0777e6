"""The workflow catalog: which workflows the apps on a store have registered.

An app records each definition it registers (name, version, kind,
fingerprint, declared steps) in a small table of the store, upserted on
registration. It lets a process that does not have the code — the command
line, a web server — start a run by name (the run records the version and
fingerprint a worker will check) and list the workflows (``stemlog
manifest``); a run started that way is driven by any worker that registered
that version. It is a directory, not a source of truth: the log never
depends on it, and a worker only drives the versions it has itself.

Blocking: call it in a worker thread (the store's ``blocking``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, final

import orjson

from stemlog.model.records import WorkflowKind

CATALOG_TABLE = "stemlog_workflows"


def catalog_ddl(table: str) -> str:
    """The catalog's table, in SQL that SQLite and PostgreSQL both take; created on
    open with the store's other tables."""
    return (f"CREATE TABLE IF NOT EXISTS {table} (name TEXT NOT NULL, version INTEGER NOT NULL, "
            "kind TEXT NOT NULL, fingerprint TEXT NOT NULL, steps TEXT NOT NULL, "
            "PRIMARY KEY (name, version))")  # fmt: skip


@final
@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One registered workflow version, as the catalog keeps it."""

    name: str
    version: int
    kind: WorkflowKind
    fingerprint: str
    steps: tuple[str, ...]
    """The declared steps of a flow (a script declares none)."""

    def manifest(self) -> dict[str, Any]:
        """The entry as ``WorkflowDefinition.manifest()`` describes a definition."""
        return {"name": self.name, "kind": str(self.kind), "version": self.version,
                "steps": list(self.steps), "fingerprint": self.fingerprint}  # fmt: skip


class Catalog(Protocol):
    """The store's table of registered workflows."""

    def record(self, entries: Sequence[CatalogEntry]) -> None:
        """Upsert these entries (a definition registered again replaces its row)."""
        ...

    def entries(self) -> list[CatalogEntry]:
        """Every entry, by name and version."""
        ...


@final
class MemoryCatalog:
    """The catalog of a ``memory://`` store: a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], CatalogEntry] = {}

    def record(self, entries: Sequence[CatalogEntry]) -> None:
        with self._lock:
            self._entries.update({(entry.name, entry.version): entry for entry in entries})

    def entries(self) -> list[CatalogEntry]:
        with self._lock:
            return [self._entries[key] for key in sorted(self._entries)]


class Transactional(Protocol):
    """What the SQL catalog needs of a datastore (eventsourcing's SQLite and
    PostgreSQL datastores both are one): a transaction yielding a cursor whose
    rows read by column name."""

    def transaction(self, *, commit: bool) -> AbstractContextManager[Any]: ...


@final
class SQLCatalog:
    """The catalog as a table in the store's database. The SQL is the same on SQLite
    and PostgreSQL but for the parameter mark and the table's qualified name, which
    the backend gives."""

    def __init__(self, datastore: Transactional, table: str, mark: str) -> None:
        self._datastore = datastore
        self._table = table
        self._mark = mark

    def record(self, entries: Sequence[CatalogEntry]) -> None:
        m = self._mark
        sql = (
            f"INSERT INTO {self._table} (name, version, kind, fingerprint, steps) "
            f"VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (name, version) DO UPDATE SET "
            "kind = excluded.kind, fingerprint = excluded.fingerprint, steps = excluded.steps"
        )
        rows = [(e.name, e.version, str(e.kind), e.fingerprint,
                 orjson.dumps(list(e.steps)).decode()) for e in entries]  # fmt: skip
        with self._datastore.transaction(commit=True) as cursor:
            cursor.executemany(sql, rows)

    def entries(self) -> list[CatalogEntry]:
        sql = (f"SELECT name, version, kind, fingerprint, steps FROM {self._table} "
               "ORDER BY name, version")  # fmt: skip
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
        return [
            CatalogEntry(row["name"], int(row["version"]), WorkflowKind(row["kind"]),
                         row["fingerprint"], tuple(orjson.loads(row["steps"])))
            for row in rows
        ]  # fmt: skip
