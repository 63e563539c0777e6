"""Keeping the read models caught up with the log, a page per transaction.

The projector reads facts after the models' tracked position, folds them into
the affected rows (:mod:`projections.page`) and writes the rows with the new
position in one transaction (exactly once: the position moves only with the
rows, and only from the position the page was read at). It is driven by the
app: after commits, and synchronously before any query that must see the
log's head.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import final

from projections.page import fold_page
from projections.runs import RunRow
from projections.view import PositionConflictError, RunsView
from stemlog.model.facts import RunStarted
from stemlog.store.base import LoggedFact, LogReader


@final
@dataclass(frozen=True, slots=True)
class PageResult:
    """What one page changed: the facts applied and the rows they left."""

    facts: Sequence[LoggedFact]
    rows: Sequence[RunRow]
    position: int


@final
class Projector:
    """Applies the log to a view (blocking calls: run them in a thread)."""

    def __init__(
        self, log: LogReader, view: RunsView, page_size: int = 1000, partition: int = 0
    ) -> None:
        self.log = log
        self.view = view
        self.page_size = page_size
        self.partition = partition
        """The partition of the log ``log`` reads (its position is tracked apart)."""
        self._known: int | None = None
        """The position this projector last wrote (the view's, unless another moved it:
        then the page's compare-and-set fails and the position is read again)."""
        self._carried: tuple[int, dict[str, RunRow]] = (-1, {})
        """The rows the page it last wrote left, and that page's last position: a page
        read from that position continues these runs from them rather than reading
        them back (the rows at a position are the same whoever wrote them)."""

    def head(self) -> int:
        """The log's last position (0 for an empty log)."""
        return self.log.head()

    def lag(self) -> int:
        """How many facts the view is behind the log."""
        return self.head() - self.view.position(self.partition)

    def apply_page(self, stop: int | None = None) -> PageResult | None:
        """Apply the next page of facts (up to ``stop``); ``None`` when caught up.

        Raises:
            PositionConflictError: another projector applied this page first.
        """
        expected = self._known
        if expected is None or (stop is not None and expected >= stop):
            expected = self.view.position(self.partition)  # nothing to do, it seems: check
        if stop is not None and expected >= stop:
            self._known = expected
            return None
        page = self.log.read(expected + 1, self.page_size, stop)
        if not page:
            return None
        previous = self._previous(page, expected)
        rows, stats = fold_page(page, previous)
        last = page[-1].position
        try:
            self.view.write_page(rows, expected, last, stats, previous, self.partition)
        except PositionConflictError:
            self._known = None
            raise
        self._known, self._carried = last, (last, {row.run_id: row for row in rows})
        return PageResult(page, rows, last)

    def _previous(self, page: Sequence[LoggedFact], expected: int) -> dict[str, RunRow]:
        """The rows of the runs the page continues: those the page before left, carried
        if it ended at ``expected``, the others read."""
        at, carried = self._carried
        return previous_rows(page, carried if at == expected else {}, self.view.load_rows)

    def catch_up(self, stop: int | None = None) -> list[PageResult]:
        """Apply pages until the view reaches ``stop`` (default: the head when called).

        A page that another projector applied first is skipped (the position
        is read again), so concurrent catch-ups never apply a page twice.
        """
        target = self.head() if stop is None else stop
        pages: list[PageResult] = []
        while True:
            try:
                page = self.apply_page(target)
            except PositionConflictError:
                continue
            if page is None:
                return pages
            pages.append(page)


def previous_rows(
    page: Sequence[LoggedFact],
    carried: Mapping[str, RunRow],
    load: Callable[[Sequence[str]], Mapping[str, RunRow]],
) -> dict[str, RunRow]:
    """The rows of the runs ``page`` continues (runs whose ``RunStarted`` is not in it):
    from ``carried`` (the rows the page before left) where there, the others ``load``ed."""
    # One pass over the page (its facts are no longer in the processor's caches),
    # by the class itself (it has no subclasses: isinstance would go through the
    # facts' metaclass, several times slower on the nine facts in ten that are not it).
    started: dict[object, bool] = {}
    for item in page:
        fact = item.fact
        run_id = fact.originator_id
        started[run_id] = started.get(run_id, False) or type(fact) is RunStarted
    continued = sorted(str(run_id) for run_id, yes in started.items() if not yes)
    previous = {run_id: carried[run_id] for run_id in continued if run_id in carried}
    missing = [run_id for run_id in continued if run_id not in carried]
    if missing:
        previous.update(load(missing))
    return previous
