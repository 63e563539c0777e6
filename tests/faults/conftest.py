"""Fault tests: they start what they break (a private PostgreSQL, a small tmpfs)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.server import PrivatePostgres, server_binaries


@pytest.fixture
def anyio_backend() -> str:
    """The client app runs on trio here; the worker processes run on asyncio."""
    return "trio"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    root = Path(tempfile.mkdtemp(prefix="stemlog-pg-"))
    server = PrivatePostgres(root, binaries)
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.destroy()
