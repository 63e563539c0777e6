"""Count the SQL statements and transactions a process sends, by wrapping its drivers.

Nothing in stemlog is changed: :func:`install` wraps psycopg's
``Cursor.execute`` / ``executemany`` (``Connection.execute`` goes through
them) and the connection's internal command path (``BEGIN``, ``COMMIT``,
``ROLLBACK`` that psycopg sends itself), and ``sqlite3.connect`` so that
every new SQLite connection reports each statement through
``set_trace_callback``. DBOS talks to PostgreSQL through SQLAlchemy over
psycopg and to SQLite through ``sqlite3``, so it is counted the same way.

What is counted:

* **statement**: one call that goes to the server. On PostgreSQL that is a
  round trip: one ``execute``, one ``executemany`` (psycopg pipelines its rows
  and syncs once), or one command psycopg sends by itself (``BEGIN``,
  ``COMMIT``, ``ROLLBACK``). On SQLite, one statement execution as
  ``sqlite3_trace`` reports it (an ``executemany`` of n rows is n executions;
  ``BEGIN``/``COMMIT`` issued by the ``sqlite3`` module are included).
* **transaction**: one ``COMMIT`` or ``ROLLBACK`` (ending an explicit
  transaction, read-only or not), plus one for every statement sent outside a
  transaction block in autocommit mode (PostgreSQL and SQLite run each such
  statement as a transaction of its own): the transactions the process asks
  for. PostgreSQL's ``pg_stat_database.xact_commit + xact_rollback`` counts
  these and two kinds more, which are counted apart here:
* **connection**: a psycopg connection made (a backend runs a transaction to
  start);
* **notification**: a NOTIFY received on a LISTEN connection (the listening
  backend runs a transaction to read the notification queue each time it is
  signalled — at most once per notification, less when several arrive
  together), whether the process then uses it or ignores it.

Connections registered with :func:`exclude` (a benchmark's own monitoring) are
not counted. With ``texts=True`` the counter also keeps the statements by
their text (whitespace folded, 160 characters; the log tables of stemlog's
partitions under one name, ``stemlog[_p<k>]_events``), for ``--explain``
breakdowns.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import sqlite3
import threading
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

_WHITESPACE = re.compile(r"\s+")
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_LISTS = re.compile(r"\?(?:, ?\?)+")
_PARTITIONS = re.compile(r"stemlog(?:_p\d+)?_events")
_ENDS = ("COMMIT", "ROLLBACK", "END")


class Counts:
    """Statements and transactions of this process (thread-safe enough: a lock per bump)."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.connections = 0
        self.notifications = 0
        self.texts: Counter[str] | None = None
        self._lock = threading.Lock()
        self._names: dict[int, tuple[Any, str]] = {}

    def bump(self, text: Any, *, transaction: bool, rows: int = 1, bound: bool = False) -> None:
        with self._lock:
            self.statements += 1
            if transaction:
                self.transactions += 1
            if self.texts is not None:
                self.texts[self._text(text, rows, bound)] += 1

    def _text(self, query: Any, rows: int, literal_values: bool) -> str:
        if isinstance(query, str | bytes):
            raw = query.decode() if isinstance(query, bytes) else query
        else:  # a psycopg Composed/SQL: rendered once per object
            known = self._names.get(id(query))
            if known is not None and known[0] is query:
                raw = known[1]
            else:
                try:
                    raw = query.as_string(None)
                except Exception:
                    raw = repr(query)
                self._names[id(query)] = (query, raw)
        text = _WHITESPACE.sub(" ", raw).strip()
        if literal_values:  # sqlite3 traces statements with their values bound
            text = _LISTS.sub("?, ...", _LITERALS.sub("?", text))
        text = _PARTITIONS.sub("stemlog[_p<k>]_events", text)[:160]
        return f"{text}  [executemany]" if rows != 1 else text

    def snapshot(self) -> dict[str, Any]:
        """The counts so far (texts too when kept), as a JSON-able dict."""
        texts: dict[str, int] = {}
        if self.texts is not None:
            for _ in range(5):  # another thread may add a text meanwhile
                with contextlib.suppress(RuntimeError):
                    texts = dict(self.texts)
                    break
        return {"statements": self.statements, "transactions": self.transactions,
                "connections": self.connections, "notifications": self.notifications,
                "texts": texts}  # fmt: skip

    def bump_other(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)


COUNTS = Counts()
_EXCLUDED: weakref.WeakSet[Any] = weakref.WeakSet()
_EXCLUDED_IDS: set[int] = set()
_INSTALLED = False


