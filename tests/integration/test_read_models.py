"""One meaning of a history: every column of every read model equals a fresh fold.

Hypothesis builds logs of several runs — with ttl, cancellation policies,
retries, crashes, waits and sleeps, rewinds after completion, cancellation
and retries, children waiting on their parents' topics, and forks — and
checks, on the in-memory and the SQLite views, that the models maintained
page by page, the models rebuilt in one page, and the models computed here
from each run's own fold agree on every row of ``runs``, ``watchers``,
``timers``, ``step_stats`` and ``workflow_stats``.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.audit import scratch_view
from projections.projector import Projector
from projections.runs import RunRow, row_of
from projections.step_stats import StepStats
from projections.view import RunsView
from projections.views.memory import POPORunsView
from projections.views.sqlite import SQLiteRunsView
from projections.workflow_stats import WorkflowStats
from stemlog.model.children import child_topic
from stemlog.model.facts import RunStarted, StepCompleted, StepFailed, StepStarted, fact_fields
from stemlog.model.fold import evolve, fold
from stemlog.model.records import RunStatus
from stemlog.model.run import Run
from stemlog.model.schedule import next_due, waiting_topic
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url
from tests.strategies import COMMANDS, START, apply

FAR = datetime(9999, 1, 1, tzinfo=UTC)
POLICIES = [
    None,
    {"max_run_duration": 30.0, "max_suspend_duration": None},
    {"max_run_duration": None, "max_suspend_duration": 2.0},
]

run_configs = st.lists(
    st.tuples(
        st.sampled_from([None, 0.5, 60.0]),  # ttl
        st.sampled_from(range(len(POLICIES))),  # policy
        st.booleans(),  # a child of the first run
    ),
    min_size=1,
    max_size=4,
)
steps = st.tuples(
    st.integers(0, 5),
    st.sampled_from([*COMMANDS, "await_child", "fork"]),
    st.sampled_from(["a", "b", "c"]),
)
plans = st.lists(steps, max_size=50)


@dataclass
class _Log:
    store: RunStore
    runs: list[Run] = field(default_factory=list)
    tick: int = 0

    def at(self) -> datetime:
        self.tick += 1
        return START + timedelta(milliseconds=self.tick)

    def begin(self, workflow: str, **fields: Any) -> Run:
        run = Run.begin(run_id=uuid.uuid4(), at=self.at(), workflow=workflow, kind="flow",
                        workflow_version=1, fingerprint="f", **fields)  # fmt: skip
        self.store.log.save(run)
        self.runs.append(run)
        return run

    def fork(self, source: Run, step: str) -> None:
        facts = list(self.store.log.events.get(uuid.UUID(source.state.run_id)))
        upto = next((i for i, f in enumerate(facts)
                     if isinstance(f, StepStarted) and f.step == step), None)  # fmt: skip
        if upto is None or len(self.runs) >= 6:
            return
        fields = fact_fields(facts[0])
        fields.update(parent_run_id=None, forked_from={"run_id": source.state.run_id,
                                                       "position": upto})  # fmt: skip
        run = Run.begin(run_id=uuid.uuid4(), at=facts[0].timestamp, **fields)
        for fact in facts[1:upto]:
            run.trigger_event(type(fact), timestamp=fact.timestamp, **fact_fields(fact))
        self.store.log.save(run)
        self.runs.append(run)


def build(store: RunStore, configs: list[tuple[Any, int, bool]], plan: list[Any]) -> _Log:
    log = _Log(store)
    for index, (ttl, policy, child) in enumerate(configs):
        parent = log.runs[0].state.run_id if child and log.runs else None
        log.begin(f"wf{index % 2}", params={"i": index}, parent_run_id=parent,
                  policy=POLICIES[policy], ttl=ttl, forked_from=None)  # fmt: skip
    for index, command, name in plan:
        run = log.runs[index % len(log.runs)]
        if command == "fork":
            log.fork(run, name)
            continue
        if command == "await_child":
            children = [r for r in log.runs if r.state.parent_run_id == run.state.run_id]
            if not children or run.state.current is None:
                continue
            try:
                run.await_event(run.state.current, child_topic(children[0].state.run_id),
                                None, log.at())  # fmt: skip
            except Exception:
                continue
            log.store.log.save(run)
            continue
        if apply(run, command, name, {"v": name}, log.at()):
            log.store.log.save(run)
    return log


@dataclass
class Models:
    runs: dict[str, RunRow]
    watchers: list[tuple[str, str]]
    timers: list[tuple[str, datetime]]
    step_stats: list[StepStats]
    workflow_stats: list[WorkflowStats]


def read_models(view: RunsView, run_ids: list[str]) -> Models:
    rows = {run_id: row for run_id in run_ids if (row := view.get_row(run_id)) is not None}
    dumped = view.dump()
    steps, flows = view.stats()
    watchers = [(str(topic), str(run_id)) for topic, run_id in dumped["watchers"]]
    return Models(rows, watchers, sorted(view.due(FAR, 1_000_000)), steps, flows)


def folded_models(store: RunStore) -> Models:
    """The models as each run's own fold says they are (no projector involved)."""
    seqs = {str(item.fact.originator_id): item.position
            for item in store.read(1, 1_000_000) if isinstance(item.fact, RunStarted)}  # fmt: skip
    rows: dict[str, RunRow] = {}
    watchers: list[tuple[str, str]] = []
    timers: list[tuple[str, datetime]] = []
    step_stats: dict[tuple[str, str], StepStats] = {}
    flows: dict[tuple[str, str], WorkflowStats] = {}
    for run_id, seq in seqs.items():
        facts = list(store.log.events.get(uuid.UUID(run_id)))
        state = fold(facts)
        rows[run_id] = row_of(state, seq)
        if (topic := waiting_topic(state)) is not None:
            watchers.append((topic, run_id))
        if (due := next_due(state)) is not None:
            timers.append((run_id, due.at))
        _count_stats(facts, step_stats, flows)
    kept = [flows[key] for key in sorted(flows) if not flows[key].empty]
    timers.sort()
    steps_sorted = [step_stats[key] for key in sorted(step_stats)]
    return Models(rows, sorted(watchers), timers, steps_sorted, kept)


