"""Folding one page of the log into the read models' rows and stats.

Each fact is folded into its run's state by :func:`stemlog.model.fold.evolve`
(a run started earlier continues from the state its row kept), and counted in
the stats one fact at a time; the rows are then derived from the states
(:func:`projections.runs.row_of`). Nothing here gives a fact a meaning of its
own, so a page-by-page maintenance, a rebuild and a fresh fold agree on every
column.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import final

from projections.runs import RunRow, row_of, state_of
from projections.step_stats import StepStats
from projections.workflow_stats import WorkflowStats
from stemlog.clock import to_micros
from stemlog.model.facts import FACT_TYPES, RunStarted, StepCompleted, StepFailed
from stemlog.model.fold import evolve, start_state
from stemlog.model.records import RunStatus
from stemlog.model.state import RunState
from stemlog.store.base import LoggedFact, UnreadableFact

logger = logging.getLogger("stemlog.projections")


@final
@dataclass(slots=True)
class StatsDelta:
    """What one page of facts adds to the ``step_stats`` and ``workflow_stats`` models."""

    steps: dict[tuple[str, str], StepStats] = field(default_factory=dict)
    workflows: dict[tuple[str, str], WorkflowStats] = field(default_factory=dict)

    def step(self, workflow: str, step: str) -> StepStats:
        """The change to one ``step_stats`` row."""
        key = (workflow, step)
        found = self.steps.get(key)
        if found is None:
            found = self.steps[key] = StepStats(workflow, step)
        return found

    def workflow(self, workflow: str, status: str) -> WorkflowStats:
        """The change to one ``workflow_stats`` row."""
        key = (workflow, status)
        found = self.workflows.get(key)
        if found is None:
            found = self.workflows[key] = WorkflowStats(workflow, status)
        return found

    def merge(self, other: StatsDelta) -> None:
        """Add what ``other`` adds (another share of the same page's runs)."""
        for (workflow, step), stats in other.steps.items():
            self.step(workflow, step).merge(stats)
        for (workflow, status), counts in other.workflows.items():
            self.workflow(workflow, status).merge(counts)

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


@contextlib.contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a page is applied, back on after
    (if it was on).

    A page holds thousands of facts, states and rows at once; as they outlive the
    collector's young generations, every page or two it would walk every object of
    the process: a quarter of a rebuild's time. Nothing a page allocates forms a
    cycle (its facts, states, rows and stats are freed by reference counting when
    it ends), and the collector runs again between pages for what other threads
    leave.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fold_page(
    page: Sequence[LoggedFact], previous: Mapping[str, RunRow]
) -> tuple[list[RunRow], StatsDelta]:
    """The rows the page leaves and what it adds to the stats.

    ``previous`` holds the rows of the runs the page continues (runs started
    on earlier pages); a fact of a run with neither a row nor its
    ``RunStarted`` in the page is skipped, as there is no state to fold it into.

    One run's bad fact never stops the page: a fact that cannot be read or
    folded sets its run aside as *blocked* — its row shows the state before
    that fact, with the reason — later facts of that run are not folded, and
    every other run goes on. However the log is cut into pages, a blocked run
    ends up with the same row. The worker leaves a blocked run alone.
    """
    delta = StatsDelta()
    states: dict[str, tuple[RunState, int]] = {}
    blocked: dict[str, RunRow] = {}
    plain, stepping = _PLAIN, _STEP_FACTS
    for index, logged in enumerate(page):
        fact = logged.fact
        run_id = str(fact.originator_id)
        entry = states.get(run_id)
        try:
            if entry is not None:  # the common case, inline: a run this page folds already
                kind = type(fact)
                if kind in plain:
                    state = entry[0]
                    status = state.status
                    evolve(state, fact)  # type: ignore[arg-type]
                    if state.status is not status:
                        delta.moved(state, status)
                    continue
                if kind in stepping:
                    _fold_step(entry[0], fact, delta)  # type: ignore[arg-type]
                    continue
            row = previous.get(run_id)
            if run_id in blocked or (row is not None and row.blocked is not None):
                continue
            _fold_one(logged, run_id, states, delta, row)
        except Exception as error:
            row = previous.get(run_id)
            reason = _reason(logged, error)
            before = [item for item in page[:index] if str(item.fact.originator_id) == run_id]
            blocked[run_id] = _blocked_row(run_id, reason, row, before, logged)
            states.pop(run_id, None)
            logger.warning("run %s set aside as blocked: %s", run_id, reason,
                           extra={"run_id": run_id})  # fmt: skip
    rows = [_row(state, seq) for state, seq in states.values()]
    return rows + list(blocked.values()), delta


_STEP_FACTS = frozenset({StepCompleted, StepFailed})
"""Facts that also count in ``step_stats``."""
_PLAIN = frozenset(cls for cls in FACT_TYPES if cls not in (RunStarted, *_STEP_FACTS))
"""Facts that only evolve the state: folded inline by :func:`fold_page`."""


def _fold_step(state: RunState, fact: StepCompleted | StepFailed, delta: StatsDelta) -> None:
    """Fold a step's outcome and count it (its duration from the state's
    ``step_started_at`` before the fold)."""
    status, step_started_at = state.status, state.step_started_at
    evolve(state, fact)
    delta.step(state.workflow, fact.step).account(fact, step_started_at)
    if state.status is not status:
        delta.moved(state, status)


def _fold_one(
    logged: LoggedFact,
    run_id: str,
    states: dict[str, tuple[RunState, int]],
    delta: StatsDelta | None,
    row: RunRow | None,
) -> None:
    fact = logged.fact
    if isinstance(fact, UnreadableFact):
        raise ValueError(f"cannot be read ({fact.topic}): {fact.error}")
    if isinstance(fact, RunStarted):
        started = start_state(fact)
        states[run_id] = (started, start_seq(logged))
        if delta is not None:
            delta.moved(started, None)
        return
    entry = states.get(run_id)
    if entry is None:
        if row is None:
            return
        entry = states[run_id] = (state_of(row), row.seq)
    state = entry[0]
    if delta is not None and isinstance(fact, StepCompleted | StepFailed):
        _fold_step(state, fact, delta)
        return
    status = state.status
    evolve(state, fact)
    if delta is not None and state.status is not status:
        delta.moved(state, status)


PARTITION_BITS = 6
"""Room for 64 partitions in a ``seq`` (see :func:`start_seq`)."""


def start_seq(logged: LoggedFact) -> int:
    """Where the run a ``RunStarted`` starts goes in ``list_runs`` (its row's ``seq``).

    In a log of one partition: the fact's position, the order of the commits.
    Across partitions there is no common commit order, so the start time is the
    order: its microseconds, shifted to make room for the partition's number
    (runs started in the same microsecond of one partition are ordered by id).
    """
    if logged.partitions == 1:
        return logged.position
    fact = logged.fact
    micros = 0 if isinstance(fact, UnreadableFact) else to_micros(fact.timestamp)
    return (micros << PARTITION_BITS) | logged.partition


def _row(state: RunState, seq: int) -> RunRow:
    try:
        return row_of(state, seq)
    except Exception as error:
        reason = f"its state cannot be shown: {type(error).__name__}: {error}"
        logger.warning("run %s set aside as blocked: %s", state.run_id, reason,
                       extra={"run_id": state.run_id})  # fmt: skip
        return replace(row_of(state, seq, schedule=False), blocked=reason)


def _reason(logged: LoggedFact, error: Exception) -> str:
    kind = type(logged.fact).__name__
    return f"fact {logged.fact.originator_version} ({kind}): {type(error).__name__}: {error}"


def _blocked_row(
    run_id: str,
    reason: str,
    before: RunRow | None,
    folded: list[LoggedFact],
    bad: LoggedFact,
) -> RunRow:
    """What a blocked run shows: the state before its bad fact (folded again from
    the row the page started with), or a placeholder if it never had one."""
    states: dict[str, tuple[RunState, int]] = {}
    if before is not None:
        states[run_id] = (state_of(before), before.seq)
    for logged in folded:
        _fold_one(logged, run_id, states, None, before)
    if run_id in states:
        state, seq = states[run_id]
        return replace(row_of(state, seq, schedule=False), blocked=reason)
    moment = datetime(1970, 1, 1, tzinfo=UTC)
    return RunRow(
        run_id=run_id, seq=start_seq(bad), workflow="?", kind="flow", version=0,
        status=RunStatus.RUNNING, params={}, created_at=moment, updated_at=moment,
        position=0, parent_run_id=None, ttl=None, result=None, error=None,
        current_step=None, wait_topic=None, wake_at=None, deadline=None, retry_at=None,
        attempts=0, cancel_reason=None, ended_at=None, expires_at=None, due_at=None,
        state={}, blocked=reason,
    )  # fmt: skip
