"""Definitions, registry, refs, codec and the public names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings

import stemlog
from stemlog import (
    Flow,
    InvalidDefinitionError,
    InvalidPayloadError,
    UnknownWorkflowError,
    WorkflowScript,
)
from stemlog.authoring.registry import Registry
from stemlog.codec import normalize_json
from stemlog.store.transcoder import OrjsonTranscoder
from tests.strategies import json_values


def test_flow_decorator_call_and_build_forms_declare_the_same_steps() -> None:
    decorated = Flow("f")

    @decorated.step("a")
    def a(ctx: object) -> int:
        return 1

    decorated.step("b", lambda ctx: 2)

    def build(flow: Flow) -> None:
        flow.step("a", lambda ctx: 1)
        flow.step("b", lambda ctx: 2)

    built = Flow("f", build=build)
    assert [s.name for s in decorated.definition.steps] == ["a", "b"]
    assert decorated.definition.fingerprint == built.definition.fingerprint
    assert a(None) == 1  # the decorator returns the handler


@pytest.mark.parametrize("name", ["", "   ", None])
def test_names_must_be_non_empty(name: object) -> None:
    with pytest.raises(InvalidDefinitionError):
        Flow(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinitionError):
        Flow("ok").step(name, lambda ctx: 1)  # type: ignore[arg-type]


def test_duplicate_steps_and_empty_flows_are_refused() -> None:
    flow = Flow("dup")
    flow.step("a", lambda ctx: 1)
    with pytest.raises(InvalidDefinitionError, match="twice"):
        flow.step("a", lambda ctx: 2)
    with pytest.raises(InvalidDefinitionError, match="at least one step"):
        _ = Flow("empty").definition
    with pytest.raises(InvalidDefinitionError):
        Flow("v", version=0)


def test_fingerprints_follow_the_declared_steps_and_version() -> None:
    def flow(steps: list[str], version: int = 1) -> str:
        f = Flow("fp", version=version)
        for name in steps:
            f.step(name, lambda ctx: None)
        return f.definition.fingerprint

    assert flow(["a", "b"]) == flow(["a", "b"])
    assert flow(["a", "b"]) != flow(["b", "a"])
    assert flow(["a", "b"]) != flow(["a", "b"], version=2)


def test_scripts_expose_their_definition() -> None:
    async def run(script: object) -> None:
        return None

    script = WorkflowScript("s", run=run, version=3)
    assert script.definition.kind == "script"
    assert script.name == "s"
    assert script.definition.definition is script.definition
    assert script.definition.manifest()["version"] == 3


def test_registry_takes_the_highest_version_and_refuses_a_clash() -> None:
    registry = Registry()
    v1, v2 = Flow("r", version=1), Flow("r", version=2)
    v1.step("a", lambda ctx: 1)
    v2.step("b", lambda ctx: 1)
    registry.add_all([v1, v2.definition])
    registry.add_all([v1])  # the same definition again: nothing changes
    assert registry.latest("r").version == 2
    assert registry.resolve("r", 1) is v1.definition
    with pytest.raises(UnknownWorkflowError):
        registry.latest("missing")
    clash = Flow("r", version=1)
    clash.step("other", lambda ctx: 1)
    with pytest.raises(InvalidDefinitionError, match="already registered"):
        registry.add_all([clash])


@dataclass
class Params:
    document_id: str


class WithToJson:
    def to_json(self) -> dict[str, str]:
        return {"id": "x"}


def test_refs_encode_params_objects() -> None:
    flow = Flow("refs")
    flow.step("a", lambda ctx: 1)
    assert flow.ref_json().encode(Params("d1")) == {"document_id": "d1"}
    assert flow.ref_json().encode(WithToJson()) == {"id": "x"}
    assert flow.ref(encode_params=lambda p: {"draft": p}).encode("doc") == {"draft": "doc"}
    with pytest.raises(InvalidPayloadError):
        flow.ref_json().encode(object())


@pytest.mark.parametrize(
    "value", [{1, 2}, math.nan, math.inf, 2**70, object(), {"nested": [float("nan")]}]
)
def test_values_orjson_cannot_store_are_refused(value: object) -> None:
    with pytest.raises(InvalidPayloadError):
        normalize_json(value, "payload")


def test_values_are_normalised_to_their_json_form() -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert normalize_json(Params("d"), "p") == {"document_id": "d"}
    assert normalize_json({"at": moment}, "p") == {"at": "2030-01-02T03:04:05+00:00"}
    assert normalize_json((1, 2), "p") == [1, 2]


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_json_values_survive_normalisation_and_the_transcoder(value: object) -> None:
    normalized = normalize_json(value, "value")
    assert normalize_json(normalized, "value") == normalized
    transcoder = OrjsonTranscoder()
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    state = {"timestamp": moment, "value": normalized}
    assert transcoder.decode(transcoder.encode(state)) == state


def test_public_names_are_sorted_and_importable() -> None:
    assert stemlog.__all__ == sorted(stemlog.__all__)
    for name in stemlog.__all__:
        assert getattr(stemlog, name) is not None
    design = {"Flow", "WorkflowScript", "WorkflowApp", "RetryPolicy", "CancellationPolicy",
              "RunStatus", "WorkflowResult", "RunView", "ErrorInfo", "Fact", "fold", "replay",
              "ReplayReport", "NonDeterminismError", "StepFailedError", "EventTimeoutError",
              "StemlogError", "FlowContext", "ScriptStepContext"}  # fmt: skip
    assert design <= set(stemlog.__all__)