def _count_stats(
    facts: list[Any], steps: dict[Any, StepStats], flows: dict[Any, WorkflowStats]
) -> None:
    state = fold(facts[:1])
    workflow = state.workflow

    def flow(status: RunStatus) -> WorkflowStats:
        return flows.setdefault((workflow, str(status)), WorkflowStats(workflow, str(status)))

    flow(state.status).count += 1
    started: dict[tuple[str, int], datetime] = {}
    for fact in facts[1:]:
        before = state.status
        evolve(state, fact)
        if isinstance(fact, StepStarted):
            started[(fact.step, fact.iteration)] = fact.timestamp
        elif isinstance(fact, StepCompleted):
            stats = steps.setdefault((workflow, fact.step), StepStats(workflow, fact.step))
            stats.completions += 1
            began = started.pop((fact.step, fact.iteration), None)
            if began is not None:
                stats.add_duration((fact.timestamp - began).total_seconds())
        elif isinstance(fact, StepFailed):
            stats = steps.setdefault((workflow, fact.step), StepStats(workflow, fact.step))
            if fact.retry_at is None:
                stats.failures += 1
            else:
                stats.retries += 1
            started.pop((fact.step, fact.iteration), None)
        if state.status is not before:
            flow(before).count -= 1
            flow(state.status).count += 1
            if state.status.is_terminal and state.ended_at is not None:
                flow(state.status).add_duration((state.ended_at - state.created_at).total_seconds())


def check(store: RunStore, live: RunsView, rebuilt: RunsView, page_size: int) -> None:
    Projector(store, live, page_size=page_size).catch_up()
    Projector(store, rebuilt, page_size=100_000).catch_up()
    expected = folded_models(store)
    run_ids = list(expected.runs)
    maintained, once = read_models(live, run_ids), read_models(rebuilt, run_ids)
    for name in ("runs", "watchers", "timers", "step_stats", "workflow_stats"):
        assert getattr(maintained, name) == getattr(expected, name), f"page by page: {name}"
        assert getattr(once, name) == getattr(expected, name), f"rebuild: {name}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=run_configs, plan=plans, page_size=st.integers(1, 7))
def test_every_column_of_every_model_equals_a_fresh_fold_in_memory(
    configs: list[Any], plan: list[Any], page_size: int
) -> None:
    store = RunStore(parse_store_url("memory://"))
    build(store, configs, plan)
    check(store, POPORunsView(), POPORunsView(), page_size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=run_configs, plan=plans, page_size=st.integers(1, 7))
def test_every_column_of_every_model_equals_a_fresh_fold_on_sqlite(
    configs: list[Any], plan: list[Any], page_size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(parse_store_url(f"sqlite:///{folder}/log.db?synchronous=normal"))
        try:
            build(store, configs, plan)
            live = store.tracking_recorder(SQLiteRunsView)
            rebuilt = scratch_view(Path(folder) / "rebuilt.db")
            try:
                check(store, live, rebuilt, page_size)
            finally:
                rebuilt.datastore.close()
        finally:
            store.close()


# -- the three disagreements the old second fold had, as regression tests -----------


def _store_with(*plan: tuple[str, str], ttl: float | None = None) -> tuple[RunStore, Run]:
    store = RunStore(parse_store_url("memory://"))
    log = _Log(store)
    run = log.begin("wf", params={}, parent_run_id=None, policy=None, ttl=ttl, forked_from=None)
    for command, name in plan:
        assert apply(run, command, name, name, log.at()), command
        store.log.save(run)
    return store, run


def test_a_rewound_run_loses_the_expiry_of_its_earlier_end() -> None:
    store, run = _store_with(("step", "a"), ("complete", "a"), ("end", "a"), ("rewind", "a"),
                             ttl=60.0)  # fmt: skip
    view = POPORunsView()
    Projector(store, view, page_size=1).catch_up()
    row = view.get_row(run.state.run_id)
    assert row is not None
    assert row.status is RunStatus.RUNNING
    assert row.expires_at is None and row.ended_at is None


def test_a_rewind_after_a_scheduled_retry_leaves_no_retry_time() -> None:
    store, run = _store_with(("step", "a"), ("retry", "a"), ("rewind", "a"))
    view = POPORunsView()
    Projector(store, view, page_size=1).catch_up()
    row = view.get_row(run.state.run_id)
    assert row is not None
    assert row.retry_at is None and row.due_at is None
    assert view.due(FAR, 10) == []


@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
def test_step_cancel_rewind_leaves_the_same_workflow_stats_however_paged(page_size: int) -> None:
    store, _ = _store_with(("step", "a"), ("cancel", "a"), ("rewind", "a"))
    live, rebuilt = POPORunsView(), POPORunsView()
    Projector(store, live, page_size=page_size).catch_up()
    Projector(store, rebuilt, page_size=100_000).catch_up()
    assert live.stats() == rebuilt.stats()
    _, flows = live.stats()
    assert [(f.status, f.count) for f in flows] == [("cancelled", 0), ("running", 1)]
