"""Rebuilding, auditing and verifying the read models.

* :func:`rebuild` drops the models and replays the whole log into them.
* :func:`rebuild_as_of` builds the models as they stood at a log position (or
  a time) into a separate SQLite file, without touching the live ones.
* :func:`verify` rebuilds into a scratch store up to the live models' position
  and compares every row; it returns the rows that differ.

All three are blocking; the CLI runs them with a progress bar.
"""

from __future__ import annotations

import bisect
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, final

from eventsourcing.sqlite import SQLiteDatastore

from projections import parallel
from projections.page import cycle_collection_paused
from projections.parallel import ModelsOpener
from projections.projector import Projector
from projections.view import RunsView
from projections.views.memory import POPORunsView
from projections.views.sqlite import SQLiteRunsView
from stemlog.store.base import LogReader, PartitionedLog, UnreadableFact

Progress = Callable[[int, int], None]
"""Called with (position reached, target position) after each page."""

REBUILD_PAGE = 20_000
"""Facts per transaction when rebuilding (a live catch-up uses smaller pages). Each
commit rewrites the ``runs`` key index's pages its rows land on, which are spread all
over it (run ids are random): fewer, larger pages rewrite them less often."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@final
@dataclass(frozen=True, slots=True)
class RebuildResult:
    """How a rebuild went: the position reached (with several partitions, the sum of
    theirs), the facts applied, the time it took."""

    position: int
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


@final
@dataclass(frozen=True, slots=True)
class Difference:
    """A row that is not the same in the live model and in a fresh rebuild."""

    model: str
    live: tuple[Any, ...] | None
    rebuilt: tuple[Any, ...] | None


def _projectors(log: PartitionedLog, view: RunsView) -> list[Projector]:
    view.partitions = log.partitions
    return [Projector(log.partition(p), view, REBUILD_PAGE, p) for p in range(log.partitions)]


def _replay(
    projectors: list[Projector],
    stops: list[int],
    progress: Progress | None,
    helper: ModelsOpener | None = None,
) -> RebuildResult:
    """Apply each partition's pages up to its stop (progress over all of them), with a
    helper process for a partition of :data:`~projections.parallel.HELPER_FROM` facts
    or more to replay if ``helper`` can open the store again.

    The time counted is all of it, the indexes dropped and made again included.
    """
    started = time.perf_counter()
    view = projectors[0].view
    firsts = [view.position(p.partition) for p in projectors]
    total, done = sum(stops) - sum(firsts), 0
    with view.deferred_indexes():
        for projector, first in zip(projectors, firsts, strict=True):
            reached, stop = first, stops[projector.partition]

            def on_page(position: int) -> None:
                nonlocal done, reached
                done += position - reached
                reached = position
                if progress is not None:
                    progress(sum(firsts) + done, sum(firsts) + total)

            if helper is not None and stop - first >= parallel.HELPER_FROM:
                parallel.replay_with_helper(projector, stop, helper, on_page)
            while (position := _apply_page(projector, stop)) is not None:
                on_page(position)
    positions = [view.position(p.partition) for p in projectors]
    return RebuildResult(sum(positions), sum(positions) - sum(firsts),
                         time.perf_counter() - started)  # fmt: skip


def _apply_page(projector: Projector, stop: int) -> int | None:
    """Apply the next page, the collector off; the position reached (``None``: done).
    Only the position leaves: the page is freed before the collector is back."""
    with cycle_collection_paused():
        page = projector.apply_page(stop)
        position = None if page is None else page.position
        del page
    return position


def rebuild(
    log: PartitionedLog,
    view: RunsView,
    progress: Progress | None = None,
    *,
    helper: ModelsOpener | None = None,
) -> RebuildResult:
    """Drop the models and replay the log from position 0 up to its head now.

    Args:
        helper: opens this log and these models again, in a helper process that
            folds part of the runs of a long log (see :mod:`projections.parallel`);
            without it, the rebuild runs in this process alone.
    """
    view.clear()
    projectors = _projectors(log, view)
    return _replay(projectors, [p.head() for p in projectors], progress, helper)


def position_at(log: LogReader, moment: datetime) -> int:
    """The position of the last fact appended at or before ``moment`` (0: none).

    Positions are in commit order and timestamps in creation order, which can
    interleave by a few milliseconds between concurrent runs; the answer is a
    binary search over the log, exact when timestamps follow positions.
    """
    head = log.head()

    def timestamp(position: int) -> datetime:
        (logged,) = log.read(position, 1)
        fact = logged.fact
        return _EPOCH if isinstance(fact, UnreadableFact) else fact.timestamp

    positions = range(1, head + 1)
    return bisect.bisect_right(positions, moment, key=timestamp)


def scratch_view(path: Path, partitions: int = 1) -> SQLiteRunsView:
    """Empty models in a new SQLite file (following a log of ``partitions``)."""
    datastore = SQLiteDatastore(str(path))
    view = SQLiteRunsView(datastore)
    view.partitions = partitions
    view.create_table()
    view.ensure_models()
    return view


def rebuild_as_of(
    log: PartitionedLog,
    into: Path,
    *,
    position: int | None = None,
    moment: datetime | None = None,
    progress: Progress | None = None,
) -> RebuildResult:
    """Build the models as they stood at ``position`` (or ``moment``) into the file ``into``.

    A position names a point of a log of one partition; a partitioned log is
    audited as of a time (each partition up to its last fact at that time).

    Raises:
        FileExistsError: ``into`` exists already (an audit copy is never overwritten).
        ValueError: a position on a log of several partitions.
    """
    if into.exists():
        raise FileExistsError(f"{into} exists; choose a new file for the audit copy")
    if position is not None and log.partitions > 1:
        raise ValueError(f"a position names a point of a log of one partition; this log has "
                         f"{log.partitions}: give a time instead")  # fmt: skip
    view = scratch_view(into, log.partitions)
    try:
        projectors = _projectors(log, view)
        heads = [p.head() for p in projectors]
        if moment is not None and position is None:
            at = [position_at(p.log, moment) for p in projectors]
            stops = [min(found, head) for found, head in zip(at, heads, strict=True)]
        else:
            stops = [head if position is None else min(position, head) for head in heads]
        return _replay(projectors, stops, progress)
    finally:
        view.datastore.close()


def verify(
    log: PartitionedLog, live: RunsView, progress: Progress | None = None
) -> list[Difference]:
    """Rebuild into a scratch store up to the live models' positions and compare every row."""
    live.partitions = log.partitions
    snapshot = live.dump()
    stops = [int(row[0]) for row in snapshot.pop("position")]
    if isinstance(live, POPORunsView):
        scratch: RunsView = POPORunsView()
        _replay(_projectors(log, scratch), stops, progress)
        rebuilt_memory = scratch.dump()
        rebuilt_memory.pop("position")
        return _compare(snapshot, rebuilt_memory)
    with tempfile.TemporaryDirectory(prefix="stemlog-verify-") as folder:
        view = scratch_view(Path(folder) / "scratch.db", log.partitions)
        try:
            _replay(_projectors(log, view), stops, progress)
            rebuilt = view.dump()
        finally:
            view.datastore.close()
    rebuilt.pop("position")
    return _compare(snapshot, rebuilt)


def _compare(
    live: dict[str, list[tuple[Any, ...]]], rebuilt: dict[str, list[tuple[Any, ...]]]
) -> list[Difference]:
    differences: list[Difference] = []
    for model in sorted(set(live) | set(rebuilt)):
        left = {_key(row): row for row in live.get(model, [])}
        right = {_key(row): row for row in rebuilt.get(model, [])}
        for key in sorted(set(left) | set(right), key=repr):
            if left.get(key) != right.get(key):
                differences.append(Difference(model, left.get(key), right.get(key)))
    return differences


def _key(row: tuple[Any, ...]) -> Any:
    return cast(Any, row[:2])
