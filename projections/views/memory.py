"""The runs/watchers/timers view for the in-memory store (``memory://``)."""

from __future__ import annotations

import bisect
import contextlib
import copy
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.popo import POPOTrackingRecorder

from projections.page import StatsDelta
from projections.runs import RunRow
from projections.step_stats import StepStats
from projections.timers import timer_due
from projections.view import PositionConflictError, RunsQuery
from projections.watchers import watcher_topic
from projections.workflow_stats import WorkflowStats
from stemlog.model.children import CHILD_TOPIC_PREFIX
from stemlog.store.base import partition_name


class POPORunsView(POPOTrackingRecorder):
    """Dicts guarded by the recorder's lock; the same contract as the SQL views."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions = 1
        self._rows: dict[str, RunRow] = {}
        self._order: list[tuple[int, str]] = []
        self._watchers: dict[str, dict[str, None]] = {}
        self._timers: dict[str, datetime] = {}
        self._step_stats: dict[tuple[str, str], StepStats] = {}
        self._workflow_stats: dict[tuple[str, str], WorkflowStats] = {}

    def position(self, partition: int = 0) -> int:
        return self.max_tracking_id(partition_name(partition)) or 0

    def load_rows(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        with self._database_lock:
            return {run_id: self._rows[run_id] for run_id in run_ids if run_id in self._rows}

    def ensure_models(self) -> bool:
        """In memory the models are always built by this code's versions."""
        return False

    def deferred_indexes(self) -> AbstractContextManager[None]:
        """No indexes to defer in memory."""
        return contextlib.nullcontext()

    def write_page(
        self,
        rows: Sequence[RunRow],
        expected: int,
        last: int,
        stats: StatsDelta | None = None,
        previous: Mapping[str, RunRow] | None = None,
        partition: int = 0,
    ) -> None:
        name = partition_name(partition)
        with self._database_lock:
            if (self._max_tracking_ids[name] or 0) != expected:
                raise PositionConflictError
            for row in rows:
                self._put(row)
            if stats is not None:
                self._merge_stats(stats)
            self._assert_tracking_uniqueness(Tracking(name, last))
            self._insert_tracking(Tracking(name, last))

    def _put(self, row: RunRow) -> None:
        old = self._rows.get(row.run_id)
        if old is None:
            bisect.insort(self._order, (row.seq, row.run_id))
        else:
            old_topic = watcher_topic(old)
            if old_topic is not None:
                self._watchers.get(old_topic, {}).pop(row.run_id, None)
        self._rows[row.run_id] = row
        topic = watcher_topic(row)
        if topic is not None:
            self._watchers.setdefault(topic, {})[row.run_id] = None
        due = timer_due(row)
        if due is None:
            self._timers.pop(row.run_id, None)
        else:
            self._timers[row.run_id] = due

    def _merge_stats(self, stats: StatsDelta) -> None:
        for key, step in stats.steps.items():
            self._step_stats.setdefault(key, StepStats(*key)).merge(step)
        for key, flow in stats.workflows.items():
            merged = self._workflow_stats.setdefault(key, WorkflowStats(*key))
            merged.merge(flow)
            if merged.empty:
                del self._workflow_stats[key]

    def stats(self) -> tuple[list[StepStats], list[WorkflowStats]]:
        with self._database_lock:
            steps = [copy.deepcopy(self._step_stats[key]) for key in sorted(self._step_stats)]
            flows = [copy.deepcopy(self._workflow_stats[k]) for k in sorted(self._workflow_stats)]
            return steps, flows

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every model, in a canonical order (for ``verify``)."""
        with self._database_lock:
            return {
                "runs": [astuple(self._rows[k]) for k in sorted(self._rows)],
                "watchers": sorted((t, r) for t, runs in self._watchers.items() for r in runs),
                "timers": sorted((r, at) for r, at in self._timers.items()),
                "step_stats": [astuple(v) for _, v in sorted(self._step_stats.items())],
                "workflow_stats": [astuple(v) for _, v in sorted(self._workflow_stats.items())],
                "position": [
                    (self._max_tracking_ids[partition_name(p)] or 0,)
                    for p in range(self.partitions)
                ],
            }

    def get_row(self, run_id: str) -> RunRow | None:
        with self._database_lock:
            return self._rows.get(run_id)

    def list_rows(self, query: RunsQuery) -> list[RunRow]:
        with self._database_lock:
            start = 0
            if query.after_seq is not None:
                anchor = query.after_run_id if query.after_run_id is not None else "\uffff"
                start = bisect.bisect_right(self._order, (query.after_seq, anchor))
            found: list[RunRow] = []
            for _, run_id in self._order[start:]:
                row = self._rows[run_id]
                if query.workflow is not None and row.workflow != query.workflow:
                    continue
                if query.status is not None and row.status is not query.status:
                    continue
                expired = query.expired_before
                if expired is not None and row.expires_at is not None and row.expires_at <= expired:
                    continue
                if query.id_prefix is not None and not run_id.startswith(query.id_prefix):
                    continue
                found.append(row)
                if len(found) >= query.limit:
                    break
            return found

    def waiting_on(self, topic: str) -> list[str]:
        with self._database_lock:
            return list(self._watchers.get(topic, {}))

    def due(self, until: datetime, limit: int) -> list[tuple[str, datetime]]:
        with self._database_lock:
            due = sorted((at, run_id) for run_id, at in self._timers.items() if at <= until)
            return [(run_id, at) for at, run_id in due[:limit]]

    def next_due(self) -> datetime | None:
        with self._database_lock:
            return min(self._timers.values(), default=None)

    def children(self, parent_run_id: str) -> list[str]:
        with self._database_lock:
            return [
                r.run_id
                for _, run_id in self._order
                if (r := self._rows[run_id]).parent_run_id == parent_run_id
                and not r.status.is_terminal
            ]

    def child_waits(self) -> list[tuple[str, str]]:
        with self._database_lock:
            return [
                (run_id, topic.removeprefix(CHILD_TOPIC_PREFIX))
                for topic, runs in self._watchers.items()
                if topic.startswith(CHILD_TOPIC_PREFIX)
                for run_id in runs
            ]

    def unfinished(self, limit: int) -> list[str]:
        with self._database_lock:
            going = [r.run_id for r in self._rows.values() if not r.status.is_terminal]
            return going[:limit]

    def clear(self) -> None:
        with self._database_lock:
            self._rows.clear()
            self._order.clear()
            self._watchers.clear()
            self._timers.clear()
            self._step_stats.clear()
            self._workflow_stats.clear()
            for partition in range(self.partitions):
                self._max_tracking_ids.pop(partition_name(partition), None)

    def close(self) -> None:
        """Nothing to release in memory."""
