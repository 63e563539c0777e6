"""The read models' tables, one module per kind of store.

Each view is an eventsourcing tracking recorder in the same database as the
log, so a page of rows and the tracked position commit in one transaction.
:func:`view_class` says which one a store of a given kind uses.
"""

from __future__ import annotations

from eventsourcing.persistence import TrackingRecorder

from projections.views.memory import POPORunsView
from projections.views.postgres import PostgresRunsView
from projections.views.sqlite import SQLiteRunsView

_VIEW_CLASSES: dict[str, type[TrackingRecorder]] = {
    "memory": POPORunsView,
    "sqlite": SQLiteRunsView,
    "postgres": PostgresRunsView,
}


def view_class(backend: str) -> type[TrackingRecorder]:
    """The view class of a store whose backend is named ``backend``.

    Raises:
        LookupError: no view exists for that kind of store.
    """
    try:
        return _VIEW_CLASSES[backend]
    except KeyError:
        raise LookupError(f"no read-model view for {backend!r} stores") from None
