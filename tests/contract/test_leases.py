"""The leases' contract: one holder at a time, renewed by heartbeats, taken over on expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import pytest

from stemlog.clock import ManualClock
from stemlog.store.base import Leases
from stemlog.store.events import RunStore
from stemlog.store.leases import LocalLeases
from stemlog.store.urls import parse_store_url
from tests.contract.backends import OnMemory, OnPostgres, OnSQLite

pytestmark = pytest.mark.anyio
RUN = "0c9c9f5e-0000-4000-8000-000000000001"
OTHER = "0c9c9f5e-0000-4000-8000-000000000002"


class LeasesContract:
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    async def pair(self, url: str, clock: ManualClock) -> AsyncIterator[tuple[Leases, Leases]]:
        store = await anyio.to_thread.run_sync(lambda: RunStore(parse_store_url(url)))
        await anyio.to_thread.run_sync(store.backend.prepare, store.log)
        first = store.backend.leases("worker-a", 10.0, clock, store)
        # Two workers share one lease store: for in-process leases, a second view of the claims.
        second = (
            first.as_owner("worker-b")
            if isinstance(first, LocalLeases)
            else store.backend.leases("worker-b", 10.0, clock, store)
        )
        try:
            yield first, second
        finally:
            await anyio.to_thread.run_sync(store.close)

    async def test_one_holder_at_a_time(self, pair: tuple[Leases, Leases]) -> None:
        a, b = pair
        assert await a.claim(RUN)
        assert await a.claim(RUN)  # keeping a claim is claiming it again
        assert not await b.claim(RUN)
        assert await b.claim(OTHER)
        holder = await a.holder(RUN)
        assert holder is not None and holder[0] == "worker-a"
        assert set(await b.holders([RUN, OTHER, "nobody"])) == {RUN, OTHER}

    async def test_release_lets_another_worker_claim(self, pair: tuple[Leases, Leases]) -> None:
        a, b = pair
        assert await a.claim(RUN)
        await b.release(RUN)  # not b's claim: nothing happens
        assert not await b.claim(RUN)
        await a.release(RUN)
        assert await a.holder(RUN) is None
        assert await b.claim(RUN)

    async def test_an_expired_claim_is_taken_over_and_renewal_keeps_one(
        self, pair: tuple[Leases, Leases], clock: ManualClock
    ) -> None:
        a, b = pair
        assert await a.claim(RUN)
        assert await a.claim(OTHER)
        clock.advance(8)
        await a.renew()  # the heartbeat extends both claims by the full lease
        clock.advance(8)
        assert not await b.claim(RUN)
        holder = await b.holder(OTHER)
        assert holder is not None and holder[1] == clock.now() + timedelta(seconds=2)
        clock.advance(3)  # a stopped renewing: both claims expired
        assert await a.holders([RUN, OTHER]) == {}
        assert await b.claim(RUN)
        holder = await a.holder(RUN)
        assert holder is not None and holder[0] == "worker-b"


class TestMemoryLeases(OnMemory, LeasesContract):
    pass


class TestSQLiteLeases(OnSQLite, LeasesContract):
    pass


class TestPostgresLeases(OnPostgres, LeasesContract):
    pass
