"""One run can never stop the app or poison the store.

A fact this code cannot read or fold — appended here straight to the log, as a
bug, a bad migration or a hand edit could — sets only its run aside as
blocked, with the reason in ``get_run`` and ``stemlog show``; the app still
opens, lists runs and drives every other run, and the read models verify.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from stemlog import Flow, RunStatus, WorkflowApp
from stemlog.cli.main import cli

pytestmark = pytest.mark.anyio

BAD_FACTS = [
    pytest.param("stemlog:StepStarted", b'{"timestamp": 1}', id="missing-fields"),
    pytest.param("stemlog:NoSuchFact", b"{}", id="unknown-topic"),
    pytest.param("stemlog:StepStarted", b"{not json", id="not-json"),
]


def _flows() -> tuple[Flow, Flow]:
    waits = Flow("b.waits")
    waits.step("wait", lambda ctx: ctx.wait_for_event_value("b.go"))
    waits.step("after", lambda ctx: "done")
    quick = Flow("b.quick")
    quick.step("only", lambda ctx: 1)
    return waits, quick


def _append_bad_fact(app: WorkflowApp, run_id: str, topic: str, state: bytes) -> None:
    runtime = app._runtime
    assert runtime is not None
    store = runtime.store
    log = store.logs[store.partition_of(uuid.UUID(run_id))]  # the run's partition
    version = len(list(log.events.get(uuid.UUID(run_id)))) + 1
    log.recorder.insert_events([StoredEvent(uuid.UUID(run_id), version, topic, state)])


@pytest.mark.parametrize(("topic", "state"), BAD_FACTS)
async def test_a_bad_fact_blocks_its_run_and_nothing_else(
    durable_url: str, topic: str, state: bytes, tmp_path: Path
) -> None:
    waits, quick = _flows()
    async with WorkflowApp.open(durable_url, worker=False) as app:
        app.register_flows([waits, quick])
        bad = await app.start(waits)
        other = await app.start(waits)
        await app.list_runs()
        _append_bad_fact(app, bad, topic, state)
    async with WorkflowApp.open(durable_url) as app:  # opens, recovers, projects
        app.register_flows([waits, quick])
        runs = {view.run_id: view for view in await app.list_runs()}
        assert runs[bad].blocked is not None and "fact 2" in runs[bad].blocked
        assert runs[other].blocked is None
        done = await app.start_and_wait(quick, timeout=5)
        assert done.status is RunStatus.COMPLETED
        with anyio.fail_after(5):
            while other not in await app.runs_waiting_on("b.go"):
                await anyio.sleep(0.01)
        assert await app.emit("b.go", 1) == [other]
        finished = await app.wait_for(other, timeout=5)
        assert finished.status is RunStatus.COMPLETED
        view = await app.get_run(bad)
        assert view is not None and view.blocked is not None
        assert await app.read_models.verify() == []
    if durable_url.startswith("sqlite"):
        result = await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(cli, ["--db", durable_url, "show", bad])
        )
        assert result.exit_code in (0, 1), result.output  # 1: its facts cannot be read
        assert "blocked" in result.stdout and "fact 2" in result.stdout
        assert result.stderr.count("\n") <= 1


async def test_an_old_value_that_overflows_blocks_only_its_run(durable_url: str) -> None:
    """A policy stored before values were checked (1e18 s) cannot be scheduled."""
    waits, quick = _flows()
    async with WorkflowApp.open(durable_url, worker=False) as app:
        app.register_flows([waits, quick])
        runtime = app._runtime
        assert runtime is not None
        good = await app.start(quick)
        run_id = uuid.uuid4()
        state: dict[str, Any] = {
            "timestamp": {"_type_": "datetime_iso", "_data_": "2030-01-01T00:00:00+00:00"},
            "originator_topic": "stemlog:Run", "workflow": "b.quick", "kind": "flow",
            "workflow_version": 1, "params": {}, "fingerprint": quick.definition.fingerprint,
            "parent_run_id": None, "policy": {"max_run_duration": 1e18,
                                              "max_suspend_duration": None},
            "ttl": None, "forked_from": None,
        }  # fmt: skip
        import orjson

        runtime.store.log.recorder.insert_events(
            [StoredEvent(run_id, 1, "stemlog:RunStarted", orjson.dumps(state))]
        )
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([waits, quick])
        views = {view.run_id: view for view in await app.list_runs()}
        assert views[str(run_id)].blocked is not None
        assert (await app.wait_for(good, timeout=5)).status is RunStatus.COMPLETED
        assert (await app.start_and_wait(quick, timeout=5)).status is RunStatus.COMPLETED
