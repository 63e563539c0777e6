"""The public names are exactly DESIGN.md's, and every error a caller sees is a StemlogError."""

from __future__ import annotations

from datetime import datetime

import pytest

import stemlog
from stemlog import RetryPolicy, StemlogError, WorkflowApp
from stemlog.clock import require_aware

V1 = [
    "CancellationPolicy", "ChildWorkflowError", "ErrorInfo", "EventTimeoutError", "Fact", "Flow",
    "FlowContext", "InvalidDefinitionError", "InvalidPayloadError", "InvalidStoreURLError",
    "InvalidTopicError", "MissingValueError", "NonDeterminismError", "ReplayReport",
    "ResultNotAvailableError", "RetryPolicy", "RunEndedError", "RunState", "RunStatus", "RunView",
    "ScriptContext", "ScriptStepContext", "StateSnapshot", "StemlogError", "StepContext",
    "StepFailedError", "UnknownRunError", "UnknownStepError", "UnknownWorkflowError",
    "WorkflowApp", "WorkflowDefinition", "WorkflowKind",
    "WorkflowRef", "WorkflowResult", "WorkflowScript", "fold", "replay",
]  # fmt: skip
V2_LANDED = [
    # the record types public methods return
    "Stats", "StepStats", "WorkflowStats", "ModelStatus", "ReadModels", "RebuildResult",
    "Difference",
    # faults
    "StoreUnavailableError", "StoreWriteError",
    # runs by key
    "RunExistsError",
]  # fmt: skip


def test_all_is_exactly_the_design_list() -> None:
    assert sorted(stemlog.__all__) == sorted(V1 + V2_LANDED)
    assert stemlog.__all__ == sorted(stemlog.__all__)


def test_every_public_name_resolves_and_is_defined_where_it_lives() -> None:
    for name in stemlog.__all__:
        value = getattr(stemlog, name)
        assert value is not None
        module = getattr(value, "__module__", "")
        assert module.startswith(("stemlog.", "projections.")), (name, module)
    assert set(dir(stemlog)) >= set(stemlog.__all__)
    with pytest.raises(AttributeError):
        _ = stemlog.NotAName  # type: ignore[attr-defined]


def test_manual_clock_is_public_in_testing() -> None:
    from stemlog.testing import ManualClock

    clock = ManualClock()
    before = clock.now()
    clock.advance(5)
    assert (clock.now() - before).total_seconds() == 5


@pytest.mark.parametrize(
    "build",
    [
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(backoff=0.5),
        lambda: RetryPolicy(initial_delay="soon"),  # type: ignore[arg-type]
        lambda: require_aware(datetime(2030, 1, 1), "deadline"),
        lambda: require_aware("tomorrow", "deadline"),  # type: ignore[arg-type]
        lambda: WorkflowApp.open("postgresql://host"),
    ],
)
def test_bad_values_raise_stemlog_errors(build: object) -> None:
    with pytest.raises(StemlogError):
        build()  # type: ignore[operator]


@pytest.mark.anyio
async def test_an_app_used_outside_its_block_says_so() -> None:
    app = WorkflowApp.open("memory://")
    with pytest.raises(StemlogError, match="not open"):
        await app.get_run("00000000-0000-0000-0000-000000000000")
    async with app:
        pass
    with pytest.raises(StemlogError, match="not open"):
        await app.list_runs()
