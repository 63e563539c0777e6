"""The runs a worker drove lately, kept in memory so the next drive skips the load.

A drive takes its run out of the cache (one drive of a run at a time) and
reads only the facts appended since the cached version
(:meth:`stemlog.store.events.RunStore.fast_forward`); when it ends it puts the
aggregate back. The least recently used runs go first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import final

from stemlog.model.run import Run


@final
class RunCache:
    """Aggregates by run id, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 0)
        self._runs: OrderedDict[str, Run] = OrderedDict()

    def take(self, run_id: str) -> Run | None:
        """The cached aggregate of the run, removed from the cache (``None``: not cached)."""
        return self._runs.pop(run_id, None)

    def put(self, run: Run) -> None:
        """Keep an aggregate with no pending facts (one whose last commit went through)."""
        if self._capacity == 0 or run.pending_events:
            return
        run_id = run.state.run_id
        self._runs[run_id] = run
        self._runs.move_to_end(run_id)
        while len(self._runs) > self._capacity:
            self._runs.popitem(last=False)

    def drop(self, run_id: str) -> None:
        """Forget the run (its cached form may be wrong)."""
        self._runs.pop(run_id, None)

    def __len__(self) -> int:
        return len(self._runs)
