"""One projector per database: one process keeps the read models, from the facts it
committed held in memory; the lead passes on when that process closes."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.abc
import pytest

from stemlog import Flow, RunStatus, WorkflowApp
from stemlog.runtime import read_side
from stemlog.runtime.read_side import CommittedHere
from stemlog.store.base import Appended, LoggedFact

pytestmark = pytest.mark.anyio


def _flow() -> Flow:
    flow = Flow("lead.flow")

    @flow.step("only")
    async def only(ctx: object) -> str:
        return "done"

    return flow


async def _leads(app: WorkflowApp) -> bool:
    runtime = app._runtime
    assert runtime is not None
    return runtime.views.committed[0].keeping


async def _caught_up(app: WorkflowApp) -> bool:
    runtime = app._runtime
    assert runtime is not None
    position = await runtime.store.blocking(runtime.views.view.position)
    return position == await runtime.store.blocking(runtime.store.head)


async def _wait_until_leading(app: WorkflowApp) -> None:
    with anyio.fail_after(5):
        while not await _leads(app):
            await anyio.sleep(0.02)


async def test_one_process_keeps_the_models_from_what_it_committed(durable_url: str) -> None:
    flow = _flow()
    async with WorkflowApp.open(durable_url) as leader:
        leader.register_flows([flow])
        await _wait_until_leading(leader)
        async with WorkflowApp.open(durable_url, worker=False) as client:
            client.register_flows([flow])
            await anyio.sleep(0.3)
            assert not await _leads(client)  # one leader per database
            run_id = await client.start(flow)
            assert (await client.wait_for(run_id, timeout=10)).status is RunStatus.COMPLETED
            with anyio.fail_after(5):  # the leader caught the models up, no query asked
                while not await _caught_up(leader):
                    await anyio.sleep(0.02)
            view = await client.get_run(run_id)
            assert view is not None and view.status is RunStatus.COMPLETED


async def test_the_lead_passes_on_when_the_leader_closes(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_side, "LEAD_RETRY_SECONDS", 0.1)
    close_first = anyio.Event()

    async def first_app(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with WorkflowApp.open(durable_url, worker=False) as first:
            await _wait_until_leading(first)
            task_status.started()
            await close_first.wait()

    async with anyio.create_task_group() as group:
        await group.start(first_app)
        async with WorkflowApp.open(durable_url, worker=False) as second:
            await anyio.sleep(0.3)
            assert not await _leads(second)
            close_first.set()
            await _wait_until_leading(second)


class _CountingStore:
    def __init__(self) -> None:
        self.reads = 0

    def head(self, partition: int = 0) -> int:
        return 0

    def read(
        self, start: int, limit: int, stop: int | None = None, partition: int = 0
    ) -> list[LoggedFact]:
        self.reads += 1
        return []


def _appended(positions: Sequence[int]) -> Appended:
    return Appended([LoggedFact(p, object()) for p in positions], local=True)  # type: ignore[arg-type]


def test_facts_committed_here_are_read_from_memory_and_gaps_from_the_store() -> None:
    store = _CountingStore()
    log = CommittedHere(store)  # type: ignore[arg-type]
    log.remember(_appended([1, 2]))
    assert store.reads == 0 and log.read(1, 10) == []  # not leading: nothing was kept
    assert store.reads == 1
    log.keeping = True
    log.remember(_appended([1, 2, 3, 5]))
    assert [f.position for f in log.read(1, 2)] == [1, 2]
    assert [f.position for f in log.read(3, 10)] == [3]  # 4 is another process's
    assert store.reads == 1
    assert log.read(4, 10) == [] and store.reads == 2  # read from the store
    assert [f.position for f in log.read(5, 10, stop=5)] == [5]
    log.forget()
    assert not log.keeping
