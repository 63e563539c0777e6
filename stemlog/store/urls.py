"""Store URLs: ``memory://``, ``sqlite:///path[?synchronous=normal]``, ``postgresql://...``.

A URL becomes a backend (:mod:`stemlog.store.memory`, :mod:`stemlog.store.sqlite`,
:mod:`stemlog.store.postgres`) holding the environment of stemlog's
eventsourcing application. The process environment is never read: an
embedded library is configured by its URL only (eventsourcing would otherwise
let ``PERSISTENCE_MODULE`` and friends leak in from ``os.environ``).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from stemlog.errors import InvalidStoreURLError
from stemlog.store.base import Backend
from stemlog.store.memory import MemoryBackend
from stemlog.store.postgres import PostgresBackend
from stemlog.store.sqlite import SQLiteBackend


def parse_store_url(url: str) -> Backend:
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
        return MemoryBackend(url)
    if scheme == "sqlite":
        return SQLiteBackend.from_url(url, parts.path, query)
    if scheme in ("postgres", "postgresql"):
        return PostgresBackend.from_url(url, query)
    raise InvalidStoreURLError(url, f"unknown scheme {parts.scheme!r}")
