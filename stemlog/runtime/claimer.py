"""When a worker claims runs, and how it keeps and names its claims.

A worker gets runs from its own commits and from *claim rounds*: one
statement claims a batch of due runs. A round runs when a hint says there
may be work (a commit here left a claimable run, another process notified),
when the next known due time comes, and every ``FALLBACK_CLAIM_SECONDS``
otherwise. Every idle worker of every process hears another process's hint,
so a worker that lost the last race for hinted runs answers the next one a
little later (``HERD_WINDOW_SECONDS``): the hints of that window make one
round, and the winners answer at once. Claims are renewed by one statement
every third of the lease; the claims of this host's dead worker processes
are released when a worker starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import final

import anyio

from stemlog.clock import Clock, from_micros
from stemlog.errors import StoreUnavailableError, StoreWriteError
from stemlog.model.state import RunState, step_label
from stemlog.runtime.held import HeldClaims
from stemlog.store.events import RunStore
from stemlog.store.index import Claimed

logger = logging.getLogger("stemlog.worker")

Served = Callable[[], Sequence[str]]

HERD_WINDOW_SECONDS = 0.01
"""How long a worker that lost the last race for hinted runs waits before answering the
next hint of another process (jittered, doubling with each loss up to four times)."""

FALLBACK_CLAIM_SECONDS = 2.0
"""How long an idle worker waits for a hint before it runs a claim round anyway
(a hint lost while the database was away, a clock that jumped)."""

STORE_RETRY = timedelta(seconds=2)
"""How soon a claim round (or a drive) that met an unavailable store is tried again."""


def worker_owner() -> str:
    """A new worker's name in claims: ``host:pid:random``, unique per app."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def dead_here(owner: str) -> bool:
    """Whether ``owner`` names a worker process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def sleep_then_cancel(clock: Clock, moment: datetime, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` once the clock reaches ``moment`` (a timer for a wait)."""
    await clock.sleep_until(moment)
    scope.cancel()


@final
class Claimer:
    """The claim rounds of one worker."""

    def __init__(
        self,
        store: RunStore,
        clock: Clock,
        served: Served,
        held: HeldClaims,
        *,
        room: Callable[[], int],
        claimed: Callable[[Claimed], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._served = served
        self._held = held
        self._room = room
        self._claimed = claimed
        self._hint = anyio.Event()
        self._claim_at: datetime | None = None
        self.more = False
        """A claim round may have found more than it had room for."""
        self._remote_only = False
        """The loop was woken by other processes' hints alone (so far)."""
        self._lost = 0
        """Rounds in a row, answering other processes' hints, that found nothing."""

    def hint(self) -> None:
        """There may be runs to claim now."""
        self._remote_only = False
        self._hint.set()

    def remote_hint(self) -> None:
        """Another process left a run to claim (as every idle worker hears)."""
        if not self._hint.is_set():
            self._remote_only = True
        self._hint.set()

    def hint_at(self, moment: datetime) -> None:
        """There may be runs to claim at ``moment``."""
        if moment <= self._clock.now():
            self.hint()
        elif self._claim_at is None or moment < self._claim_at:
            self._claim_at = moment
            self._hint.set()  # the loop sleeps until the earlier moment instead

    async def run(self) -> None:
        """Claim rounds until cancelled."""
        while True:
            self._hint = anyio.Event()
            answering, self._remote_only = self._remote_only, False
            room = self._room()
            if room <= 0:
                self.more = True  # the next drive to end asks again
            else:
                found = await self._round(room)
                self._lost = 0 if found or not answering else self._lost + 1
            await self._wait_for_hint()
            if self._remote_only and self._lost:
                await self._herd_pause()

    async def _herd_pause(self) -> None:
        factor = min(2 ** (self._lost - 1), 4) * random.uniform(0.5, 1.0)
        await anyio.sleep(HERD_WINDOW_SECONDS * factor)

    async def _round(self, room: int) -> bool:
        """Claim due runs up to ``room``; whether it found any."""
        served = self._served()
        if not served:
            return False
        try:
            found = await self._store.claim(room, served)
        except (StoreUnavailableError, StoreWriteError):
            self.hint_at(self._clock.now() + STORE_RETRY)
            return False
        self.more = len(found.claimed) >= room
        now = self._clock.now()
        for item in found.claimed:
            self._held.claimed(item.run_id, item.version)
            self._claimed(item)
        if found.next_due is not None:
            due = from_micros(found.next_due)
            if self._claim_at is None or due < self._claim_at or self._claim_at <= now:
                self._claim_at = due
        return bool(found.claimed)

    async def _wait_for_hint(self) -> None:
        """Until a hint, the next known due moment, or the fallback interval."""
        moment = self._claim_at
        with anyio.move_on_after(FALLBACK_CLAIM_SECONDS):
            if moment is None:
                await self._hint.wait()
                return
            async with anyio.create_task_group() as sleeper:
                sleeper.start_soon(sleep_then_cancel, self._clock, moment, sleeper.cancel_scope)
                await self._hint.wait()
                sleeper.cancel_scope.cancel()
        if self._claim_at is not None and self._claim_at <= self._clock.now():
            self._claim_at = None

    async def release_dead_workers(self) -> None:
        """Give up the claims of this host's worker processes that are gone (killed),
        so their runs resume now rather than when the claims run out."""
        with contextlib.suppress(StoreUnavailableError, StoreWriteError):
            dead = [owner for owner in await self._store.claimers() if dead_here(owner)]
            if dead:
                logger.warning("claims of stopped workers %s released", ", ".join(dead))
                await self._store.release_owners(dead)

    async def renew(self, lease: timedelta) -> None:
        """Renew every claim of this worker every third of ``lease``, until cancelled."""
        while True:
            await anyio.sleep(max(lease.total_seconds() / 3, 0.05))
            if self._held:
                with contextlib.suppress(StoreUnavailableError, StoreWriteError):
                    await self._store.renew()  # a missed heartbeat: the next one may land


def log_takeover(state: RunState, previous: tuple[str, datetime] | None, now: datetime) -> None:
    """Log a run whose step was under way when its worker stopped (it runs again);
    ``previous`` is the claim that ran out, if the claim round saw it."""
    if not state.in_flight or state.current is None:
        return
    since = state.step_started_at or state.updated_at or state.created_at
    waited = (now - since).total_seconds()
    whose = f"worker {previous[0]}" if previous is not None else "its worker"
    fields = {"run_id": state.run_id, "workflow": state.workflow,
              "step": step_label(state.current), "attempt": state.attempt}  # fmt: skip
    logger.warning(
        "run %s: step %s (attempt %d) was under way when %s stopped, %.1f s ago; "
        "taking it over", state.run_id, step_label(state.current), state.attempt, whose,
        waited, extra=fields,
    )  # fmt: skip
