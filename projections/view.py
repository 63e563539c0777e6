"""What every store's ``runs``/``watchers``/``timers`` view offers.

A view is an eventsourcing tracking recorder living in the same database as
the log (POPO, SQLite or PostgreSQL). Its tables change together with its
tracking row in one transaction, so a notification is applied exactly once
even across crashes; :meth:`RunsView.write_page` also compares the tracked
position with the one the page was computed from, so two projectors can never
both apply the same page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, final

from projections.page import StatsDelta
from projections.runs import RunRow
from projections.step_stats import StepStats
from projections.workflow_stats import WorkflowStats
from stemlog.model.records import RunStatus
from stemlog.store.base import partition_name

APPLICATION_NAME = partition_name(0)
"""The upstream application the views track (of partition 0; partition ``k``'s
position is tracked under :func:`~stemlog.store.base.partition_name` ``(k)``)."""


class PositionConflictError(Exception):
    """Another projector moved the view since this page was read."""


@final
@dataclass(frozen=True, slots=True)
class RunsQuery:
    """Filters and keyset pagination for ``list_runs``."""

    workflow: str | None = None
    status: RunStatus | None = None
    limit: int = 100
    after_seq: int | None = None
    after_run_id: str | None = None
    """With ``after_seq``: the anchor's run id (runs of one ``seq`` are ordered by id);
    ``None``: after every run of that ``seq``."""
    expired_before: datetime | None = None
    """Leave out runs whose ``expires_at`` is at or before this time (``None``: keep all)."""
    id_prefix: str | None = None
    """Only runs whose id starts with this (the CLI's short ids)."""


class RunsView(Protocol):
    """The read side the engine and status queries use (blocking; run in threads)."""

    partitions: int
    """How many partitions of the log the view follows (one position each)."""

    def position(self, partition: int = 0) -> int:
        """The last notification id of a partition applied (0 before any)."""
        ...

    def load_rows(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        """The current rows of these runs (absent runs are left out)."""
        ...

    def ensure_models(self) -> bool:
        """Reset the models if their stored versions are not the code's; whether it did."""
        ...

    def deferred_indexes(self) -> AbstractContextManager[None]:
        """Inside, the indexes only queries use are dropped; on the way out they are made
        again from the whole table, cheaper than row by row (for a rebuild)."""
        ...

    def write_page(
        self,
        rows: Sequence[RunRow],
        expected: int,
        last: int,
        stats: StatsDelta | None = None,
        previous: Mapping[str, RunRow] | None = None,
        partition: int = 0,
    ) -> None:
        """Store changed rows and stats, and move the partition's position from
        ``expected`` to ``last``, atomically. ``previous`` (the rows as they were
        before the page, runs the page started absent) spares deleting what never
        existed. Projectors of different partitions may write at once: they touch
        different runs, and the stats rows they share are locked in the page's
        transaction.

        Raises:
            PositionConflictError: the position is not ``expected`` any more.
        """
        ...

    def get_row(self, run_id: str) -> RunRow | None:
        """One run's row."""
        ...

    def list_rows(self, query: RunsQuery) -> list[RunRow]:
        """Rows in start order, filtered, after ``query.after_seq``."""
        ...

    def waiting_on(self, topic: str) -> list[str]:
        """Ids of the runs suspended on ``topic``."""
        ...

    def due(self, until: datetime, limit: int) -> list[tuple[str, datetime]]:
        """Runs whose timer is due at ``until`` or before, earliest first."""
        ...

    def next_due(self) -> datetime | None:
        """The earliest timer."""
        ...

    def children(self, parent_run_id: str) -> list[str]:
        """Ids of the parent's child runs that have not ended."""
        ...

    def child_waits(self) -> list[tuple[str, str]]:
        """``(parent, child)`` for every run suspended on a child's outcome."""
        ...

    def unfinished(self, limit: int) -> list[str]:
        """Ids of runs that have not ended, oldest first (to fill the run index of a
        store written before it existed)."""
        ...

    def stats(self) -> tuple[list[StepStats], list[WorkflowStats]]:
        """The ``step_stats`` and ``workflow_stats`` rows."""
        ...

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every model, in a canonical order."""
        ...

    def clear(self) -> None:
        """Drop every row and the position (for a rebuild)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
