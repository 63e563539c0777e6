"""Read models over stemlog's log: ``runs``, ``watchers`` and ``timers``.

Each view is an eventsourcing tracking recorder in the same database as the
log (:mod:`projections.popo_view`, :mod:`projections.sql_view`); the row fold
is :mod:`projections.rows`; :mod:`projections.runner` applies the log to a view
a page per transaction, exactly once.
"""
