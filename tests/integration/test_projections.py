"""Read models: incremental maintenance equals a rebuild; as-of copies; verify; versions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.audit import rebuild, rebuild_as_of, scratch_view, verify
from projections.projector import Projector
from projections.views.memory import POPORunsView
from stemlog import Flow, WorkflowApp
from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url
from tests.strategies import COMMANDS, START, apply

# Several runs, each driven by its own plan of commands (see tests.strategies.apply).
operations = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(COMMANDS), st.sampled_from(["a", "b", "c"])),
    max_size=60,
)


def _build_log(plan: list[tuple[int, str, str]]) -> RunStore:
    log = RunStore(parse_store_url("memory://"))
    policy = {"max_run_duration": 60.0, "max_suspend_duration": None}
    fields = {"kind": "flow", "workflow_version": 1, "fingerprint": "f", "parent_run_id": None,
              "policy": policy, "ttl": 5.0, "forked_from": None}  # fmt: skip
    runs = [
        Run.begin(run_id=uuid.uuid4(), at=START, workflow=f"wf{i % 2}", params={"i": i}, **fields)
        for i in range(4)
    ]
    for run in runs:
        log.log.save(run)
    for tick, (index, command, name) in enumerate(plan):
        run = runs[index]
        if apply(run, command, name, {"value": name}, START + timedelta(milliseconds=tick + 1)):
            log.log.save(run)
    return log


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=operations, page_size=st.integers(1, 7))
def test_maintaining_page_by_page_equals_one_rebuild(
    plan: list[tuple[int, str, str]], page_size: int
) -> None:
    log = _build_log(plan)
    live = POPORunsView()
    Projector(log, live, page_size=page_size).catch_up()
    rebuilt = POPORunsView()
    Projector(log, rebuilt, page_size=10_000).catch_up()
    assert live.dump() == rebuilt.dump()
    assert verify(log, live) == []


def _sqlite_app_log(path: Path) -> str:
    return f"sqlite:///{path}"


async def _workload(app: WorkflowApp, runs: int) -> None:
    flow = Flow("audited")
    flow.step("first", lambda ctx: ctx.param("n"))
    flow.step("wait", lambda ctx: ctx.wait_for_event_value("audit.go"))
    flow.step("last", lambda ctx: ctx.previous_value())
    app.register_flows([flow])
    for n in range(runs):
        await app.start(flow, {"n": n})


@pytest.mark.anyio
async def test_as_of_copies_match_what_the_live_models_showed(tmp_path: Path) -> None:
    snapshots: list[dict[str, Any]] = []
    async with WorkflowApp.open(_sqlite_app_log(tmp_path / "live.db")) as app:
        engine = app._runtime
        assert engine is not None
        await _workload(app, 5)
        with anyio.fail_after(5):
            while len(await app.runs_waiting_on("audit.go")) < 5:
                await anyio.sleep(0.01)
        snapshots.append(engine.views.view.dump())
        await app.emit("audit.go", "yes")
        with anyio.fail_after(5):
            while len(await app.list_runs(status="completed")) < 5:
                await anyio.sleep(0.01)
        snapshots.append(engine.views.view.dump())
        log = engine.store
        for index, snapshot in enumerate(snapshots):
            position = snapshot["position"][0][0]
            into = tmp_path / f"asof-{index}.db"
            result = await anyio.to_thread.run_sync(
                lambda into=into, position=position: rebuild_as_of(log, into, position=position)
            )
            copy = scratch_view(into)
            try:
                assert result.position == position
                assert copy.dump() == snapshot
            finally:
                copy.datastore.close()


@pytest.mark.anyio
async def test_verify_detects_a_tampered_row_and_rebuild_repairs_it(tmp_path: Path) -> None:
    async with WorkflowApp.open(_sqlite_app_log(tmp_path / "live.db")) as app:
        engine = app._runtime
        assert engine is not None
        await _workload(app, 3)
        await anyio.sleep(0.2)
        await engine.views.catch_up()
        log, view = engine.store, engine.views.view
        assert await anyio.to_thread.run_sync(verify, log, view) == []
        with view.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            cursor.execute("UPDATE stemlog_runs SET status = 'failed' WHERE seq = 1")
        differences = await anyio.to_thread.run_sync(verify, log, view)
        assert [d.model for d in differences] == ["runs"]
        assert differences[0].live is not None and "failed" in differences[0].live
        result = await anyio.to_thread.run_sync(rebuild, log, view)
        assert result.events == result.position
        assert await anyio.to_thread.run_sync(verify, log, view) == []


@pytest.mark.anyio
async def test_a_changed_model_version_rebuilds_on_open(tmp_path: Path, monkeypatch: Any) -> None:
    url = _sqlite_app_log(tmp_path / "versions.db")
    async with WorkflowApp.open(url) as app:
        await _workload(app, 2)
        await anyio.sleep(0.1)
        before = {view.run_id for view in await app.list_runs()}
    from projections.views import schema as sql_schema

    monkeypatch.setitem(sql_schema.MODEL_VERSIONS, "runs", 99)
    async with WorkflowApp.open(url, worker=False) as app:
        engine = app._runtime
        assert engine is not None
        after = {view.run_id for view in await app.list_runs()}
        stored = engine.views.view._select("SELECT * FROM {models}")  # type: ignore[attr-defined]
    assert after == before
    assert {row["name"]: row["version"] for row in stored}["runs"] == 99
