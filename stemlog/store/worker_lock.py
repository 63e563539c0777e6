"""One worker process per SQLite file.

SQLite serialises writers, but stemlog's SQLite workers keep their leases in
their own process, so two worker processes on one file could drive the same
run at once. Instead of risking that, a worker takes an exclusive lock on
``<database>.worker.lock`` for its lifetime; a second worker process gets a
clear :class:`~stemlog.errors.WorkerAlreadyRunningError`. The operating system
drops the lock when the process dies, even by ``kill -9``. Apps without a
worker (a CLI, a web server that starts runs and emits) may share the file
freely. For several worker processes, use PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import final

from stemlog.errors import WorkerAlreadyRunningError


@final
class WorkerLock:
    """An exclusive, process-lifetime lock next to a SQLite database file."""

    def __init__(self, database: str) -> None:
        self.path = Path(f"{database}.worker.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            WorkerAlreadyRunningError: another process holds it.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkerAlreadyRunningError(str(self.path), holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
