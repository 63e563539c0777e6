"""A run this app started while its worker was full is claimed later by a claim round
and driven from the aggregate the start committed, without reading it back; a cached
aggregate the log has moved past is brought up to date first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from stemlog import Flow, RunStatus, WorkflowApp
from stemlog.model.run import Run
from stemlog.runtime.worker import Worker

pytestmark = pytest.mark.anyio


def _flows(gate: anyio.Event) -> tuple[Flow, Flow]:
    async def hold(ctx: Any) -> str:
        await gate.wait()
        return "held"

    blocker = Flow("blocker")
    blocker.step("hold", hold)
    later = Flow("later")
    later.step("one", lambda ctx: ctx.param("n"))
    later.step("two", lambda ctx: "done")
    return blocker, later


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The runs the worker's drives load (or fast-forward) from the store."""
    loads: Counter[str] = Counter()
    load = Worker._load

    async def counted(self: Worker, run_id: str, cached: Run | None) -> Run | None:
        loads[run_id] += 1
        return await load(self, run_id, cached)

    monkeypatch.setattr(Worker, "_load", counted)
    return loads


async def test_a_run_started_while_the_worker_was_full_is_not_read_back(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = anyio.Event()
    blocker, later = _flows(gate)
    loads = _count_loads(monkeypatch)
    async with WorkflowApp.open(store_url, concurrency=1) as app:
        app.register_flows([blocker, later])
        await app.start(blocker)
        run_id = await app.start(later, {"n": 1})  # no room: left to a claim round
        view = await app.get_run(run_id)
        assert view is not None and view.status is RunStatus.RUNNING
        gate.set()
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert loads[run_id] == 0


async def test_a_cached_run_behind_the_log_is_brought_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    gate = anyio.Event()
    blocker, later = _flows(gate)
    async with WorkflowApp.open(url, concurrency=1) as app:
        app.register_flows([blocker, later])
        await app.start(blocker)
        run_id = await app.start(later, {"n": 1})
        async with WorkflowApp.open(url, worker=False) as other:  # another process's write
            await other.send(run_id, "later.extra", {"from": "other"})
        loads = _count_loads(monkeypatch)
        gate.set()
        result = await app.wait_for(run_id, timeout=5)
        history = await app.history(run_id)
    assert loads[run_id] == 1  # fast-forwarded (or loaded) before its drive
    assert result.status is RunStatus.COMPLETED
    assert "EventReceived" in [fact.type for fact in history]  # folded in, not lost
