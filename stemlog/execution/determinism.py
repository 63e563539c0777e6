"""Whether current code still matches a run's recorded history.

A run is pinned to the steps it recorded. Replaying a flow compares its
declared steps with that record; a script is compared request by request as
``run`` re-executes (:class:`stemlog.execution.script.ScriptContext`). A mismatch is a
:class:`~stemlog.errors.NonDeterminismError`: the live engine fails the run
with it instead of executing the wrong step, and replay reports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from stemlog.authoring.definition import StepSpec
from stemlog.errors import NonDeterminismError
from stemlog.model.state import RunState, StepKey, step_label


def check_flow(
    state: RunState, steps: Sequence[StepSpec]
) -> tuple[list[StepKey], NonDeterminismError | None]:
    """Match a flow's declared steps against the steps its history recorded.

    Returns the steps the flow asks for, in order, up to the first one not
    completed, and the first divergence (a step recorded at a position where
    the flow now declares another, or recorded steps past the declared end).
    """
    declared = [(spec.name, 0) for spec in steps]
    requested: list[StepKey] = []
    for position, key in enumerate(declared):
        recorded = state.steps[position] if position < len(state.steps) else None
        if recorded is not None and recorded != key:
            error = NonDeterminismError(state.run_id, position, step_label(recorded), key[0])
            return requested, error
        requested.append(key)
        if key not in state.completed:
            break
    if len(state.steps) > len(declared):
        extra = step_label(state.steps[len(declared)])
        return requested, NonDeterminismError(state.run_id, len(declared), extra, "<end of flow>")
    return requested, None
