"""Following the facts other processes append, while somebody here wants them.

Facts this process commits reach its dispatcher at once (the store's commit
listener); a tail reads the rest of the log for the others — for ``wait_for``
callers here waiting on a run that another process drives. Nothing else in a
process reads other processes' facts: workers learn of work from the run
index, read models are kept by one projector per database.

So the tail reads only while it is *wanted*. When it starts to be wanted it
jumps to the log's head and tells whoever wants it to look again at what
they wait for (everything before the head is in the stored state they then
read); from there it reads on, skipping the positions this process committed
itself. It is woken by the backend's hints (PostgreSQL's NOTIFY, SQLite's
``data_version``) and reads anyway every ``interval`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

import anyio
from anyio.abc import TaskStatus

from stemlog.errors import StoreUnavailableError, StoreWriteError
from stemlog.store.base import Appended, AppendListener, StoreCore

PAGE = 1000
"""Facts read per round trip."""
LINGER_SECONDS = 5.0
"""How long the tail keeps following once nobody wants it: waits often come one after
another (a loop of ``wait_for``), and each start costs every waiter a fresh read."""


@final
class PollingTail:
    """Reads the log after its position when woken or every ``interval`` seconds,
    while ``wanted()`` says so."""

    def __init__(
        self,
        store: StoreCore,
        listener: AppendListener,
        interval: float,
        *,
        wanted: Callable[[], bool],
        look_again: Callable[[], None],
        on_following: Callable[[], None],
    ) -> None:
        self._store = store
        self._listener = listener
        self._interval = interval
        self._wanted = wanted
        self._look_again = look_again
        self._on_following = on_following
        """Called when the tail starts or stops following (the hints listen accordingly)."""
        self._positions: list[int] | None = None
        """Each partition's position; ``None`` while nobody wants the tail."""
        self._unwanted_since: float | None = None
        self._woken = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the log until cancelled."""
        task_status.started()
        while True:
            with anyio.move_on_after(self._interval):
                await self._woken.wait()
            self._woken = anyio.Event()
            await self._catch_up()

    def wake(self) -> None:
        """The log may have moved (or somebody started to want it): read soon."""
        self._woken.set()

    @property
    def following(self) -> bool:
        """Whether the tail reads the log now (asked from the hints' thread: a bool)."""
        return self._positions is not None

    async def _catch_up(self) -> None:
        """Read and deliver what follows the positions; while the store is away, keep
        them and try again at the next round (the store logs it)."""
        store = self._store
        if not self._wanted():
            if self._positions is not None and self._lingered():
                self._positions = None
                store.track_local(False)
                self._on_following()
            if self._positions is None:
                return
        else:
            self._unwanted_since = None
        try:
            if self._positions is None:
                store.track_local()
                heads = [await store.blocking(store.partition(p).head)
                         for p in range(store.partitions)]  # fmt: skip
                for partition, head in enumerate(heads):
                    store.forget_local_through(partition, head)
                self._positions = heads
                self._on_following()
                self._look_again()
            for partition in range(store.partitions):
                await self._read_on(partition)
        except (StoreUnavailableError, StoreWriteError):
            return

    def _lingered(self) -> bool:
        """Whether nobody has wanted the tail for ``LINGER_SECONDS`` (counting from now
        when that just began)."""
        now = anyio.current_time()
        if self._unwanted_since is None:
            self._unwanted_since = now
        return now - self._unwanted_since >= LINGER_SECONDS

    async def _read_on(self, partition: int) -> None:
        store, positions = self._store, self._positions
        reader = store.partition(partition)
        while positions is not None:
            page = await store.blocking(reader.read, positions[partition] + 1, PAGE)
            if not page:
                return
            position = positions[partition] = max(positions[partition], page[-1].position)
            remote = [item for item in page if not store.take_local(partition, item.position)]
            store.forget_local_through(partition, position)
            if remote:
                self._listener(Appended(remote, local=False))
