"""The workflow catalog in the store: what apps register, by name and version."""

from __future__ import annotations

from typing import Any

import pytest

from stemlog import Flow, UnknownWorkflowError, WorkflowApp

pytestmark = pytest.mark.anyio


def versioned(version: int) -> Flow:
    flow = Flow("catalog.flow", version=version)
    flow.step("only", lambda ctx: version)
    if version > 1:
        flow.step("more", lambda ctx: ctx.previous_value())
    return flow


async def test_every_version_registered_anywhere_is_listed_and_the_newest_starts(
    durable_url: str,
) -> None:
    async with WorkflowApp.open(durable_url) as old:
        old.register_flows([versioned(1)])
        assert [(w["name"], w["version"]) for w in await old.workflows()] == [("catalog.flow", 1)]
    async with WorkflowApp.open(durable_url) as new:
        new.register_flows([versioned(2)])
        await new.workflows()  # registration is recorded in the background: wait for it
        async with WorkflowApp.open(durable_url, worker=False) as client:
            listed = await client.workflows()
            run_id = await client.start("catalog.flow")
            result = await client.wait_for(run_id, timeout=5)
    assert [(w["version"], w["steps"]) for w in listed] == [(1, ["only"]), (2, ["only", "more"])]
    assert all(w["fingerprint"] == versioned(w["version"]).definition.fingerprint for w in listed)
    assert result.value == 2  # the newest version, driven by the app that has it


async def test_a_client_without_the_code_knows_nothing_else(store_url: str) -> None:
    async with WorkflowApp.open(store_url, worker=False) as client:
        assert await client.workflows() == []
        with pytest.raises(UnknownWorkflowError, match=r"'catalog\.flow'"):
            await client.start("catalog.flow")
        registered: list[Any] = client.manifest()
    assert registered == []


async def test_an_app_that_registers_and_closes_at_once_leaves_its_workflows(
    durable_url: str,
) -> None:
    async with WorkflowApp.open(durable_url, worker=False) as brief:
        brief.register_flows([versioned(1)])
    async with WorkflowApp.open(durable_url, worker=False) as other:
        assert [w["name"] for w in await other.workflows()] == ["catalog.flow"]
