"""A worker keeps a suspended script's execution parked and continues it on resume.

``run`` is traced.entered once per worker while its execution stays parked (its locals
intact); an execution given up (evicted, or its worker stopping) unwinds
through its ``finally`` blocks, and the next drive enters ``run`` again from its
top, answering the completed steps from the log.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest

from stemlog import RunStatus, WorkflowApp, WorkflowScript
from stemlog.runtime import worker

pytestmark = pytest.mark.anyio


class Traced:
    """A script that takes a step, waits for ``go.<id>`` twice and returns what it
    saw, noting each entry into ``run`` and each unwinding (its ``finally``)."""

    def __init__(self, name: str) -> None:
        self.entered: list[str] = []
        self.unwound: list[str] = []
        self.script = WorkflowScript(name, run=self.run)

    async def run(self, script: Any) -> Any:
        run_id = script.param("id")
        self.entered.append(run_id)
        seen: list[Any] = [await script.step("one", lambda ctx: 1)]
        try:
            seen.append(await script.wait_for_event(f"go.{run_id}"))
            seen.append(await script.wait_for_event(f"go.{run_id}"))
        finally:
            self.unwound.append(run_id)
        return seen


async def until_waiting(app: WorkflowApp, run_id: str, topic: str) -> None:
    with anyio.fail_after(10):
        while run_id not in await app.runs_waiting_on(topic):
            await anyio.sleep(0.005)


async def feed(app: WorkflowApp, run_id: str, name: str, *payloads: str) -> Any:
    """Emit each payload once the run waits for it; the run's value at its end."""
    for payload in payloads:
        await until_waiting(app, run_id, f"go.{name}")
        assert await app.emit(f"go.{name}", payload) == [run_id]
    result = await app.wait_for(run_id, timeout=10)
    assert result.status is RunStatus.COMPLETED
    return result.value


async def test_a_resumed_script_continues_where_it_parked(store_url: str) -> None:
    traced = Traced("parked.continue")
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([traced.script])
        run_id = await app.start(traced.script, {"id": "a"})
        assert await feed(app, run_id, "a", "x", "y") == [1, "x", "y"]
    assert traced.entered == ["a"]  # one entry: each resume continued the parked execution
    assert traced.unwound == ["a"]


async def test_a_script_given_up_unwinds_and_is_entered_again(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "PARKED_SCRIPTS", 1)  # room for 4 x concurrency = 4
    traced = Traced("parked.evicted")
    ids = [f"r{i}" for i in range(6)]
    async with WorkflowApp.open(store_url, concurrency=1) as app:
        app.register_scripts([traced.script])
        runs: dict[str, str] = {}
        for name in ids:
            runs[name] = await app.start(traced.script, {"id": name})
            await until_waiting(app, runs[name], f"go.{name}")
        assert sorted(traced.unwound) == ["r0", "r1"]  # the two least recently parked
        for name, run_id in runs.items():
            assert await feed(app, run_id, name, name, "done") == [1, name, "done"]
    entries = Counter(traced.entered)
    assert entries["r0"] == entries["r1"] == 2  # the evicted two were entered again
    assert set(entries) == set(ids)
    assert Counter(traced.unwound) == entries  # every entry unwound once: given up, or at its end


async def test_a_stopping_worker_unwinds_its_parked_scripts(durable_url: str) -> None:
    traced = Traced("parked.stop")
    async with WorkflowApp.open(durable_url) as app:
        app.register_scripts([traced.script])
        run_id = await app.start(traced.script, {"id": "s"})
        await until_waiting(app, run_id, "go.s")
        assert traced.unwound == []
    assert traced.unwound == ["s"]  # closing the app gave the parked execution up
    async with WorkflowApp.open(durable_url) as app:
        app.register_scripts([traced.script])
        assert await feed(app, run_id, "s", "x", "y") == [1, "x", "y"]
    assert traced.entered == ["s", "s"]  # entered again by the new worker, the step not run again
