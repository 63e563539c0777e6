"""Offline replay: re-execute a run from its history alone.

No store, no worker, no side effects: a completed step returns its recorded
value and a failed one raises its recorded error, without calling a handler;
the replay stops at the first step the history has no outcome for. Because
nothing real is awaited, a script's ``run`` is driven synchronously, so
:func:`replay` works in and out of an event loop. A script that awaits
anything but its own checkpoints (a real sleep, I/O) cannot be replayed and
reports that as the divergence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, final

from stemlog.authoring.context import ScriptStepHandler
from stemlog.authoring.interrupts import RunInterrupt
from stemlog.authoring.policies import RetryPolicy
from stemlog.authoring.script import ScriptContext
from stemlog.authoring.workflows import Definable, as_definition
from stemlog.codec import JSONValue
from stemlog.errors import InvalidPayloadError, NonDeterminismError
from stemlog.execution.determinism import check_flow
from stemlog.model.facts import AnyFact
from stemlog.model.fold import evolve, fold
from stemlog.model.history import as_facts
from stemlog.model.records import Fact, RunStatus, WorkflowKind
from stemlog.model.state import RunState, StepKey, step_label


@final
@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The folded state right after one fact (a summary; see ``ReplayReport.state_at``)."""

    position: int
    fact: str
    timestamp: datetime
    status: RunStatus
    current_step: str | None
    wait_topic: str | None
    wake_at: datetime | None
    attempt: int
    completed_steps: int


@final
@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay found.

    ``states`` has one snapshot per fact replayed; ``requested`` lists the
    ``(step, iteration)`` pairs the code asked for, in order; ``final`` is the
    state after the last fact replayed; ``divergence`` is the first
    :class:`NonDeterminismError`, or ``None``.
    """

    run_id: str
    workflow: str
    states: list[StateSnapshot]
    requested: list[StepKey]
    final: RunState
    divergence: NonDeterminismError | None
    facts: Sequence[AnyFact]

    def state_at(self, position: int) -> RunState:
        """The full folded state right after fact ``position`` (1-based)."""
        return fold(self.facts[:position])


class _ReplayStopped(RunInterrupt):
    """The code asked for a step the history has no outcome for."""


@final
class _RecordedSteps:
    def __init__(self, state: RunState) -> None:
        self._state = state

    @property
    def state(self) -> RunState:
        return self._state

    async def execute(
        self,
        key: StepKey,
        fn: ScriptStepHandler,
        position: int,
        previous: tuple[bool, JSONValue],
        retry: RetryPolicy | None,
    ) -> JSONValue:
        raise _ReplayStopped


def replay(
    history: Iterable[Fact | AnyFact],
    definition: Definable,
    *,
    until: int | None = None,
) -> ReplayReport:
    """Re-execute a run of ``definition`` against ``history``, with no store and no
    side effects: every step is answered from the history.

    Args:
        history: the run's facts in order: what ``app.history`` returns (``Fact``
            records, each naming its run), or stored fact objects.
        definition: the Flow, WorkflowScript or definition to check the history against.
        until: replay only facts ``1..until`` (inclusive): time travel.

    Raises:
        InvalidPayloadError: the history is empty, malformed, or mixes runs.
    """
    facts = as_facts(history)
    if until is not None:
        facts = facts[: max(until, 1)]
    states, final = _fold_with_snapshots(facts)
    workflow = as_definition(definition)
    if workflow.kind is WorkflowKind.FLOW:
        requested, divergence = check_flow(final, workflow.steps)
    else:
        requested, divergence = _replay_script(final, workflow)
    return ReplayReport(final.run_id, final.workflow, states, requested, final, divergence, facts)


def _fold_with_snapshots(facts: list[AnyFact]) -> tuple[list[StateSnapshot], RunState]:
    if not facts:
        raise InvalidPayloadError("history", "a history holds at least RunStarted")
    state = fold(facts[:1])
    snapshots = [_snapshot(state, facts[0])]
    for fact in facts[1:]:
        evolve(state, fact)
        snapshots.append(_snapshot(state, fact))
    return snapshots, state


def _snapshot(state: RunState, fact: AnyFact) -> StateSnapshot:
    wait = state.wait
    return StateSnapshot(
        position=fact.originator_version,
        fact=type(fact).__name__,
        timestamp=fact.timestamp,
        status=state.status,
        current_step=None if state.current is None else step_label(state.current),
        wait_topic=None if wait is None else wait.topic,
        wake_at=None if wait is None else wait.wake_at,
        attempt=state.attempt,
        completed_steps=len(state.completed),
    )


def _replay_script(
    state: RunState, workflow: Any
) -> tuple[list[StepKey], NonDeterminismError | None]:
    script = ScriptContext(_RecordedSteps(state))
    coroutine: Coroutine[Any, Any, Any] = workflow.run(script)
    try:
        coroutine.send(None)
    except StopIteration:
        if state.status is RunStatus.COMPLETED or not state.steps:
            with contextlib.suppress(NonDeterminismError):
                script.check_end()
    except (_ReplayStopped, NonDeterminismError):
        pass
    except Exception:  # the run raised: its recorded failure, replayed
        pass
    else:  # awaited something that is not a checkpoint
        coroutine.close()
        error = NonDeterminismError(
            state.run_id, len(script.requested), None, "an await outside script.step"
        )
        return script.requested, error
    finally:
        coroutine.close()
    return script.requested, script.divergence
