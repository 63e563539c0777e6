"""One mixin per kind of store: each contract test class runs on all three.

As in eventsourcing's own persistence tests, a contract is a base class
whose tests use the ``url`` fixture; ``TestMemory...``, ``TestSQLite...`` and
``TestPostgres...`` subclasses give it a store of their kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_store_url


class OnMemory:
    @pytest.fixture
    def url(self, tmp_path: Path) -> Iterator[str]:
        yield from make_store_url("memory", tmp_path)


class OnSQLite:
    @pytest.fixture
    def url(self, tmp_path: Path) -> Iterator[str]:
        yield from make_store_url("sqlite", tmp_path)


@pytest.mark.postgres
class OnPostgres:
    @pytest.fixture
    def url(self, tmp_path: Path) -> Iterator[str]:
        yield from make_store_url("postgres", tmp_path)


@pytest.mark.postgres
class OnPartitionedPostgres:
    """PostgreSQL with the log in four partitions."""

    @pytest.fixture
    def url(self, tmp_path: Path) -> Iterator[str]:
        yield from make_store_url("postgres4", tmp_path)
