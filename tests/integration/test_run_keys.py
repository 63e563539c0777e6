"""Runs by key and idempotent starts (DESIGN "Runs by key, idempotent starts")."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from stemlog import (
    Flow,
    InvalidPayloadError,
    RunExistsError,
    RunStatus,
    UnknownRunError,
    UnknownWorkflowError,
    WorkflowApp,
    WorkflowScript,
)
from stemlog.model.ids import STEMLOG_NAMESPACE

pytestmark = pytest.mark.anyio


def waiting_flow(name: str = "keyed") -> Flow:
    flow = Flow(name)

    @flow.step("wait")
    def wait(ctx: Any) -> Any:
        return ctx.wait_for_event_value("keyed.go")

    flow.step("done", lambda ctx: f"{ctx.param('n')}:{ctx.previous_value()}")
    return flow


async def until_waiting(app: WorkflowApp, run_id: str) -> None:
    with anyio.fail_after(5):
        while run_id not in await app.runs_waiting_on("keyed.go"):
            await anyio.sleep(0.005)


async def head(app: WorkflowApp) -> int:
    """The log's head (the models' position plus their lag, the same for each model)."""
    status = (await app.read_models.status())[0]
    return status.position + status.lag


async def test_a_key_names_the_run_everywhere(store_url: str) -> None:
    flow = waiting_flow()
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow, {"n": 1}, run_id="order-1234")
        assert run_id == str(uuid.uuid5(STEMLOG_NAMESPACE, "order-1234"))
        await until_waiting(app, run_id)
        view = await app.get_run("order-1234")
        assert view is not None and view.run_id == run_id and view.key == "order-1234"
        await app.send("order-1234", "keyed.go", "yes")
        result = await app.wait_for("order-1234", timeout=5)
        history = await app.history("order-1234")
        listed = await app.list_runs()
    assert result.run_id == run_id and result.value == "1:yes"
    assert history[0].key == "order-1234" and history[0].run_id == run_id
    assert [v.key for v in listed] == ["order-1234"]


async def test_starting_an_existing_key_returns_it_and_writes_nothing(store_url: str) -> None:
    flow = waiting_flow()
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        first = await app.start(flow, {"n": 1}, run_id="order-7")
        await until_waiting(app, first)
        before = len(await app.history(first))
        again = await app.start(flow, {"n": 2}, run_id="order-7")
        with pytest.raises(RunExistsError) as raised:
            await app.start(flow, {"n": 3}, run_id="order-7", if_exists="fail")
        assert len(await app.history(first)) == before
        assert len(await app.list_runs()) == 1
        view = await app.get_run(first)
    assert again == first
    assert raised.value.run_id == first and raised.value.key == "order-7"
    assert view is not None and view.params == {"n": 1}


async def test_a_key_taken_by_another_workflow_is_an_error(store_url: str) -> None:
    flow, other = waiting_flow(), waiting_flow("other")
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow, other])
        run_id = await app.start(flow, {"n": 1}, run_id="shared-key")
        with pytest.raises(RunExistsError, match="'keyed'"):
            await app.start(other, {"n": 1}, run_id="shared-key")
        await app.cancel("shared-key")
        view = await app.get_run(run_id)
    assert view is not None and view.status is RunStatus.CANCELLED


async def test_concurrent_starts_of_one_key_start_one_run(store_url: str) -> None:
    flow = waiting_flow()
    ids: list[str] = []
    async with WorkflowApp.open(store_url, worker=False) as app:
        app.register_flows([flow])

        async def start(n: int) -> None:
            ids.append(await app.start(flow, {"n": n}, run_id="once"))

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(start, n)
        runs = await app.list_runs()
    assert len(set(ids)) == 1 and len(runs) == 1


async def test_a_uuid_run_id_is_taken_as_is_and_bad_ids_are_refused(store_url: str) -> None:
    script = WorkflowScript("keyed.script", run=lambda script: _one(script))
    chosen = str(uuid.uuid4())
    async with WorkflowApp.open(store_url) as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, run_id=chosen, timeout=5)
        view = await app.get_run(chosen)
        position = await head(app)
        for bad in ("", "   ", 5, "x" * 1001):
            with pytest.raises(InvalidPayloadError):
                await app.start(script, run_id=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidPayloadError):
            await app.start(script, run_id="k", if_exists="replace")  # type: ignore[arg-type]
        with pytest.raises(UnknownRunError):
            await app.wait_for("", timeout=0.1)
        with pytest.raises(UnknownRunError, match="no-such-key"):
            await app.start(script, parent_run_id="no-such-key")
        assert await head(app) == position
        assert await app.get_run("no-such-key") is None
    assert result.run_id == chosen and result.value == 1
    assert view is not None and view.key is None


async def _one(script: Any) -> int:
    return int(await script.step("one", lambda ctx: 1))


async def test_a_fork_of_a_keyed_run_has_no_key(store_url: str) -> None:
    flow = waiting_flow()
    async with WorkflowApp.open(store_url) as app:
        app.register_flows([flow])
        run_id = await app.start(flow, {"n": 1}, run_id="forked-key")
        await until_waiting(app, run_id)
        fork = await app.fork("forked-key", "wait")
        history = await app.history(fork)
    assert fork != run_id and history[0].key is None


async def test_a_workflow_registered_anywhere_starts_by_name_from_an_app_without_it(
    durable_url: str,
) -> None:
    flow = waiting_flow("catalogued")
    async with WorkflowApp.open(durable_url) as worker_app:
        worker_app.register_flows([flow])
        assert [w["name"] for w in await worker_app.workflows()] == ["catalogued"]
        async with WorkflowApp.open(durable_url, worker=False) as client:
            manifest = await client.workflows()
            run_id = await client.start("catalogued", {"n": 5}, run_id="by-name")
            await until_waiting(client, run_id)
            await client.send("by-name", "keyed.go", "ok")
            result = await client.wait_for(run_id, timeout=5)
            with pytest.raises(UnknownWorkflowError, match="nowhere"):
                await client.start("nowhere")
    assert manifest == [flow.definition.manifest()]
    assert result.value == "5:ok"


async def test_runs_are_listed_by_a_prefix_of_their_id(store_url: str) -> None:
    script = WorkflowScript("keyed.script", run=lambda script: _one(script))
    twins = ["bbbbbbbb-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"]
    async with WorkflowApp.open(store_url, worker=False) as app:
        app.register_scripts([script])
        for run_id in [*twins, str(uuid.uuid4())]:
            await app.start(script, run_id=run_id)
        both = await app.list_runs(id_prefix="bbbbbbbb")
        one = await app.list_runs(id_prefix=twins[1][:-1] + "2")
        none = await app.list_runs(id_prefix="bbbbbbbb_%")  # LIKE's wildcards are plain text
    assert sorted(view.run_id for view in both) == twins
    assert [view.run_id for view in one] == [twins[1]]
    assert none == []
