"""PostgreSQL's LISTEN thread: it looks at what is wanted when told to (not only at its
tick), hears NOTIFYs while it sleeps on the socket, and ends when its task does."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from stemlog.store import postgres_hints
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url
from tests.conftest import POSTGRES_DSN, make_store_url

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield from make_store_url("postgres", tmp_path)


@pytest.fixture
async def store(url: str) -> AsyncIterator[RunStore]:
    store = await anyio.to_thread.run_sync(lambda: RunStore(parse_store_url(url)))
    try:
        yield store
    finally:
        await anyio.to_thread.run_sync(store.close)


def _listeners(channel: str) -> int:
    """Connections whose last statement was a LISTEN on ``channel``."""
    assert POSTGRES_DSN is not None
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (SQL("LISTEN {0}").format(Identifier(channel)).as_string(connection),),
        ).fetchone()
    return int(row[0]) if row else 0


def _notify(channel: str) -> None:
    assert POSTGRES_DSN is not None
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(SQL("NOTIFY {0}, 'another process'").format(Identifier(channel)))


async def _until(condition: Any, seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not await anyio.to_thread.run_sync(condition):
            await anyio.sleep(0.02)


async def test_the_thread_listens_when_told_hears_hints_and_ends_with_its_task(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a tick this long, only the waker can make the thread look again in time.
    monkeypatch.setattr(postgres_hints, "_LISTEN_TICK", 600.0)
    recorder = store.partition_recorder(0)
    assert isinstance(recorder, PostgresApplicationRecorder)
    channel = recorder.channel_name
    hints = store.backend.hints(store)
    assert hints is not None
    heard: list[str] = []
    following = False
    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(
            hints.run, lambda: heard.append("log"), lambda: heard.append("ready"),
            wants_log=lambda: following, wants_ready=False,
        ))  # fmt: skip
        await _until(lambda: heard == ["log", "ready"])  # connected: both look once

        following = True
        hints.reconsider()
        await _until(lambda: _listeners(channel) == 1)
        await _until(lambda: heard.count("log") == 2)  # newly heard: the log is read once

        await anyio.to_thread.run_sync(_notify, channel)
        await _until(lambda: heard.count("log") == 3)
        assert heard.count("ready") == 1

        following = False
        hints.reconsider()
        await _until(lambda: _connections_of(store))  # UNLISTENed, no longer following
        group.cancel_scope.cancel()
    # The thread was abandoned on cancel and woken to end: its connection closes now,
    # not at its next tick.
    await _until(lambda: not _connections_of(store), 10.0)


def _connections_of(store: RunStore) -> bool:
    """Whether the LISTEN thread's connection is still open (its last statement said
    that it no longer follows the log)."""
    assert POSTGRES_DSN is not None
    recorder = store.partition_recorder(0)
    assert isinstance(recorder, PostgresApplicationRecorder)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
            (f'DELETE FROM "{recorder.datastore.schema}"."stemlog_followers"%',),
        ).fetchone()
    return bool(row and row[0])
