"""Offline replay, non-determinism, versions and history export/import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from stemlog import (
    Fact,
    Flow,
    InvalidPayloadError,
    NonDeterminismError,
    RunStatus,
    WorkflowApp,
    WorkflowScript,
    fold,
    replay,
)
from stemlog.model.history import read_json_lines

pytestmark = pytest.mark.anyio

Run = Callable[[Any], Awaitable[Any]]


def script_of(names: list[str], loop: int = 0) -> Run:
    async def run(script: Any) -> Any:
        values = []
        for name in names:
            if name == "loop":
                for i in range(loop):
                    values.append(await script.step("loop", lambda ctx, i=i: i, auto_version=True))
            else:
                values.append(await script.step(name, lambda ctx, name=name: name))
        return values

    return run


async def _history(store_url: str, run: Run) -> tuple[str, list[Any]]:
    script = WorkflowScript("replayed", run=run)
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=5)
        assert result.status is RunStatus.COMPLETED
        return result.run_id, await app.history(result.run_id)


async def test_replay_answers_steps_from_the_log_without_side_effects() -> None:
    side_effects: list[str] = []

    async def run(script: Any) -> Any:
        a = await script.step("charge", lambda ctx: side_effects.append("charged") or "ch_1")
        return await script.step("confirm", lambda ctx: f"receipt-{a}")

    _, history = await _history("memory://", run)
    side_effects.clear()
    report = replay(history, WorkflowScript("replayed", run=run))
    assert side_effects == []
    assert report.divergence is None
    assert report.requested == [("charge", 0), ("confirm", 0)]
    assert report.final.status is RunStatus.COMPLETED
    assert report.final.result == "receipt-ch_1"
    assert [s.position for s in report.states] == list(range(1, len(history) + 1))
    assert report.states[-1].status is RunStatus.COMPLETED


async def test_replay_until_is_time_travel() -> None:
    _, history = await _history("memory://", script_of(["a", "b", "c"]))
    report = replay(history, WorkflowScript("replayed", run=script_of(["a", "b", "c"])), until=4)
    assert len(report.states) == 4
    assert report.final.status is RunStatus.RUNNING
    assert report.requested == [("a", 0), ("b", 0)]
    assert report.state_at(3).completed == {("a", 0): "a"}


@pytest.mark.parametrize(
    ("recorded_steps", "code_steps", "position", "recorded", "requested"),
    [
        pytest.param(["a", "b", "c"], ["a", "x", "c"], 1, "b", "x", id="renamed"),
        pytest.param(["a", "b", "c"], ["a", "c", "b"], 1, "b", "c", id="reordered"),
        pytest.param(["a", "b", "c"], ["a", "new", "b", "c"], 1, "b", "new", id="inserted"),
        pytest.param(["a", "b", "c"], ["a", "c"], 1, "b", "c", id="removed"),
        pytest.param(["a", "b", "c"], ["a", "b"], 2, "c", "<end of run>", id="removed-last"),
    ],
)
async def test_divergences_are_reported(
    recorded_steps: list[str],
    code_steps: list[str],
    position: int,
    recorded: str,
    requested: str,
) -> None:
    run_id, history = await _history("memory://", script_of(recorded_steps))
    report = replay(history, WorkflowScript("replayed", run=script_of(code_steps)))
    error = report.divergence
    assert isinstance(error, NonDeterminismError)
    assert (error.run_id, error.position) == (run_id, position)
    assert (error.recorded, error.requested) == (recorded, requested)


async def test_a_loop_whose_count_changed_diverges() -> None:
    _, history = await _history("memory://", script_of(["loop", "done"], loop=3))
    report = replay(history, WorkflowScript("replayed", run=script_of(["loop", "done"], loop=2)))
    assert report.divergence is not None
    assert (report.divergence.recorded, report.divergence.requested) == ("loop#2", "done")


async def test_live_engine_fails_a_run_that_diverges(store_url: str) -> None:
    gate = Flow("gate")
    gate.step("wait", lambda ctx: ctx.wait_for_event_value("go"))

    async def before(script: Any) -> Any:
        await script.step("a", lambda ctx: 1)
        await script.step("b", lambda ctx: ctx.wait_for_event_value("go"))
        return await script.step("c", lambda ctx: 3)

    async def after(script: Any) -> Any:
        await script.step("renamed", lambda ctx: 1)
        return await script.step("c", lambda ctx: 3)

    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([WorkflowScript("evolving", run=before)])
        run_id = await app.start("evolving")
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("go"):
                await anyio.sleep(0.01)
    async with WorkflowApp.open(store_url) as app:  # new code deployed under the same version
        app.register_scripts([WorkflowScript("evolving", run=after)])
        if store_url == "memory://":
            return  # a memory store does not outlive its app
        await app.emit("go", True)
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type.endswith("NonDeterminismError")
    assert "'a'" in result.error.message and "'renamed'" in result.error.message


async def test_flow_with_other_declared_steps_fails_on_resume(durable_url: str) -> None:
    old = Flow("changing.flow")
    old.step("a", lambda ctx: ctx.wait_for_event_value("go"))
    old.step("b", lambda ctx: "b")
    new = Flow("changing.flow")
    new.step("x", lambda ctx: ctx.wait_for_event_value("go"))
    new.step("b", lambda ctx: "b")
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([old])
        run_id = await app.start(old)
        with anyio.fail_after(5):
            while run_id not in await app.runs_waiting_on("go"):
                await anyio.sleep(0.01)
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([new])
        await app.emit("go", 1)
        result = await app.wait_for(run_id, timeout=5)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "NonDeterminismError" in result.error.type


async def test_runs_stay_pinned_to_their_version(durable_url: str) -> None:
    v1 = Flow("versioned", version=1)
    v1.step("wait", lambda ctx: ctx.wait_for_event_value("go"))
    v1.step("done", lambda ctx: "v1")
    v2 = Flow("versioned", version=2)
    v2.step("done", lambda ctx: "v2")
    async with WorkflowApp.open(durable_url) as app:
        app.register_flows([v1])
        old_run = await app.start("versioned")
        with anyio.fail_after(5):
            while old_run not in await app.runs_waiting_on("go"):
                await anyio.sleep(0.01)
    async with WorkflowApp.open(durable_url) as app:  # only v2 deployed: the v1 run waits
        app.register_flows([v2])
        new_run = await app.start_and_wait("versioned", timeout=5)
        await app.emit("go", 1)
        blocked = await app.wait_for(old_run, timeout=0.3)
        view = await app.get_run(old_run)
    async with WorkflowApp.open(durable_url) as app:  # both deployed: it finishes on v1
        app.register_flows([v1, v2])
        finished = await app.wait_for(old_run, timeout=5)
    assert new_run.value == "v2"
    assert blocked.timed_out and blocked.status is RunStatus.RUNNING
    assert view is not None and view.blocked_on_version == 1 and view.version == 1
    assert finished.value == "v1"


async def test_exported_history_imports_and_replays_identically(tmp_path: Any) -> None:
    run_id, history = await _history("memory://", script_of(["a", "b"]))
    lines = [record.to_json_line() for record in history]
    imported = read_json_lines(lines)
    async with WorkflowApp.open(f"sqlite:///{tmp_path / 'other.db'}", worker=False) as app:
        app.register_scripts([WorkflowScript("replayed", run=script_of(["a", "b"]))])
        await app.import_history(imported[run_id])
        again = await app.history(run_id)
        report = await app.replay(run_id)
        view = await app.get_run(run_id)
    assert [record.to_json_line() for record in again] == lines
    assert report.divergence is None
    assert view is not None and view.status == "completed"


async def test_what_history_returns_is_all_fold_replay_and_import_need(store_url: str) -> None:
    script = WorkflowScript("replayed", run=script_of(["a", "b"]))
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=5)
        history = await app.history(result.run_id)
    assert {fact.run_id for fact in history} == {result.run_id}
    state = fold(history)
    assert state.run_id == result.run_id and state.status is RunStatus.COMPLETED
    assert replay(history, script).divergence is None
    assert [Fact.from_json_line(f.to_json_line()) for f in history] == history
    async with WorkflowApp.open("memory://", worker=False) as other:
        assert await other.import_history(history) == result.run_id
        assert await other.history(result.run_id) == history


async def test_a_history_that_mixes_runs_is_refused() -> None:
    _, first = await _history("memory://", script_of(["a"]))
    _, second = await _history("memory://", script_of(["a"]))
    with pytest.raises(InvalidPayloadError, match="more than one run"):
        fold([*first, *second[1:]])
    with pytest.raises(InvalidPayloadError, match="more than one run"):
        replay([*first, *second[1:]], WorkflowScript("replayed", run=script_of(["a"])))