def exclude(connection: Any) -> Any:
    """Do not count this connection's statements (psycopg or sqlite3); returns it."""
    if isinstance(connection, sqlite3.Connection):
        _EXCLUDED_IDS.add(id(connection))
    elif connection not in _EXCLUDED:
        _EXCLUDED.add(connection)
        if _INSTALLED:
            COUNTS.bump_other("connections", -1)  # it was counted when it was made
    return connection


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after - before`` of two snapshots (texts too)."""
    texts = Counter(after.get("texts", {}))
    texts.subtract(before.get("texts", {}))
    numbers = ("statements", "transactions", "connections", "notifications")
    return {**{name: after.get(name, 0) - before.get(name, 0) for name in numbers},
            "texts": {k: v for k, v in texts.items() if v}}  # fmt: skip


def install(*, texts: bool = False) -> Counts:
    """Wrap psycopg and sqlite3 in this process (once); returns the process's counts."""
    global _INSTALLED
    if texts and COUNTS.texts is None:
        COUNTS.texts = Counter()
    if _INSTALLED:
        return COUNTS
    _INSTALLED = True
    _install_psycopg()
    _install_sqlite()
    return COUNTS


def _install_psycopg() -> None:
    try:
        import psycopg
        from psycopg import pq
        from psycopg._connection_base import BaseConnection
    except ImportError:
        return
    idle = pq.TransactionStatus.IDLE

    def counted(connection: Any) -> bool:
        return connection not in _EXCLUDED

    def alone(connection: Any) -> bool:
        """A statement outside any transaction block, in autocommit: its own transaction."""
        return bool(connection.autocommit) and connection.pgconn.transaction_status == idle

    def wrap_execute(original: Any) -> Any:
        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            connection = self._conn
            if counted(connection):
                COUNTS.bump(query, transaction=alone(connection))
            return original(self, query, *args, **kwargs)

        return execute

    def wrap_execute_async(original: Any) -> Any:
        async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            connection = self._conn
            if counted(connection):
                COUNTS.bump(query, transaction=alone(connection))
            return await original(self, query, *args, **kwargs)

        return execute

    def wrap_many(original: Any) -> Any:
        def executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            connection = self._conn
            params_seq = list(params_seq)
            if counted(connection):
                COUNTS.bump(query, transaction=alone(connection), rows=len(params_seq))
            return original(self, query, params_seq, **kwargs)

        return executemany

    def wrap_many_async(original: Any) -> Any:
        async def executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            connection = self._conn
            params_seq = list(params_seq)
            if counted(connection):
                COUNTS.bump(query, transaction=alone(connection), rows=len(params_seq))
            return await original(self, query, params_seq, **kwargs)

        return executemany

    psycopg.Cursor.execute = wrap_execute(psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Cursor.executemany = wrap_many(psycopg.Cursor.executemany)  # type: ignore[method-assign]
    cursor_async = psycopg.AsyncCursor
    cursor_async.execute = wrap_execute_async(cursor_async.execute)  # type: ignore[method-assign]
    cursor_async.executemany = wrap_many_async(cursor_async.executemany)  # type: ignore[method-assign]

    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def counted_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS.bump_other("connections")
        return connect(cls, *args, **kwargs)

    psycopg.Connection.connect = classmethod(counted_connect)  # type: ignore[assignment,method-assign]
    psycopg.connect = psycopg.Connection.connect  # bound when psycopg was imported
    notifies = psycopg.Connection.notifies

    def counted_notifies(self: Any, *args: Any, **kwargs: Any) -> Any:
        for notify in notifies(self, *args, **kwargs):
            if counted(self):
                COUNTS.bump_other("notifications")
            yield notify

    psycopg.Connection.notifies = counted_notifies  # type: ignore[method-assign]
    command = BaseConnection._exec_command

    def exec_command(self: Any, cmd: Any, *args: Any, **kwargs: Any) -> Any:
        if counted(self):
            raw = cmd if isinstance(cmd, str | bytes) else b""
            word = (raw.decode() if isinstance(raw, bytes) else raw).lstrip().upper()
            ends = word.startswith(_ENDS) and not word.startswith("ROLLBACK TO")
            COUNTS.bump(cmd if raw else repr(cmd), transaction=ends)
        return command(self, cmd, *args, **kwargs)

    BaseConnection._exec_command = exec_command  # type: ignore[method-assign]


def _install_sqlite() -> None:
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = original(*args, **kwargs)
        holder = [connection]  # a cycle (sqlite3 connections take no weak references)

        def trace(statement: str) -> None:
            if statement.startswith("--"):
                return  # a statement inside a trigger
            this = holder[0]
            if id(this) in _EXCLUDED_IDS:
                return
            word = statement.lstrip()[:12].upper()
            if word.startswith("BEGIN"):
                transaction = False
            elif word.startswith(_ENDS) and not word.startswith("ROLLBACK TO"):
                transaction = True
            else:
                transaction = not this.in_transaction
            COUNTS.bump(statement, transaction=transaction, bound=True)

        connection.set_trace_callback(trace)
        return connection

    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]


def dump_at_exit(path: Path) -> None:
    """Write the counts to ``path`` as JSON when the process exits normally."""
    atexit.register(lambda: path.write_bytes(orjson.dumps(COUNTS.snapshot())))
