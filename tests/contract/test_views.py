"""The read-model views' contract: pages with their position, and every query."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from projections.page import StatsDelta
from projections.runs import RunRow, row_of
from projections.view import PositionConflictError, RunsQuery, RunsView
from projections.views import view_class
from stemlog.model.children import child_topic
from stemlog.model.fold import fold
from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url
from tests.contract.backends import OnMemory, OnPartitionedPostgres, OnPostgres, OnSQLite

T = datetime(2030, 1, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)


def row(
    seq: int, *, workflow: str = "w", parent: str | None = None, ttl: float | None = None,
    plan: tuple[str, ...] = (),
) -> RunRow:  # fmt: skip
    run = Run.begin(
        run_id=uuid.uuid4(), at=T, workflow=workflow, kind="flow", workflow_version=1,
        params={"seq": seq}, fingerprint="f", parent_run_id=parent, policy=None, ttl=ttl,
        forked_from=None,
    )  # fmt: skip
    at = T + timedelta(seconds=seq)
    for command in plan:
        match command:
            case "step":
                run.start_step(("s", 0), 1, at)
            case "wait":
                run.await_event(("s", 0), f"topic.{seq % 2}", None, at)
            case "wait-child":
                run.await_event(("s", 0), child_topic(str(uuid.UUID(int=seq))), None, at)
            case "sleep":
                run.start_sleep(("s", 0), at + timedelta(hours=1), at)
            case "complete":
                run.complete_step(("s", 0), seq, at)
                run.complete(seq, at)
    return row_of(fold(cast(Any, run.collect_events())), seq)


class ViewContract:
    @pytest.fixture
    def view(self, url: str) -> Iterator[RunsView]:
        store = RunStore(parse_store_url(url))
        view = cast(RunsView, store.tracking_recorder(view_class(store.backend.name)))
        view.ensure_models()
        try:
            yield view
        finally:
            store.close()

    def test_a_page_moves_the_position_only_from_the_expected_one(self, view: RunsView) -> None:
        assert view.position() == 0
        first = row(1)
        view.write_page([first], 0, 3)
        assert view.position() == 3
        with pytest.raises(PositionConflictError):
            view.write_page([row(2)], 0, 5)
        assert view.position() == 3
        assert view.get_row(first.run_id) == first
        assert view.load_rows([first.run_id, str(uuid.uuid4())]) == {first.run_id: first}

    def test_rows_list_in_start_order_with_filters_and_pages(self, view: RunsView) -> None:
        rows = [row(i, workflow=f"w{i % 2}", plan=("step", "complete") if i % 3 else ())
                for i in range(1, 11)]  # fmt: skip
        view.write_page(rows, 0, 10)
        listed = view.list_rows(RunsQuery(limit=100))
        assert [r.seq for r in listed] == list(range(1, 11))
        w1 = view.list_rows(RunsQuery(workflow="w1", status=rows[0].status))
        assert all(r.workflow == "w1" and r.status == rows[0].status for r in w1) and w1
        page = view.list_rows(RunsQuery(limit=3, after_seq=4))
        assert [r.seq for r in page] == [5, 6, 7]

    def test_ended_runs_past_their_ttl_are_left_out_unless_asked(self, view: RunsView) -> None:
        ended, running = row(1, ttl=5.0, plan=("step", "complete")), row(2, ttl=5.0)
        view.write_page([ended, running], 0, 2)
        later = T + timedelta(seconds=60)
        assert [r.seq for r in view.list_rows(RunsQuery(expired_before=later))] == [2]
        assert [r.seq for r in view.list_rows(RunsQuery(expired_before=T))] == [1, 2]

    def test_watchers_timers_children_and_unfinished(self, view: RunsView) -> None:
        parent = row(1, plan=("step", "wait-child"))
        waiting = row(2, parent=parent.run_id, plan=("step", "wait"))
        sleeping = row(3, parent=parent.run_id, plan=("step", "sleep"))
        done = row(4, parent=parent.run_id, plan=("step", "complete"))
        fresh = row(5)
        view.write_page([parent, waiting, sleeping, done, fresh], 0, 5)
        assert view.waiting_on("topic.0") == [waiting.run_id]
        assert view.waiting_on("nobody") == []
        assert view.due(FAR, 10) == [(sleeping.run_id, sleeping.due_at)]
        assert view.next_due() == sleeping.due_at
        assert view.due(T, 10) == []
        assert sorted(view.children(parent.run_id)) == sorted([waiting.run_id, sleeping.run_id])
        assert view.child_waits() == [(parent.run_id, str(uuid.UUID(int=1)))]
        unfinished = [parent.run_id, waiting.run_id, sleeping.run_id, fresh.run_id]
        assert sorted(view.unfinished(10)) == sorted(unfinished)

    def test_a_row_that_moves_on_leaves_its_old_watcher_and_timer(self, view: RunsView) -> None:
        run = Run.begin(
            run_id=uuid.uuid4(), at=T, workflow="w", kind="flow", workflow_version=1,
            params={}, fingerprint="f", parent_run_id=None, policy=None, ttl=None,
            forked_from=None,
        )  # fmt: skip
        run.start_step(("s", 0), 1, T)
        run.await_event(("s", 0), "topic", T + timedelta(minutes=1), T)
        waiting = row_of(copy.deepcopy(run.state), 1)
        view.write_page([waiting], 0, 1)
        assert view.waiting_on("topic") == [waiting.run_id]
        assert view.due(FAR, 10) == [(waiting.run_id, T + timedelta(minutes=1))]
        run.receive_event("topic", 1, "e1", T)
        resumed = row_of(copy.deepcopy(run.state), 1)
        view.write_page([resumed], 1, 2, None, {waiting.run_id: waiting})
        assert view.waiting_on("topic") == []
        assert view.due(FAR, 10) == []
        assert view.get_row(waiting.run_id) == resumed

    def test_stats_merge_page_by_page_and_empty_rows_go(self, view: RunsView) -> None:
        first, second = StatsDelta(), StatsDelta()
        first.step("w", "s").completions += 2
        first.step("w", "s").add_duration(0.5)
        first.workflow("w", "running").count += 1
        second.step("w", "s").failures += 1
        second.workflow("w", "running").count -= 1
        second.workflow("w", "completed").count += 1
        view.write_page([], 0, 1, first)
        view.write_page([], 1, 2, second)
        steps, flows = view.stats()
        assert [(s.completions, s.failures, s.max_seconds) for s in steps] == [(2, 1, 0.5)]
        assert [(f.status, f.count) for f in flows] == [("completed", 1)]

    def test_clear_drops_every_row_and_the_position(self, view: RunsView) -> None:
        view.write_page([row(1, plan=("step", "wait"))], 0, 4)
        view.clear()
        assert view.position() == 0
        dumped = view.dump()
        assert all(rows == [] for name, rows in dumped.items() if name != "position")
        assert dumped["position"] == [(0,)]
        assert view.ensure_models() is False


class TestMemoryViews(OnMemory, ViewContract):
    pass


class TestSQLiteViews(OnSQLite, ViewContract):
    pass


class TestPostgresViews(OnPostgres, ViewContract):
    pass


class TestPartitionedPostgresViews(OnPartitionedPostgres, ViewContract):
    pass
