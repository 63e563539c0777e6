"""The store's contract: loads, appends, conflicts, group commit, reading the log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from stemlog.errors import UnknownRunError
from stemlog.model.facts import RunStarted, StepCompleted, StepStarted
from stemlog.model.records import WorkflowKind
from stemlog.model.run import Run
from stemlog.store.appender import Appender
from stemlog.store.base import Appended, Share
from stemlog.store.events import RunStore
from stemlog.store.group_commit import CONFLICT, Submission
from stemlog.store.index import ClaimMode
from stemlog.store.urls import parse_store_url
from tests.contract.backends import OnMemory, OnPartitionedPostgres, OnPostgres, OnSQLite

pytestmark = pytest.mark.anyio
T = datetime(2030, 1, 1, tzinfo=UTC)


def new_run(workflow: str = "w", *, partition_of: tuple[int, int] | None = None) -> Run:
    """A new run; ``partition_of=(partition, partitions)`` picks an id in that partition."""
    run_id = uuid.uuid4()
    if partition_of is not None:
        partition, partitions = partition_of
        run_id = uuid.UUID(int=(run_id.int // partitions) * partitions + partition)
    return Run.begin(
        run_id=run_id, at=T, workflow=workflow, kind="flow", workflow_version=1,
        params={"x": [1, {"y": None}]}, fingerprint="f", parent_run_id=None, policy=None,
        ttl=None, forked_from=None,
    )  # fmt: skip


async def rivals(store: RunStore) -> tuple[Run, Run, Run]:
    """A stored run and two loads of it, each with its next fact: a step ``a``
    started, a step ``b`` started (both take version 2)."""
    run = new_run()
    await store.commit(run)
    first, second = await store.load(run.state.run_id), await store.load(run.state.run_id)
    first.start_step(("a", 0), 1, T)
    second.start_step(("b", 0), 1, T)
    return run, first, second


async def stale_run(store: RunStore) -> Run:
    """A run whose next fact (a step ``y`` started) conflicts: another writer took
    its version 2 (a step ``x`` started)."""
    stale = new_run()
    await store.commit(stale)
    twin = await store.load(stale.state.run_id)
    twin.start_step(("x", 0), 1, T)
    await store.commit(twin)
    stale.start_step(("y", 0), 1, T)
    return stale


class StoreContract:
    @pytest.fixture
    async def store(self, url: str) -> AsyncIterator[RunStore]:
        store = await anyio.to_thread.run_sync(lambda: RunStore(parse_store_url(url)))
        try:
            yield store
        finally:
            await anyio.to_thread.run_sync(store.close)

    async def test_a_committed_run_loads_with_its_state(self, store: RunStore) -> None:
        run = new_run()
        run.start_step(("a", 0), 1, T)
        assert await store.commit(run)
        loaded = await store.load(run.state.run_id)
        assert loaded.state == run.state
        assert loaded.version == 2

    async def test_facts_come_back_in_order_with_their_fields(self, store: RunStore) -> None:
        run = new_run()
        run.start_step(("a", 0), 1, T)
        run.complete_step(("a", 0), {"v": 1}, T + timedelta(seconds=1))
        await store.commit(run)
        facts = await store.facts(run.state.run_id)
        assert [type(f) for f in facts] == [RunStarted, StepStarted, StepCompleted]
        assert [f.originator_version for f in facts] == [1, 2, 3]
        assert facts[2].value == {"v": 1} and facts[2].timestamp == T + timedelta(seconds=1)
        assert type(facts[0].kind) is WorkflowKind and facts[0].kind is WorkflowKind.FLOW
        (logged,) = await store.blocking(store.read, 1, 1, None, store.partition_of(run.id))
        assert type(logged.fact.kind) is WorkflowKind
        assert await store.facts(str(uuid.uuid4())) == []

    async def test_an_unknown_or_malformed_run_id_is_unknown(self, store: RunStore) -> None:
        with pytest.raises(UnknownRunError):
            await store.load(str(uuid.uuid4()))
        with pytest.raises(UnknownRunError):
            await store.load("not a uuid")

    async def test_a_stale_writer_loses_and_writes_nothing(self, store: RunStore) -> None:
        run, first, second = await rivals(store)
        assert await store.commit(first)
        head = await store.blocking(store.head)
        assert not await store.commit(second)
        assert await store.blocking(store.head) == head
        assert (await store.load(run.state.run_id)).state.current == ("a", 0)

    async def test_concurrent_commits_are_grouped_and_a_conflict_stays_its_own(
        self, store: RunStore
    ) -> None:
        runs = [new_run(f"w{i}") for i in range(20)]
        seen: list[Appended] = []
        store.add_listener(seen.append)
        stale = await stale_run(store)
        outcomes: dict[int, bool] = {}

        async def commit(index: int, run: Run) -> None:
            outcomes[index] = await store.commit(run)

        async with anyio.create_task_group() as group:
            for index, run in enumerate([*runs, stale]):
                group.start_soon(commit, index, run)
        assert [outcomes[i] for i in range(20)] == [True] * 20
        assert outcomes[20] is False
        for run in runs:
            assert (await store.load(run.state.run_id)).version == 1
        announced = [item.fact for appended in seen for item in appended.facts]
        assert {str(f.originator_id) for f in announced} >= {r.state.run_id for r in runs}
        assert all(appended.local for appended in seen)

    async def test_after_a_conflict_the_rest_of_a_batch_is_written_together(
        self, store: RunStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stale = await stale_run(store)
        runs = [new_run(f"w{i}") for i in range(6)]
        batch = [
            Submission([run], list(run.collect_events()), [ClaimMode.KEEP])
            for run in [*runs[:3], stale, *runs[3:]]
        ]
        appends: list[int] = []
        append = store.index.append

        def counted(*args: Any, **kwargs: Any) -> Any:
            appends.append(len(args[0]))
            return append(*args, **kwargs)

        monkeypatch.setattr(store.index, "append", counted)
        await store.blocking(Appender(store).write, batch)
        assert [s.outcome for s in batch] == [None] * 3 + [CONFLICT] + [None] * 3
        # The batch, then the six others together: the one that conflicted is told so.
        assert appends == [7, 6]
        for run in runs:
            assert (await store.load(run.state.run_id)).version == 1
        assert (await store.load(stale.state.run_id)).state.current == ("x", 0)

    async def test_two_writes_of_one_version_in_a_batch_one_wins(self, store: RunStore) -> None:
        run, first, second = await rivals(store)
        other = new_run()
        batch = [Submission([r], list(r.collect_events()), [ClaimMode.KEEP])
                 for r in (first, other, second)]  # fmt: skip
        await store.blocking(Appender(store).write, batch)
        assert [s.outcome for s in batch] == [None, None, CONFLICT]
        assert (await store.load(run.state.run_id)).state.current == ("a", 0)
        assert (await store.load(other.state.run_id)).version == 1

    async def test_a_write_tried_again_after_a_lost_reply_is_found_stored(
        self, store: RunStore
    ) -> None:
        runs = [new_run(f"w{i}") for i in range(3)]
        batch = [Submission([r], list(r.collect_events()), [ClaimMode.KEEP]) for r in runs]
        appender = Appender(store)
        await store.blocking(appender.write, batch)
        head = await store.blocking(store.head)
        batch[1].positions = None  # as if the reply of its commit had been lost
        await store.blocking(appender.write, batch)
        assert batch[1].outcome is None and batch[1].positions == []  # stored before
        assert await store.blocking(store.head) == head

    async def test_the_log_reads_in_position_order(self, store: RunStore) -> None:
        runs = [new_run(partition_of=(0, store.partitions)) for _ in range(5)]
        for run in runs:
            await store.commit(run)
        head = await store.blocking(store.head)
        page = await store.blocking(store.read, 1, 100)
        assert [item.position for item in page] == sorted(item.position for item in page)
        assert page[-1].position == head
        assert [str(i.fact.originator_id) for i in page[-5:]] == [r.state.run_id for r in runs]
        assert await store.blocking(store.read, head + 1, 100) == []
        two = await store.blocking(store.read, page[0].position, 2)
        assert [i.position for i in two] == [p.position for p in page[:2]]

    async def test_shares_of_a_page_hold_each_run_once_in_log_order(self, store: RunStore) -> None:
        runs = [new_run(partition_of=(0, store.partitions)) for _ in range(24)]
        for run in runs:
            run.start_step(("a", 0), 1, T)
            await store.commit(run)
        page = await store.blocking(store.read, 1, 1000)
        shares = [Share.of(0, 5), Share.of(5, 16)]
        parts = [await store.blocking(store.read, 1, 1000, None, 0, share) for share in shares]
        for share, part in zip(shares, parts, strict=True):
            assert [item.position for item in part] == sorted(item.position for item in part)
            assert {str(item.fact.originator_id)[-1] for item in part} <= share.digits
        merged = sorted((item for part in parts for item in part), key=lambda i: i.position)
        assert merged == page  # every fact in exactly one share, decoded the same

    async def test_local_positions_are_known_once(self, store: RunStore) -> None:
        store.track_local()
        run = new_run()
        await store.commit(run)
        part = store.partition_of(run.id)
        head = await store.blocking(store.head, part)
        assert store.take_local(part, head)
        assert not store.take_local(part, head)
        other = new_run()
        await store.commit(other)
        part = store.partition_of(other.id)
        head = await store.blocking(store.head, part)
        store.forget_local_through(part, head)
        assert not store.take_local(part, head)

    async def test_values_are_stored_exactly(self, store: RunStore) -> None:
        run = new_run()
        value: Any = {"s": "é\u2028", "n": 2**63 - 1, "f": 0.1, "l": [True, None], "d": {}}
        run.start_step(("a", 0), 1, T)
        run.complete_step(("a", 0), value, T)
        await store.commit(run)
        assert (await store.load(run.state.run_id)).state.completed[("a", 0)] == value


class TestMemoryStore(OnMemory, StoreContract):
    pass


class TestSQLiteStore(OnSQLite, StoreContract):
    pass


class TestPostgresStore(OnPostgres, StoreContract):
    pass


class TestPartitionedPostgresStore(OnPartitionedPostgres, StoreContract):
    pass
