"""Read models over stemlog's log: runs, watchers, timers, step_stats, workflow_stats.

Each model is one module (:mod:`projections.runs`, ...) whose rows are derived
from the runs' folded states; :mod:`projections.page` folds a page of the log,
:mod:`projections.projector` applies pages exactly once, :mod:`projections.views`
holds each store's tables, and :mod:`projections.audit` rebuilds and verifies.
This package imports only ``stemlog.model``, ``stemlog.codec``, ``stemlog.errors``,
``stemlog.clock`` and ``stemlog.store.base``.
"""
