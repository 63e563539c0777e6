"""Shared fixtures: the anyio backends and the three stores.

``store_url`` yields a fresh store per test: ``memory://``, a SQLite file in
``tmp_path``, and, when ``STEMLOG_TEST_POSTGRES`` holds a DSN, a fresh schema in
that PostgreSQL database (dropped afterwards) — once with the log in one
partition, once in four.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_DSN = os.environ.get("STEMLOG_TEST_POSTGRES")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _postgres_schema_url(partitions: int | None = None) -> Iterator[str]:
    import psycopg

    assert POSTGRES_DSN is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_DSN else "?"
    split = "" if partitions is None else f"&partitions={partitions}"
    try:
        yield f"{POSTGRES_DSN}{separator}schema={schema}&pool_size=2{split}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """``memory``, ``sqlite``, ``postgres`` (one partition) or ``postgres4`` (four)."""
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'stemlog.db'}"
    else:
        if POSTGRES_DSN is None:
            pytest.skip("STEMLOG_TEST_POSTGRES is not set")
        yield from _postgres_schema_url(4 if kind == "postgres4" else None)


_POSTGRES = [pytest.param(kind, marks=pytest.mark.postgres) for kind in ("postgres", "postgres4")]
"""PostgreSQL with one partition and with four: every test of a store runs on both."""


@pytest.fixture(params=["memory", "sqlite", *_POSTGRES])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store; a fresh one per test."""
    yield from make_store_url(str(request.param), tmp_path)


@pytest.fixture(params=["sqlite", *_POSTGRES])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The stores that outlive an app (for restart tests)."""
    yield from make_store_url(str(request.param), tmp_path)


@pytest.fixture(params=["postgres", "postgres4"])
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema, with one partition and with four (skips without
    ``STEMLOG_TEST_POSTGRES``)."""
    yield from make_store_url(str(request.param), tmp_path)


@pytest.fixture(autouse=True)
def _no_fallback_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers in tests never claim on the fallback interval: every claim must come
    from a commit, a hint or a known due time, so a missing hint fails a test
    (by its timeout) instead of passing a couple of seconds late."""
    monkeypatch.setattr("stemlog.runtime.claimer.FALLBACK_CLAIM_SECONDS", 3600.0)
