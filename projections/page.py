"""Folding one page of the log into the read models' rows and stats.

Each fact is folded into its run's state by :func:`stemlog.model.fold.evolve`
(a run started earlier continues from the state its row kept), and counted in
the stats one fact at a time; the rows are then derived from the states
(:func:`projections.runs.row_of`). Nothing here gives a fact a meaning of its
own, so a page-by-page maintenance, a rebuild and a fresh fold agree on every
column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import final

from projections.runs import RunRow, row_of, state_of
from projections.step_stats import StepStats
from projections.workflow_stats import WorkflowStats
from stemlog.model.facts import RunStarted, StepCompleted, StepFailed
from stemlog.model.fold import evolve, start_state
from stemlog.model.records import RunStatus
from stemlog.model.state import RunState
from stemlog.store.base import LoggedFact


@final
@dataclass(slots=True)
class StatsDelta:
    """What one page of facts adds to the ``step_stats`` and ``workflow_stats`` models."""

    steps: dict[tuple[str, str], StepStats] = field(default_factory=dict)
    workflows: dict[tuple[str, str], WorkflowStats] = field(default_factory=dict)

    def step(self, workflow: str, step: str) -> StepStats:
        """The change to one ``step_stats`` row."""
        key = (workflow, step)
        if key not in self.steps:
            self.steps[key] = StepStats(workflow, step)
        return self.steps[key]

    def workflow(self, workflow: str, status: str) -> WorkflowStats:
        """The change to one ``workflow_stats`` row."""
        key = (workflow, status)
        if key not in self.workflows:
            self.workflows[key] = WorkflowStats(workflow, status)
        return self.workflows[key]

    def moved(self, state: RunState, before: RunStatus | None) -> None:
        """Count a run that went from status ``before`` (``None``: it just started) to
        its state's status; a run that ended adds its duration."""
        after = state.status
        if before is not None:
            self.workflow(state.workflow, str(before)).count -= 1
        ended = self.workflow(state.workflow, str(after))
        ended.count += 1
        if state.ended_at is not None:
            ended.add_duration((state.ended_at - state.created_at).total_seconds())


def fold_page(
    page: Sequence[LoggedFact], previous: Mapping[str, RunRow]
) -> tuple[list[RunRow], StatsDelta]:
    """The rows the page leaves and what it adds to the stats.

    ``previous`` holds the rows of the runs the page continues (runs started
    on earlier pages); a fact of a run with neither a row nor its
    ``RunStarted`` in the page is skipped, as there is no state to fold it into.
    """
    delta = StatsDelta()
    states: dict[str, tuple[RunState, int]] = {}
    for logged in page:
        fact = logged.fact
        run_id = str(fact.originator_id)
        if isinstance(fact, RunStarted):
            started = start_state(fact)
            states[run_id] = (started, logged.position)
            delta.moved(started, None)
            continue
        entry = states.get(run_id)
        if entry is None:
            row = previous.get(run_id)
            if row is None:
                continue
            entry = states[run_id] = (state_of(row), row.seq)
        state = entry[0]
        status, step_started_at = state.status, state.step_started_at
        evolve(state, fact)
        if isinstance(fact, StepCompleted | StepFailed):
            delta.step(state.workflow, fact.step).account(fact, step_started_at)
        if state.status is not status:
            delta.moved(state, status)
    return [row_of(state, seq) for state, seq in states.values()], delta
