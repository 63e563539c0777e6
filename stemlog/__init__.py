"""stemlog: durable Flow and WorkflowScript runs on an event-sourced, append-only log."""

from stemlog.app import WorkflowApp
from stemlog.authoring.context import FlowContext, ScriptStepContext, StepContext
from stemlog.authoring.definitions import Flow, WorkflowDefinition, WorkflowScript
from stemlog.authoring.policies import CancellationPolicy, RetryPolicy
from stemlog.authoring.refs import WorkflowRef
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
    StemlogError,
    StepFailedError,
    UnknownRunError,
    UnknownStepError,
    UnknownWorkflowError,
)
from stemlog.execution.replay import ReplayReport, StateSnapshot, replay
from stemlog.execution.script import ScriptContext
from stemlog.model.fold import RunState, fold
from stemlog.model.records import ErrorInfo, Fact, RunStatus, RunView, WorkflowKind, WorkflowResult

__all__ = [
    "CancellationPolicy",
    "ChildWorkflowError",
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
    "NonDeterminismError",
    "ReplayReport",
    "ResultNotAvailableError",
    "RetryPolicy",
    "RunEndedError",
    "RunState",
    "RunStatus",
    "RunView",
    "ScriptContext",
    "ScriptStepContext",
    "StateSnapshot",
    "StemlogError",
    "StepContext",
    "StepFailedError",
    "UnknownRunError",
    "UnknownStepError",
    "UnknownWorkflowError",
    "WorkflowApp",
    "WorkflowDefinition",
    "WorkflowKind",
    "WorkflowRef",
    "WorkflowResult",
    "WorkflowScript",
    "fold",
    "replay",
]
