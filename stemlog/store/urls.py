"""Store URLs: ``memory://``, ``sqlite:///path[?synchronous=normal]``, ``postgresql://...``.

A URL becomes the environment of stemlog's eventsourcing application. The
process environment is never read: an embedded library is configured by its
URL only (eventsourcing would otherwise let ``PERSISTENCE_MODULE`` and friends
leak in from ``os.environ``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, final
from urllib.parse import parse_qs, unquote, urlsplit

from stemlog.errors import InvalidStoreURLError

Backend = Literal["memory", "sqlite", "postgres"]


@final
@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A parsed store URL: which backend, and the eventsourcing environment for it."""

    url: str
    backend: Backend
    env: dict[str, str]


def parse_store_url(url: str) -> StoreConfig:
    """Parse a store URL.

    ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` name files;
    ``?synchronous=normal`` trades the last commits on power loss (never on a
    process crash) for about 3x faster single commits; ``?lock_timeout=S`` sets
    SQLite's busy timeout. ``postgresql://user:password@host:port/dbname``
    with optional ``?pool_size=N&schema=S``.

    Raises:
        InvalidStoreURLError: an unknown scheme or a malformed URL.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreURLError(str(url), "expected memory://, sqlite:///path or postgresql://")
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return StoreConfig(url, "memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if scheme == "sqlite":
        return StoreConfig(url, "sqlite", _sqlite_env(url, parts.path, query))
    if scheme in ("postgres", "postgresql"):
        return StoreConfig(url, "postgres", _postgres_env(url, query))
    raise InvalidStoreURLError(url, f"unknown scheme {parts.scheme!r}")


def _sqlite_env(url: str, path: str, query: dict[str, str]) -> dict[str, str]:
    if not path or path == "/":
        raise InvalidStoreURLError(url, "sqlite URLs name a file: sqlite:///path/to/file.db")
    db_name = unquote(path[1:])
    synchronous = query.get("synchronous", "full").lower()
    if synchronous not in ("full", "normal"):
        raise InvalidStoreURLError(url, "synchronous is 'full' (default) or 'normal'")
    factory = "SQLiteNormalSyncFactory" if synchronous == "normal" else "SQLiteFullSyncFactory"
    env = {"PERSISTENCE_MODULE": f"stemlog.store.sqlite:{factory}", "SQLITE_DBNAME": db_name}
    if "lock_timeout" in query:
        env["SQLITE_LOCK_TIMEOUT"] = query["lock_timeout"]
    return env


def _postgres_env(url: str, query: dict[str, str]) -> dict[str, str]:
    split = urlsplit(url)
    dbname = split.path.lstrip("/")
    if not dbname:
        raise InvalidStoreURLError(url, "postgresql URLs name a database: postgresql://host/db")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(dbname),
        "POSTGRES_HOST": split.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(split.port or 5432),
        "POSTGRES_USER": unquote(split.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(split.password or ""),
        "POSTGRES_POOL_SIZE": query.get("pool_size", "4"),
        "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", "8"),
        "POSTGRES_LOCK_TIMEOUT": query.get("lock_timeout", "10"),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"]
    return env


@contextmanager
def schema_lock(config: StoreConfig) -> Iterator[None]:
    """Serialise table creation between processes opening one PostgreSQL store.

    eventsourcing creates its tables, types and functions on open; processes
    doing so at the same moment fail with "tuple concurrently updated". A
    session advisory lock makes them take turns. Other stores need nothing.
    """
    if config.backend != "postgres":
        yield
        return
    import psycopg

    env = config.env
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
    ) as connection:  # fmt: skip
        connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))


_SCHEMA_LOCK_KEY = 0x5713_6C06  # "stemlog" schema creation
