"""The fold: what a history means, fact by fact, and as properties over real histories."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings

from projections.page import fold_page
from projections.timers import timer_due
from projections.watchers import watcher_topic
from stemlog import RunStatus, fold
from stemlog.errors import RunEndedError
from stemlog.model.facts import RunStarted
from stemlog.model.fold import evolve
from stemlog.model.state import ResumeKind
from stemlog.store.base import LoggedFact
from tests.strategies import START, apply, commands, histories, new_run

T = START


def facts_of(run: Any) -> list[Any]:
    return list(run.collect_events())


def test_a_started_run_is_running_with_its_params() -> None:
    run = new_run({"draft": {"id": 1}})
    state = fold(facts_of(run))
    assert state.status is RunStatus.RUNNING
    assert state.params == {"draft": {"id": 1}}
    assert state.position == 1
    assert state.completed == {}


def test_completed_values_are_keyed_by_step_and_iteration() -> None:
    run = new_run()
    for iteration, value in enumerate([None, {"x": 1}]):
        run.start_step(("loop", iteration), 1, T)
        run.complete_step(("loop", iteration), value, T)
    state = fold(facts_of(run))
    assert state.completed == {("loop", 0): None, ("loop", 1): {"x": 1}}
    assert state.steps == [("loop", 0), ("loop", 1)]
    assert state.current is None


def test_an_awaited_event_suspends_and_its_payload_resumes_the_step() -> None:
    run = new_run()
    run.start_step(("review", 0), 1, T)
    run.await_event(("review", 0), "approvals", T + timedelta(hours=1), T)
    suspended = fold(copy.copy(facts_of(run)))
    assert suspended.status is RunStatus.SUSPENDED
    assert suspended.wait is not None
    assert (suspended.wait.topic, suspended.wait.deadline) == ("approvals", T + timedelta(hours=1))
    run.receive_event("approvals", {"by": "alice"}, "e1", T)
    state = run.state
    assert state.status is RunStatus.RUNNING
    assert state.wait is None
    resume = state.resume_for(("review", 0))
    assert resume is not None
    assert (resume.kind, resume.payload) == (ResumeKind.EVENT, {"by": "alice"})
    assert state.next_attempt(("review", 0)) == 1  # re-entry keeps the attempt


def test_a_payload_sent_before_the_wait_satisfies_it_at_once() -> None:
    run = new_run()
    run.receive_event("later", 42, "e1", T)
    assert run.state.inbox["later"][0].payload == 42
    run.start_step(("s", 0), 1, T)
    run.await_event(("s", 0), "later", None, T)
    state = run.state
    assert state.status is RunStatus.RUNNING
    assert state.resume is not None
    assert state.resume.payload == 42
    assert state.inbox["later"] == []


def test_a_repeated_event_id_is_delivered_once() -> None:
    run = new_run()
    run.receive_event("t", 1, "same", T)
    run.receive_event("t", 2, "same", T)
    assert [d.payload for d in run.state.inbox["t"]] == [1]


def test_timeout_and_sleep_resume_with_their_kinds() -> None:
    run = new_run()
    run.start_step(("w", 0), 1, T)
    run.await_event(("w", 0), "t", T + timedelta(seconds=1), T)
    run.time_out_event(T + timedelta(seconds=2))
    assert run.state.resume is not None
    assert run.state.resume.kind is ResumeKind.TIMEOUT
    run.start_step(("w", 0), 1, T)
    run.start_sleep(("w", 0), T + timedelta(seconds=5), T)
    assert run.state.wait is not None
    assert run.state.wait.due_at == T + timedelta(seconds=5)
    run.elapse_sleep(T + timedelta(seconds=6))
    assert run.state.resume is not None
    assert (run.state.resume.kind, run.state.resume.payload) == (ResumeKind.SLEEP, True)


def test_a_start_with_no_outcome_counts_as_an_attempt() -> None:
    run = new_run()
    run.start_step(("poison", 0), 1, T)
    state = fold(facts_of(run))  # as a new worker reads it after a crash
    assert state.in_flight
    assert state.next_attempt(("poison", 0)) == 2


def test_failed_attempts_count_and_a_final_failure_settles_the_step() -> None:
    run = new_run()
    run.start_step(("s", 0), 1, T)
    run.fail_step(("s", 0), {"type": "E", "message": "m", "traceback": None}, T, T)
    assert run.state.retry_at == T
    assert run.state.next_attempt(("s", 0)) == 2
    run.start_step(("s", 0), 2, T)
    run.fail_step(("s", 0), {"type": "E", "message": "m", "traceback": None}, None, T)
    state = run.state
    assert state.failures[("s", 0)].type == "E"
    assert state.retries == {("s", 0): 1}
    assert state.current is None


@pytest.mark.parametrize(
    ("end", "status"),
    [
        ("complete", RunStatus.COMPLETED),
        ("fail", RunStatus.FAILED),
        ("cancel", RunStatus.CANCELLED),
    ],
)
def test_terminal_facts_end_the_run(end: str, status: RunStatus) -> None:
    run = new_run()
    match end:
        case "complete":
            run.complete("done", T)
        case "fail":
            run.fail({"type": "E", "message": "m", "traceback": None}, T)
        case "cancel":
            run.cancel("why", T)
    state = fold(facts_of(run))
    assert state.status is status
    assert state.ended_at == T
    with pytest.raises(RunEndedError):
        run.start_step(("s", 0), 1, T)


def test_rewind_forgets_the_step_and_the_ones_after_it() -> None:
    run = new_run()
    for name in "abc":
        run.start_step((name, 0), 1, T)
        run.complete_step((name, 0), name, T)
    run.complete("c", T)
    run.rewind("b", T)
    state = run.state
    assert state.status is RunStatus.RUNNING
    assert state.completed == {("a", 0): "a"}
    assert state.steps == [("a", 0)]


def test_fold_needs_run_started_first() -> None:
    run = new_run()
    run.start_step(("a", 0), 1, T)
    facts = facts_of(run)
    with pytest.raises(ValueError, match="RunStarted"):
        fold(facts[1:])
    with pytest.raises(ValueError, match="RunStarted"):
        fold([])


@settings(max_examples=80, deadline=None)
@given(histories)
def test_fold_agrees_with_the_aggregate(history: tuple[Any, list[Any]]) -> None:
    run, facts = history
    folded = fold(facts)
    assert folded == run.state


@settings(max_examples=60, deadline=None)
@given(histories)
def test_fold_is_pure_and_prefixes_compose(history: tuple[Any, list[Any]]) -> None:
    _, facts = history
    before = [dict(fact.__dict__) for fact in facts]
    whole = fold(facts)
    assert fold(facts) == whole
    assert [dict(fact.__dict__) for fact in facts] == before
    middle = len(facts) // 2 or 1
    state = fold(facts[:middle])
    for fact in facts[middle:]:
        evolve(state, fact)
    assert state == whole


@settings(max_examples=60, deadline=None)
@given(histories, commands)
def test_an_ended_run_refuses_everything_but_a_rewind(
    history: tuple[Any, list[Any]], later: list[tuple[str, str, Any]]
) -> None:
    run, _ = history
    if not run.state.status.is_terminal:
        run.cancel("ended for the test", START)
        run.collect_events()
    ended = copy.deepcopy(run.state)
    for tick, (command, name, value) in enumerate(later):
        if command == "rewind":
            continue
        assert not apply(run, command, name, value, START + timedelta(seconds=tick))
    assert run.collect_events() == []
    assert run.state == ended


@settings(max_examples=80, deadline=None)
@given(histories)
def test_the_runs_row_agrees_with_the_fold(history: tuple[Any, list[Any]]) -> None:
    _, facts = history
    first = facts[0]
    assert isinstance(first, RunStarted)
    logged = [LoggedFact(position, fact) for position, fact in enumerate(facts, start=1)]
    (row,), _ = fold_page(logged[:1], {})
    for item in logged[1:]:  # one fact per page: the row's kept state carries the fold on
        (row,), _ = fold_page([item], {row.run_id: row})
    state = fold(facts)
    assert row.status == state.status
    wait = state.wait
    assert watcher_topic(row) == (wait.topic if wait is not None else None)
    if wait is not None:
        assert timer_due(row) == wait.due_at
    assert row.position == state.position
    assert row.run_id == str(first.originator_id) == state.run_id
    assert uuid.UUID(row.run_id)


def test_a_decision_made_on_an_old_state_is_refused() -> None:
    from stemlog.model.run import StaleDecisionError

    run = new_run()
    run.start_step(("a", 0), 1, T)
    run.complete_step(("a", 0), 1, T)
    with pytest.raises(StaleDecisionError, match="settled"):
        run.start_step(("a", 0), 1, T)  # a worker that loaded the run before "a" completed
    run.start_step(("b", 0), 1, T)
    with pytest.raises(StaleDecisionError, match="under way"):
        run.start_step(("c", 0), 1, T)
    with pytest.raises(StaleDecisionError, match="started already"):
        run.start_step(("b", 0), 1, T)  # that attempt is another worker's
    run.start_step(("b", 0), 2, T)  # taking over a lost attempt is the next attempt
    assert run.state.attempt == 2


def test_every_fact_after_run_started_has_a_meaning_in_the_fold() -> None:
    from stemlog.model.facts import FACT_TYPES
    from stemlog.model.fold import _APPLY

    assert set(_APPLY) == set(FACT_TYPES) - {RunStarted}
