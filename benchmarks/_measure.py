"""Shared measuring helpers of the benchmarks: CPU time from ``/proc``, PostgreSQL's
transaction counters, throwaway databases, percentiles.

CPU is user + system time (``utime + stime`` in ``/proc/<pid>/stat``, every
thread of the process; ``resource.getrusage`` for the calling process), read
before and after the timed part. PostgreSQL's processes are found by their
command (``postgres``) and told apart by their title (``postgres: [cluster:]
user database host(port) state``): the backends of the benchmark's database
are charged to it, together with the server's own processes (WAL writer,
checkpointer, background writer, ..., which every database shares);
backends of *other* databases (another benchmark, a test suite running at the
same time) are not, and are reported apart as ``pg_other``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _sqlcount
import orjson
import psycopg

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a live process (all its threads), or None once gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK  # utime, stime (fields 14 and 15)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stats_writer(counts: _sqlcount.Counts, path: Path) -> Callable[..., None]:
    """A signal handler (also callable as it is) that writes this process's SQL counts,
    CPU seconds, pid and how many times it wrote (``seq``) to ``path`` as JSON,
    through a temporary file: readers never see half a file."""
    writes = 0

    def write(*_: Any) -> None:
        nonlocal writes
        writes += 1
        snapshot = {**counts.snapshot(), "cpu": self_cpu(), "seq": writes, "pid": os.getpid()}
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(snapshot))
        temporary.replace(path)

    return write


def _title(pid: str) -> str | None:
    try:
        if (PROC / pid / "comm").read_text().strip() != "postgres":
            return None
        return (PROC / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return None


@dataclass
class PostgresCpu:
    """CPU seconds of each PostgreSQL process at one moment, by kind."""

    database: str
    mine: dict[int, float] = field(default_factory=dict)  # this database's backends
    server: dict[int, float] = field(default_factory=dict)  # postmaster, WAL writer, ...
    other: dict[int, float] = field(default_factory=dict)  # other databases' backends

    @classmethod
    def read(cls, database: str, skip: Iterable[int] = ()) -> PostgresCpu:
        """``skip``: backends not to charge (a monitoring connection's)."""
        snapshot = cls(database)
        skipped = set(skip)
        for entry in PROC.iterdir():
            if not entry.name.isdigit() or int(entry.name) in skipped:
                continue
            title = _title(entry.name)
            if title is None:
                continue
            cpu = process_cpu(int(entry.name))
            if cpu is None:
                continue
            if f" {database} " in f" {title} ":
                snapshot.mine[int(entry.name)] = cpu
            elif "(" in title or "[local]" in title:
                snapshot.other[int(entry.name)] = cpu  # a client backend of another database
            else:
                snapshot.server[int(entry.name)] = cpu
        return snapshot

    def since(self, before: PostgresCpu) -> dict[str, float]:
        """CPU seconds spent since ``before`` (a process started since counts whole; one
        that ended in between is lost)."""

        def spent(now: dict[int, float], then: dict[int, float]) -> float:
            return sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())

        return {"pg": spent(self.mine, before.mine) + spent(self.server, before.server),
                "pg_backends": spent(self.mine, before.mine),
                "pg_other": spent(self.other, before.other)}  # fmt: skip


def processes_cpu(pids: Iterable[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}


class Monitor:
    """A connection to the admin database reading ``pg_stat_database`` (not counted by
    :mod:`_sqlcount`, and not charged to the benchmark's database)."""

    def __init__(self, admin_url: str) -> None:
        self.connection = _sqlcount.exclude(psycopg.connect(admin_url, autocommit=True))
        self.pid = self.connection.info.backend_pid

    def transactions(self, database: str) -> int:
        """Commits and rollbacks of ``database`` as the statistics show them now.

        PostgreSQL 15 backends flush their counters at most once a second while
        busy, an idle one only 10 s after its last flush, and every one when it
        exits. Exact figures need the backends gone (:meth:`wait_gone`), or
        :data:`STATS_DELAY` of idleness."""
        row = self.connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
        return int(row[0]) if row else 0

    def wait_gone(self, database: str, timeout: float = 30.0) -> None:
        """Wait until no backend serves ``database`` (a backend flushes its statistics
        when it exits, so :meth:`transactions` is then exact)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchone()
            if row is None or int(row[0]) == 0:
                time.sleep(0.05)  # the last one's exit and its flush
                return
            time.sleep(0.02)
        raise TimeoutError(f"backends of {database} still there after {timeout} s")

    def close(self) -> None:
        self.connection.close()


STATS_DELAY = 11.0
"""Seconds after which every idle backend has flushed its statistics (PostgreSQL 15:
PGSTAT_IDLE_INTERVAL, 10 s)."""


def settle_stats() -> None:
    time.sleep(STATS_DELAY)


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        _sqlcount.exclude(connection)
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        _sqlcount.exclude(connection)
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def dbos_available(wanted: bool) -> bool:
    """Whether to run the DBOS rows: wanted, and DBOS installed (else say so)."""
    if not wanted:
        return False
    try:
        import dbos  # noqa: F401
    except ImportError:
        import sys

        print("DBOS is not installed (pip install -e '.[bench]'): no DBOS rows", file=sys.stderr)
        return False
    return True
