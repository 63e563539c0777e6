"""stemlog: durable Flow and WorkflowScript runs on an event-sourced, append-only log."""

from stemlog.app import WorkflowApp
from stemlog.context import FlowContext, ScriptStepContext, StepContext
from stemlog.definitions import Flow, WorkflowDefinition, WorkflowScript
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
from stemlog.fold import RunState, fold
from stemlog.policies import CancellationPolicy, RetryPolicy
from stemlog.records import ErrorInfo, Fact, RunStatus, RunView, WorkflowKind, WorkflowResult
from stemlog.refs import WorkflowRef
from stemlog.replay import ReplayReport, StateSnapshot, replay
from stemlog.script import ScriptContext

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
