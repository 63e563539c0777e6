"""Waking ``wait_for`` callers when a run's terminal fact is committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

import anyio

from stemlog.facts import TERMINAL_FACTS


@final
class RunSignals:
    """One-shot events per run id, set when a terminal fact of that run is seen."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[anyio.Event]] = {}

    def watch(self, run_id: str) -> anyio.Event:
        """An event set at the run's next terminal fact (register before checking state)."""
        event = anyio.Event()
        self._waiting.setdefault(run_id, []).append(event)
        return event

    def facts_committed(self, facts: Sequence[Any]) -> None:
        """Wake the watchers of every run that ended in ``facts``."""
        if not self._waiting:
            return
        for fact in facts:
            if isinstance(fact, TERMINAL_FACTS):
                for event in self._waiting.pop(str(fact.originator_id), ()):
                    event.set()
