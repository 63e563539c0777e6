"""stemlog: durable Flow and WorkflowScript runs on an event-sourced, append-only log.

This module only re-exports the public names (``__all__``, which a test holds
to the list in DESIGN.md). They are loaded on first use, so importing a
submodule (``stemlog.model``, say) does not import the whole engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.audit import Difference, RebuildResult
    from projections.step_stats import StepStats
    from projections.workflow_stats import WorkflowStats
    from stemlog.app import WorkflowApp
    from stemlog.authoring.context import FlowContext, ScriptStepContext, StepContext
    from stemlog.authoring.definition import WorkflowDefinition
    from stemlog.authoring.policies import RetryPolicy
    from stemlog.authoring.refs import WorkflowRef
    from stemlog.authoring.script import ScriptContext
    from stemlog.authoring.workflows import Flow, WorkflowScript
    from stemlog.errors import (
        ChildWorkflowError,
        EventTimeoutError,
        InvalidDefinitionError,
        InvalidPayloadError,
        InvalidStoreURLError,
        InvalidTopicError,
        MissingValueError,
        NonDeterminismError,
        ResultNotAvailableError,
        RunEndedError,
        RunExistsError,
        StemlogError,
        StepFailedError,
        StoreUnavailableError,
        StoreWriteError,
        UnknownRunError,
        UnknownStepError,
        UnknownWorkflowError,
    )
    from stemlog.execution.replay import ReplayReport, StateSnapshot, replay
    from stemlog.model.fold import fold
    from stemlog.model.policy import CancellationPolicy
    from stemlog.model.records import (
        ErrorInfo,
        Fact,
        RunStatus,
        RunView,
        WorkflowKind,
        WorkflowResult,
    )
    from stemlog.model.state import RunState
    from stemlog.runtime.queries import Stats
    from stemlog.runtime.read_models import ModelStatus, ReadModels

__all__ = [
    "CancellationPolicy",
    "ChildWorkflowError",
    "Difference",
    "ErrorInfo",
    "EventTimeoutError",
    "Fact",
    "Flow",
    "FlowContext",
    "InvalidDefinitionError",
    "InvalidPayloadError",
    "InvalidStoreURLError",
    "InvalidTopicError",
    "MissingValueError",
    "ModelStatus",
    "NonDeterminismError",
    "ReadModels",
    "RebuildResult",
    "ReplayReport",
    "ResultNotAvailableError",
    "RetryPolicy",
    "RunEndedError",
    "RunExistsError",
    "RunState",
    "RunStatus",
    "RunView",
    "ScriptContext",
    "ScriptStepContext",
    "StateSnapshot",
    "Stats",
    "StemlogError",
    "StepContext",
    "StepFailedError",
    "StepStats",
    "StoreUnavailableError",
    "StoreWriteError",
    "UnknownRunError",
    "UnknownStepError",
    "UnknownWorkflowError",
    "WorkflowApp",
    "WorkflowDefinition",
    "WorkflowKind",
    "WorkflowRef",
    "WorkflowResult",
    "WorkflowScript",
    "WorkflowStats",
    "fold",
    "replay",
]

_HOMES = {
    "WorkflowApp": "stemlog.app",
    "FlowContext": "stemlog.authoring.context",
    "ScriptStepContext": "stemlog.authoring.context",
    "StepContext": "stemlog.authoring.context",
    "WorkflowDefinition": "stemlog.authoring.definition",
    "RetryPolicy": "stemlog.authoring.policies",
    "WorkflowRef": "stemlog.authoring.refs",
    "ScriptContext": "stemlog.authoring.script",
    "Flow": "stemlog.authoring.workflows",
    "WorkflowScript": "stemlog.authoring.workflows",
    "ReplayReport": "stemlog.execution.replay",
    "StateSnapshot": "stemlog.execution.replay",
    "replay": "stemlog.execution.replay",
    "fold": "stemlog.model.fold",
    "CancellationPolicy": "stemlog.model.policy",
    "ErrorInfo": "stemlog.model.records",
    "Fact": "stemlog.model.records",
    "RunStatus": "stemlog.model.records",
    "RunView": "stemlog.model.records",
    "WorkflowKind": "stemlog.model.records",
    "WorkflowResult": "stemlog.model.records",
    "RunState": "stemlog.model.state",
    "Stats": "stemlog.runtime.queries",
    "ModelStatus": "stemlog.runtime.read_models",
    "ReadModels": "stemlog.runtime.read_models",
    "Difference": "projections.audit",
    "RebuildResult": "projections.audit",
    "StepStats": "projections.step_stats",
    "WorkflowStats": "projections.workflow_stats",
}
"""Where each public name is defined (the errors all live in :mod:`stemlog.errors`)."""


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'stemlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "stemlog.errors")), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
