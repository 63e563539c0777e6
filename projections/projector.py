"""Keeping the views caught up with the log, a page per transaction.

The projector reads notifications after the view's tracked position, folds
them into the affected rows and writes the rows with the new position in one
transaction (exactly-once: the position moves only with the rows, and only
from the position the page was read at). It is driven by the app: after each
commit, and synchronously before any query that must see the log's head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast, final

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from projections.rows import RunRow, apply_facts, start_row
from projections.stats import StatsDelta
from projections.view import PositionConflictError, RunsView
from stemlog.codec import decode_fact_state
from stemlog.model.facts import FACT_TYPES, AnyFact, RunStarted

_FACT_BY_TOPIC: dict[str, type[Any]] = {cls.TOPIC: cls for cls in FACT_TYPES}


def decode_notification(notification: Notification) -> AnyFact:
    """A fact from its notification, as eventsourcing's mapper would build it.

    The projector's hot path: stemlog's log has no cipher, compression or
    upcasters, so the stored state is orjson text whose fields become the
    fact's attributes (no ``__init__`` runs, as in eventsourcing).
    """
    cls = _FACT_BY_TOPIC.get(notification.topic)
    if cls is None:  # a topic this code does not know: let the mapper explain
        raise ValueError(f"unknown fact topic {notification.topic!r}")
    fact = object.__new__(cls)
    fact.__dict__.update(decode_fact_state(notification.state))
    fact.__dict__["originator_id"] = notification.originator_id
    fact.__dict__["originator_version"] = notification.originator_version
    return cast(AnyFact, fact)


@final
@dataclass(frozen=True, slots=True)
class PageResult:
    """What one page changed: the facts applied and the rows they left."""

    facts: Sequence[AnyFact]
    rows: Sequence[RunRow]
    position: int


@final
class Projector:
    """Applies the log to a view (blocking calls: run them in a thread)."""

    def __init__(self, log: Application[Any], view: RunsView, page_size: int = 1000) -> None:
        self.log = log
        self.view = view
        self.page_size = page_size

    def head(self) -> int:
        """The log's last notification id (0 for an empty log)."""
        return self.log.recorder.max_notification_id() or 0

    def lag(self) -> int:
        """How many notifications the view is behind the log."""
        return self.head() - self.view.position()

    def apply_page(self, stop: int | None = None) -> PageResult | None:
        """Apply the next page of notifications (up to ``stop``); ``None`` when caught up.

        Raises:
            PositionConflictError: another projector applied this page first.
        """
        expected = self.view.position()
        if stop is not None and expected >= stop:
            return None
        notifications = self.log.recorder.select_notifications(
            start=expected + 1, limit=self.page_size, stop=stop
        )
        if not notifications:
            return None
        facts = [decode_notification(n) for n in notifications]
        started: dict[str, RunRow] = {}
        later: dict[str, list[AnyFact]] = {}
        for notification, fact in zip(notifications, facts, strict=True):
            run_id = str(fact.originator_id)
            if isinstance(fact, RunStarted):
                started[run_id] = start_row(fact, notification.id)
            else:
                later.setdefault(run_id, []).append(fact)
        before = self.view.load_rows([run_id for run_id in later if run_id not in started])
        rows = {**before, **started}
        stats = StatsDelta()
        for run_id, row in started.items():
            if run_id not in later:
                stats.add_run(None, row, ())
        for run_id, run_facts in later.items():
            if run_id in rows:
                rows[run_id] = apply_facts(rows[run_id], run_facts)
                stats.add_run(before.get(run_id), rows[run_id], run_facts)
        changed = list(rows.values())
        last = notifications[-1].id
        self.view.write_page(changed, expected, last, stats, before)
        return PageResult(facts, changed, last)

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
