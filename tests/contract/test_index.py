"""The run index's contract, on every backend: rows kept with the facts, claims taken
in appends and in batches, one holder at a time, takeover when a claim runs out,
waiters for ``emit``, parents made due when their child ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from stemlog.clock import ManualClock, to_micros
from stemlog.model.children import child_topic
from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.index import ClaimMode, IndexEntry, IndexRow, served_key
from stemlog.store.urls import parse_store_url
from tests.contract.backends import OnMemory, OnPartitionedPostgres, OnPostgres, OnSQLite

pytestmark = pytest.mark.anyio
T = datetime(2030, 1, 1, tzinfo=UTC)
SERVES = [served_key("w", 1)]
A, B = "host-a:1:aaaaaa", "host-b:2:bbbbbb"


def new_run(*, workflow: str = "w", parent: str | None = None, at: datetime = T) -> Run:
    return Run.begin(
        run_id=uuid.uuid4(), at=at, workflow=workflow,
        kind="flow", workflow_version=1, params={}, fingerprint="f", parent_run_id=parent,
        policy=None, ttl=None, forked_from=None,
    )  # fmt: skip


class IndexContract:
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(T)

    @pytest.fixture
    async def store(self, url: str, clock: ManualClock) -> AsyncIterator[RunStore]:
        store = await anyio.to_thread.run_sync(lambda: RunStore(parse_store_url(url), clock=clock))
        store.serve_claims(A, 10.0)
        try:
            yield store
        finally:
            await anyio.to_thread.run_sync(store.close)

    async def row(self, store: RunStore, run: Run) -> IndexRow | None:
        rows = await store.blocking(store.index.index_rows)
        return next((r for r in rows if r.run_id == run.state.run_id), None)

    async def claim_as(self, store: RunStore, owner: str, limit: int = 10) -> list[str]:
        now, until = store._claim_window()
        found = await store.blocking(store.index.claim, owner, now, until, limit, SERVES)
        return [c.run_id for c in found.claimed]

    async def test_a_start_that_takes_the_claim_holds_it(self, store: RunStore) -> None:
        run = new_run()
        assert await store.commit(run, claim=ClaimMode.TAKE)
        holders = await store.holders([run.state.run_id])
        assert holders == {run.state.run_id: (A, T + timedelta(seconds=10))}
        assert await self.claim_as(store, B) == []  # held: nobody else may claim it

    async def test_claim_rounds_take_batches_earliest_first(
        self, store: RunStore, clock: ManualClock
    ) -> None:
        runs = []
        for _ in range(5):
            run = new_run(at=clock.now())  # older runs are claimed first
            await store.commit(run)  # KEEP: nobody holds it, it is due now
            runs.append(run)
            clock.advance(1)
        first = await self.claim_as(store, B, limit=3)
        assert first == [run.state.run_id for run in runs[:3]]
        assert await self.claim_as(store, A, limit=3) == [r.state.run_id for r in runs[3:]]
        assert await self.claim_as(store, A) == []
        round_ = await store.claim(10, SERVES)
        assert round_.next_due == to_micros(clock.now() + timedelta(seconds=10))

    async def test_a_claim_round_reports_the_version_it_claimed_at(self, store: RunStore) -> None:
        run = new_run()
        await store.commit(run)
        run.start_step(("one", 0), 1, run.state.created_at)
        await store.commit(run)  # version 2, still due: nobody holds it
        (claimed,) = (await store.claim(10, SERVES)).claimed
        assert (claimed.run_id, claimed.version) == (run.state.run_id, 2)

    async def test_only_served_workflow_versions_are_claimed(self, store: RunStore) -> None:
        other = new_run(workflow="other")
        await store.commit(other)
        assert await self.claim_as(store, B) == []
        assert (await store.claim(10, [served_key("other", 1)])).claimed[0].run_id == str(
            other.state.run_id
        )

    async def test_a_claim_that_ran_out_is_taken_over_and_renewal_keeps_one(
        self, store: RunStore, clock: ManualClock
    ) -> None:
        run = new_run()
        await store.commit(run, claim=ClaimMode.TAKE)
        clock.advance(8)
        await store.renew()  # the heartbeat extends the claim by a full lease
        clock.advance(8)
        assert await self.claim_as(store, B) == []
        clock.advance(3)  # A stopped renewing: its claim ran out
        assert await store.holders([run.state.run_id]) == {}
        now, until = store._claim_window()
        taken = await store.blocking(store.index.claim, B, now, until, 10, SERVES)
        assert [c.run_id for c in taken.claimed] == [run.state.run_id]
        assert taken.claimed[0].previous == (A, to_micros(T + timedelta(seconds=18)))
        assert (await store.holders([run.state.run_id]))[run.state.run_id][0] == B

    async def test_a_suspended_run_gives_its_claim_up_and_waits_on_its_topic(
        self, store: RunStore
    ) -> None:
        run = new_run()
        run.start_step(("a", 0), 1, T)
        run.await_event(("a", 0), "orders.paid", None, T)
        assert await store.commit(run, claim=ClaimMode.TAKE)
        row = await self.row(store, run)
        assert row is not None and row.claimed_by is None and row.due_at is None
        assert await store.waiting_on("orders.paid") == [run.state.run_id]
        run.receive_event("orders.paid", {"id": 1}, "e1", T)
        assert await store.commit(run)
        assert await store.waiting_on("orders.paid") == []
        assert await self.claim_as(store, B) == [run.state.run_id]

    async def test_a_sleeping_run_is_due_when_it_wakes(
        self, store: RunStore, clock: ManualClock
    ) -> None:
        run = new_run()
        run.start_step(("a", 0), 1, T)
        run.start_sleep(("a", 0), T + timedelta(seconds=30), T)
        await store.commit(run, claim=ClaimMode.TAKE)
        assert await self.claim_as(store, B) == []
        assert (await store.claim(10, SERVES)).next_due == to_micros(T + timedelta(seconds=30))
        clock.advance(30)
        assert await self.claim_as(store, B) == [run.state.run_id]

    async def test_an_ended_run_has_no_row_and_makes_its_waiting_parent_due(
        self, store: RunStore
    ) -> None:
        parent = new_run()
        child = new_run(parent=parent.state.run_id)
        await store.commit(child)
        parent.start_step(("a", 0), 1, T)
        parent.await_event(("a", 0), child_topic(child.state.run_id), None, T)
        await store.commit(parent, claim=ClaimMode.TAKE)
        assert (await self.row(store, parent)).due_at is None  # type: ignore[union-attr]
        child.complete({"done": True}, T)
        await store.commit(child)
        assert await self.row(store, child) is None
        assert await self.claim_as(store, B) == [parent.state.run_id]

    async def test_a_parent_waiting_on_a_child_that_already_ended_is_due(
        self, store: RunStore
    ) -> None:
        parent = new_run()
        child = new_run(parent=parent.state.run_id)
        child.complete(None, T)
        await store.commit(child)
        parent.start_step(("a", 0), 1, T)
        parent.await_event(("a", 0), child_topic(child.state.run_id), None, T)
        await store.commit(parent, claim=ClaimMode.TAKE)
        assert await self.claim_as(store, B) == [parent.state.run_id]

    async def test_settling_from_an_old_state_only_gives_the_claim_up(
        self, store: RunStore
    ) -> None:
        run = new_run()
        await store.commit(run, claim=ClaimMode.TAKE)
        old = await store.load(run.state.run_id)
        run.start_step(("a", 0), 1, T)
        run.await_event(("a", 0), "t", None, T)
        await store.commit(run)  # another writer moved it on (KEEP: A still holds it)
        result = await store.settle(old)
        assert run.state.run_id not in result.held
        row = await self.row(store, run)
        assert row is not None and row.claimed_by is None and row.waiting_on == "t"
        assert row.version == run.version

    async def test_settling_never_brings_back_an_ended_run(self, store: RunStore) -> None:
        run = new_run()
        await store.commit(run, claim=ClaimMode.TAKE)
        old = await store.load(run.state.run_id)
        run.complete(None, T)
        await store.commit(run)
        await store.settle(old)
        assert await self.row(store, run) is None

    async def test_release_owners_and_claimers(self, store: RunStore) -> None:
        first, second = new_run(), new_run()
        await store.commit(first, claim=ClaimMode.TAKE)
        await store.commit(second)
        assert await self.claim_as(store, B) == [second.state.run_id]
        assert await store.claimers() == sorted([A, B])
        await store.release_owners([A, "nobody"])
        assert await store.claimers() == [B]
        assert await self.claim_as(store, B) == [first.state.run_id]

    async def test_a_backfill_fills_rows_once(self, store: RunStore) -> None:
        going, ended = new_run(), new_run()
        ended.complete(None, T)
        entries = [IndexEntry.of(run, ClaimMode.KEEP, T) for run in (going, ended)]
        # Facts written without their rows, as by a version before the index:
        facts = [event for run in (going, ended) for event in run.collect_events()]
        facts.sort(key=lambda event: store.partition_of(event.originator_id))
        parts = [store.partition_of(event.originator_id) for event in facts]
        stored = [
            store.logs[p].mapper.to_stored_event(e) for p, e in zip(parts, facts, strict=True)
        ]
        await store.blocking(store.index.append, stored, parts, [], None, 0, to_micros(T))
        assert entries[1].mode is ClaimMode.END
        if store.index.index_backfilled():
            pytest.skip("a memory store starts empty: nothing to backfill")
        written = await store.blocking(
            store.backfill_index, [going.state.run_id, ended.state.run_id]
        )
        assert written == 1
        assert await self.claim_as(store, B) == [going.state.run_id]
        assert store.index.index_backfilled()
        assert await store.blocking(store.backfill_index, [going.state.run_id]) == 0


class TestMemoryIndex(OnMemory, IndexContract):
    pass


class TestSQLiteIndex(OnSQLite, IndexContract):
    pass


class TestPostgresIndex(OnPostgres, IndexContract):
    pass


class TestPartitionedPostgresIndex(OnPartitionedPostgres, IndexContract):
    pass
