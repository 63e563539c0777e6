"""Which runs a worker holds the claim of, as its commits and claim rounds report it.

Two kinds of report reach the worker, and not always in the order they
happened in the store: a commit of this process says whether it left the
worker holding a run's claim (a drive that suspends gives it up), and a claim
round says it took a run. The two can cross: a drive commits a suspension
(giving the claim up), another process delivers the event at once, and this
worker's claim round takes the run back — all before the event loop has
told the worker of the first commit. Heard in that order, the late "given
up" would make the worker forget a claim the store says it holds, and the
run would stay claimed and never driven. The run's version orders them: a
claim round reports the version the run's row was at when it took it, and a
commit that gave the claim up at that version or an earlier one happened
before the claim.
"""

from __future__ import annotations

from typing import final


@final
class HeldClaims:
    """The runs this worker holds, kept right whatever order the reports come in."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._claimed_at: dict[str, int] = {}
        """The version each run was at when a claim round took it (while held)."""

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._held

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def claimed(self, run_id: str, version: int) -> None:
        """A claim round took ``run_id``, whose row was at ``version``."""
        self._held.add(run_id)
        self._claimed_at[run_id] = version

    def committed(self, run_id: str, version: int, held: bool) -> None:
        """A commit of this process left the run at ``version``, held or not by this
        worker; ignored when a claim round took the run at that version or later."""
        if held:
            self._held.add(run_id)
        elif self._claimed_at.get(run_id, -1) < version:
            self.released(run_id)

    def released(self, run_id: str) -> None:
        """The worker no longer holds ``run_id`` (it gave it up, or the run is gone)."""
        self._held.discard(run_id)
        self._claimed_at.pop(run_id, None)
