"""A run started in an app whose worker drives it at once is stored with its first
step (one commit); ``start`` still returns only once it is stored, and a drive
that ends before storing anything leaves ``start`` to store it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import anyio
import pytest

from stemlog import Flow, RunStatus, StoreWriteError, UnknownRunError, WorkflowApp, WorkflowScript
from stemlog.execution.driver import RunDriver
from stemlog.model.facts import RunStarted, StepStarted
from stemlog.runtime import worker as worker_module
from stemlog.store.events import RunStore

pytestmark = pytest.mark.anyio


def _flow() -> Flow:
    flow = Flow("first-step")
    flow.step("one", lambda ctx: ctx.param("n"))
    flow.step("two", lambda ctx: cast(int, ctx.previous_value()) + 1)
    return flow


async def _script_run(script: Any) -> int:
    return int(await script.step("one", lambda ctx: 41)) + 1


SCRIPT = WorkflowScript("first-step-script", run=_script_run)


def _commits(app: WorkflowApp) -> list[list[str]]:
    """The facts of every commit from now on, by class name."""
    runtime = app._runtime
    assert runtime is not None
    commits: list[list[str]] = []
    runtime.store.add_listener(
        lambda appended: commits.append([type(f.fact).__name__ for f in appended.facts])
    )
    return commits


def _store(app: WorkflowApp) -> RunStore:
    assert app._runtime is not None
    return app._runtime.store


@pytest.mark.parametrize("workflow", [_flow(), SCRIPT], ids=["flow", "script"])
async def test_run_started_is_stored_with_the_first_step(store_url: str, workflow: Any) -> None:
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([_flow()])
        app.register_scripts([SCRIPT])
        commits = _commits(app)
        run_id = await app.start(workflow, {"n": 1})
        history = await app.history(run_id)  # stored when start returns
        assert [fact.type for fact in history[:2]] == ["RunStarted", "StepStarted"]
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert commits[0] == ["RunStarted", "StepStarted"]  # one commit, not two


async def test_without_a_worker_or_with_a_key_run_started_is_stored_alone(
    store_url: str,
) -> None:
    async with WorkflowApp.open(store_url, worker=False) as app:
        app.register_flows([_flow()])
        commits = _commits(app)
        await app.start(_flow(), {"n": 1})
    assert commits == [["RunStarted"]]
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([_flow()])
        commits = _commits(app)
        run_id = await app.start(_flow(), {"n": 1}, run_id="order-1")
        await app.wait_for(run_id, timeout=5)
    assert commits[0] == ["RunStarted"]  # a key another start may name: its own commit


async def test_a_drive_that_breaks_before_storing_leaves_start_to_store_the_run(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = RunDriver.drive
    broken: list[str] = []

    async def break_once(self: RunDriver) -> None:
        if not broken:
            broken.append("once")
            raise RuntimeError("broken before anything was stored")
        await drive(self)

    monkeypatch.setattr(RunDriver, "drive", break_once)
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([_flow()])
        commits = _commits(app)
        run_id = await app.start(_flow(), {"n": 1})
        result = await app.wait_for(run_id, timeout=5)
    assert broken == ["once"]
    assert result.status is RunStatus.COMPLETED and result.value == 2
    assert commits[0] == ["RunStarted"]  # stored by start, then driven as usual


async def test_a_first_commit_that_fails_fails_the_start_and_stores_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "STORE_RETRY", timedelta(milliseconds=20))
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([_flow()])
        store = _store(app)
        commit = store.commit
        refused: list[str] = []

        async def refuse_first_steps(*runs: Any, **options: Any) -> bool:
            pending = [type(event) for run in runs for event in run.pending_events]
            if RunStarted in pending and StepStarted in pending and not refused:
                refused.append(str(runs[0].id))
                raise StoreWriteError("test store", "disk full")
            return await commit(*runs, **options)

        monkeypatch.setattr(store, "commit", refuse_first_steps)
        with pytest.raises(StoreWriteError):
            await app.start(_flow(), {"n": 1})
        (lost,) = refused
        assert await app.get_run(lost, consistent=True) is None
        with pytest.raises(UnknownRunError):
            await app.history(lost)
        result = await app.start_and_wait(_flow(), {"n": 2}, timeout=5)  # the worker goes on
        assert result.value == 3
        worker = app._runtime.worker if app._runtime is not None else None
        assert worker is not None
        with anyio.fail_after(5):  # its drive, tried again, finds no run and lets it go
            while worker.holds(lost):
                await anyio.sleep(0.01)


async def test_a_start_made_by_a_step_never_waits_for_a_drive(store_url: str) -> None:
    inner = _flow()
    outer = Flow("starts-another")
    started: list[str] = []

    async def start_inner(ctx: Any) -> str:
        run_id = await app.start(inner, {"n": 5})
        started.append(run_id)
        return run_id

    outer.step("start", start_inner)
    async with WorkflowApp.open(store_url, concurrency=2) as app:
        app.register_flows([inner, outer])
        commits = _commits(app)
        await app.start_and_wait(outer, timeout=5)
        result = await app.wait_for(started[0], timeout=5)
    assert result.value == 6
    assert ["RunStarted"] in commits  # the inner run's start, stored by itself
