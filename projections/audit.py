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

from projections.projector import Projector
from projections.view import RunsView
from projections.views.memory import POPORunsView
from projections.views.sqlite import SQLiteRunsView
from stemlog.store.base import LogReader, UnreadableFact

Progress = Callable[[int, int], None]
"""Called with (position reached, target position) after each page."""

REBUILD_PAGE = 5000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Facts per transaction when rebuilding (a live catch-up uses smaller pages)."""


@final
@dataclass(frozen=True, slots=True)
class RebuildResult:
    """How a rebuild went."""

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


def _replay(projector: Projector, stop: int, progress: Progress | None) -> RebuildResult:
    started = time.perf_counter()
    first = projector.view.position()
    while (page := projector.apply_page(stop)) is not None:
        if progress is not None:
            progress(page.position, stop)
    position = projector.view.position()
    return RebuildResult(position, position - first, time.perf_counter() - started)


def rebuild(
    log: LogReader, view: RunsView, progress: Progress | None = None
) -> RebuildResult:
    """Drop the models and replay the log from position 0 up to its head now."""
    view.clear()
    projector = Projector(log, view, page_size=REBUILD_PAGE)
    return _replay(projector, projector.head(), progress)


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


def scratch_view(path: Path) -> SQLiteRunsView:
    """Empty models in a new SQLite file."""
    datastore = SQLiteDatastore(str(path))
    view = SQLiteRunsView(datastore)
    view.create_table()
    view.ensure_models()
    return view


def rebuild_as_of(
    log: LogReader,
    into: Path,
    *,
    position: int | None = None,
    moment: datetime | None = None,
    progress: Progress | None = None,
) -> RebuildResult:
    """Build the models as they stood at ``position`` (or ``moment``) into the file ``into``.

    Raises:
        FileExistsError: ``into`` exists already (an audit copy is never overwritten).
    """
    if into.exists():
        raise FileExistsError(f"{into} exists; choose a new file for the audit copy")
    if position is None:
        position = position_at(log, moment) if moment is not None else None
    view = scratch_view(into)
    try:
        projector = Projector(log, view, page_size=REBUILD_PAGE)
        target = projector.head() if position is None else min(position, projector.head())
        return _replay(projector, target, progress)
    finally:
        view.datastore.close()


def verify(
    log: LogReader, live: RunsView, progress: Progress | None = None
) -> list[Difference]:
    """Rebuild into a scratch store up to the live models' position and compare every row."""
    snapshot = live.dump()
    position = int(snapshot.pop("position")[0][0])
    if isinstance(live, POPORunsView):
        scratch: RunsView = POPORunsView()
        _replay(Projector(log, scratch, page_size=REBUILD_PAGE), position, progress)
        rebuilt_memory = scratch.dump()
        rebuilt_memory.pop("position")
        return _compare(snapshot, rebuilt_memory)
    with tempfile.TemporaryDirectory(prefix="stemlog-verify-") as folder:
        view = scratch_view(Path(folder) / "scratch.db")
        try:
            _replay(Projector(log, view, page_size=REBUILD_PAGE), position, progress)
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
