"""Read models over stemlog's log: ``runs``, ``watchers`` and ``timers``.

Each view is an eventsourcing tracking recorder in the same database as the
log (:mod:`projections.views.memory`, :mod:`projections.views.sql`); the row fold
is :mod:`projections.rows`; :mod:`projections.projector` applies the log to a view
a page per transaction, exactly once.
"""

# The engine (stemlog) reads these models and they read its facts: initialise
# the engine package first, so importing a projections module first works too.
import stemlog  # noqa: F401
