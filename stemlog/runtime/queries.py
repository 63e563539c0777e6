"""Status queries, read from the ``runs`` view caught up to the log, and the run index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import final

from projections.runs import RunRow, row_of
from projections.step_stats import StepStats
from projections.view import RunsQuery
from projections.workflow_stats import WorkflowStats
from stemlog.authoring.registry import Registry
from stemlog.clock import Clock
from stemlog.model.facts import AnyFact
from stemlog.model.fold import fold
from stemlog.model.records import ErrorInfo, RunStatus, RunView, WorkflowKind
from stemlog.runtime.read_side import ReadSide
from stemlog.store.events import RunStore


@final
@dataclass(frozen=True, slots=True)
class Stats:
    """Per step and per workflow statistics (see :mod:`projections.stats`)."""

    steps: list[StepStats]
    workflows: list[WorkflowStats]


@final
class Queries:
    """Reads for one call; every read first brings the views to the log's head."""

    def __init__(
        self,
        views: ReadSide,
        store: RunStore,
        clock: Clock,
        registry: Registry | None = None,
    ) -> None:
        self._views = views
        self._store = store
        self._clock = clock
        self._registry = registry

    async def get_run(self, run_id: str) -> RunView | None:
        await self._views.catch_up()
        row = await self._views.call(self._views.view.get_row, str(run_id))
        return None if row is None else (await self._to_views([row]))[0]

    async def fold_view(self, facts: Sequence[AnyFact]) -> RunView:
        """The view of a run computed from its facts (``get_run(consistent=True)``)."""
        return (await self._to_views([row_of(fold(facts), seq=0)]))[0]

    async def list_runs(
        self,
        workflow: str | None,
        status: str | None,
        limit: int,
        after: str | None,
        include_expired: bool = False,
        id_prefix: str | None = None,
    ) -> list[RunView]:
        wanted = None if status is None else RunStatus(status)
        await self._views.catch_up()
        after_seq: int | None = None
        after_run_id: str | None = None
        if after is not None:
            anchor = await self._views.call(self._views.view.get_row, after)
            if anchor is not None:
                after_seq, after_run_id = anchor.seq, anchor.run_id
        expired_before = None if include_expired else self._clock.now()
        query = RunsQuery(workflow, wanted, max(int(limit), 0), after_seq, after_run_id,
                          expired_before, id_prefix)  # fmt: skip
        rows = await self._views.call(self._views.view.list_rows, query)
        return await self._to_views(rows)

    async def stats(self) -> Stats:
        await self._views.catch_up()
        steps, workflows = await self._views.call(self._views.view.stats)
        return Stats(steps, workflows)

    async def waiting_on(self, topic: str) -> list[str]:
        """The runs waiting on ``topic`` now, from the run index (as ``emit`` reads it)."""
        return await self._store.waiting_on(topic)

    async def _to_views(self, rows: Sequence[RunRow]) -> list[RunView]:
        claims = await self._store.holders([row.run_id for row in rows])
        return [self._to_view(row, claims.get(row.run_id)) for row in rows]

    def _to_view(self, row: RunRow, lease: tuple[str, datetime] | None) -> RunView:
        return RunView(
            run_id=row.run_id,
            workflow=row.workflow,
            kind=WorkflowKind(row.kind),
            version=row.version,
            status=row.status,
            params=row.params,
            result=row.result,
            error=None if row.error is None else ErrorInfo.from_json(row.error),
            current_step=row.current_step,
            wait_topic=row.wait_topic,
            wake_at=row.wake_at,
            deadline=row.deadline,
            attempts=row.attempts,
            parent_run_id=row.parent_run_id,
            lease_owner=None if lease is None else lease[0],
            lease_expires_at=None if lease is None else lease[1],
            cancel_reason=row.cancel_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            ended_at=row.ended_at,
            blocked_on_version=self._blocked(row),
            blocked=row.blocked,
            key=row.state.get("key"),
        )

    def _blocked(self, row: RunRow) -> int | None:
        # A worker leaves alone a run whose pinned version it has not registered.
        if self._registry is None or row.status.is_terminal:
            return None
        return None if self._registry.resolve(row.workflow, row.version) else row.version
