"""``stemlog`` (the console script) with its SQL statements counted, for benchmarks.

    python benchmarks/count_worker.py --stats FILE [--profile FILE] [--texts] -- \\
        --db URL worker scale_workflows:app --concurrency 32

Everything after ``--`` goes to stemlog's command line unchanged. The process
counts its statements and transactions (:mod:`_sqlcount`) and writes them, with
its own CPU seconds, to ``--stats`` as JSON each time it receives SIGUSR1 (and
once more when it exits); ``seq`` says how many times it did. ``--profile``
profiles every thread with cProfile, timed by the thread's CPU time (so waits
do not count), and writes the merged stats there on exit (stop the worker
with SIGINT, as Ctrl-C does, for a clean exit).
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import pstats
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _sqlcount
from _measure import stats_writer


def main() -> None:
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--texts", action="store_true", help="keep statements by text")
    options = parser.parse_args(sys.argv[1:split])
    counts = _sqlcount.install(texts=options.texts)
    dump = stats_writer(counts, options.stats)
    signal.signal(signal.SIGUSR1, dump)
    atexit.register(dump)
    if options.profile is not None:
        _profile_threads(options.profile)
    sys.argv = ["stemlog", *sys.argv[split + 1 :]]
    from stemlog.cli.main import main as stemlog_main

    stemlog_main()


def _profile_threads(path: Path) -> None:
    """cProfile in every thread (one profiler each), merged into ``path`` at exit."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU time: this thread's, not the wall
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook in this thread

    def write() -> None:
        with lock:
            taken = list(profiles)
        merged: pstats.Stats | None = None
        for profile in taken:
            try:
                stats = pstats.Stats(profile)
            except TypeError:  # a profiler that never saw a call
                continue
            if merged is None:
                merged = stats
            else:
                merged.add(stats)
        if merged is not None:
            merged.dump_stats(str(path))

    threading.setprofile(start)
    start()
    atexit.register(write)


if __name__ == "__main__":
    main()
