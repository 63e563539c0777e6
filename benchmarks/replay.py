"""How long replaying a script run takes, and what a resume costs as a run grows.

Offline replay:
For scripts of 10, 1,000 and 10,000 completed steps (2 facts per step), on a
SQLite file, it measures in the same run:

* ``repository.get`` — eventsourcing reads the run's events and mutates the
  aggregate (the baseline);
* read + ``stemlog.execution.replay`` — the same read, then stemlog's offline replay:
  fold with a snapshot per fact, and re-execution of ``run`` answering every
  step from the log.

It prints the median time, the time per fact (flat when the cost grows
linearly) and the ratio to the baseline.

Live resumes: a worker drives a script of N durable sleeps (``await
script.sleep(0)``, N = 10, 100, 1,000, 10,000) on ``memory://``; a resume is
the time from one ``SleepStarted`` to the next (the timer fires, the sleep
elapses, the script goes on to its next sleep). It prints the median resume
of the first 10 % and of the last 10 % of the run and their ratio (the
baseline is the run's own start: flat cost means a ratio near 1), beside the
same with parked executions off (``run`` re-entered from its top on each
resume, as after a restart). Then a script of 100,000 steps runs to its end.

``--json`` prints the rows as JSON.

    python benchmarks/replay.py [--repeat 5] [--sizes 10,1000,10000]
                                [--resumes 10,100,1000,10000] [--long 100000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import orjson

from stemlog import RunStatus, WorkflowApp, WorkflowScript, replay
from stemlog.model.run import Run
from stemlog.runtime import worker
from stemlog.store.log import RunLog
from stemlog.store.urls import parse_store_url


def script_of(steps: int) -> WorkflowScript:
    async def run(script: Any) -> int:
        for index in range(steps):
            await script.step("work", lambda ctx, index=index: index, auto_version=True)
        return steps

    return WorkflowScript(f"replay.{steps}", run=run)


def record_run(log: RunLog, steps: int) -> uuid.UUID:
    """Append a completed run of ``steps`` steps, saving every 500 facts."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    definition = script_of(steps).definition
    run_id = uuid.uuid4()
    run = Run.begin(
        run_id=run_id, at=start, workflow=definition.name, kind="script",
        workflow_version=1, params={}, fingerprint=definition.fingerprint,
        parent_run_id=None, policy=None, ttl=None, forked_from=None,
    )  # fmt: skip
    for index in range(steps):
        at = start + timedelta(microseconds=index)
        run.start_step(("work", index), 1, at)
        run.complete_step(("work", index), index, at)
        if index % 250 == 0:
            log.save(run)
    run.complete(steps, start + timedelta(seconds=1))
    log.save(run)
    return run_id


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(steps: int, repeat: int, folder: Path) -> dict[str, Any]:
    log = RunLog(env=parse_store_url(f"sqlite:///{folder / f'replay-{steps}.db'}").env)
    try:
        run_id = record_run(log, steps)
        definition = script_of(steps)
        facts = 2 * steps + 2

        def baseline() -> object:
            return log.repository.get(run_id)

        def stemlog_replay() -> object:
            report = replay(list(log.events.get(run_id)), definition)
            assert report.divergence is None
            assert len(report.requested) == steps
            return report

        base = median_seconds(baseline, repeat)
        ours = median_seconds(stemlog_replay, repeat)
    finally:
        log.close()
    return {
        "steps": steps,
        "facts": facts,
        "replay_ms": ours * 1e3,
        "replay_us_per_fact": ours / facts * 1e6,
        "repository_get_ms": base * 1e3,
        "repository_get_us_per_fact": base / facts * 1e6,
        "ratio": ours / base,
    }


def sleeper(count: int) -> WorkflowScript:
    async def run(script: Any) -> int:
        for _ in range(count):
            await script.sleep(0)
        return count

    return WorkflowScript(f"resumes.{count}", run=run)


async def live_resumes(count: int, parked: bool) -> dict[str, Any]:
    """Drive a script of ``count`` sleeps; the resume times of its first and last 10 %."""
    worker.PARKED_SCRIPTS = 1024 if parked else 0
    script = sleeper(count)
    async with WorkflowApp.open("memory://") as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=3600)
        assert result.status is RunStatus.COMPLETED, result
        sleeps = [f.timestamp for f in await app.history(result.run_id) if f.type == "SleepStarted"]
    gaps = [(b - a).total_seconds() * 1e3 for a, b in itertools.pairwise(sleeps)]
    tenth = max(len(gaps) // 10, 1)
    first, last = statistics.median(gaps[:tenth]), statistics.median(gaps[-tenth:])
    return {"sleeps": count, "parked": parked, "first_ms": first, "last_ms": last,
            "ratio": last / first}  # fmt: skip


async def long_script(steps: int) -> dict[str, Any]:
    """A script of ``steps`` steps, start to end, on ``memory://``."""
    worker.PARKED_SCRIPTS = 1024
    script = script_of(steps)
    started = time.perf_counter()
    async with WorkflowApp.open("memory://") as app:
        app.register_scripts([script])
        result = await app.start_and_wait(script, timeout=7200)
    seconds = time.perf_counter() - started
    assert result.status is RunStatus.COMPLETED, result
    assert result.value == steps, result
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds}


def print_resumes(rows: list[dict[str, Any]]) -> None:
    print("live resumes of a script of N sleeps (memory://, median ms of the first and last 10 %)")
    header = (f"{'sleeps':>7} {'first 10%':>10} {'last 10%':>10} {'ratio':>6} "
              f"{'re-entered: first':>18} {'last':>8} {'ratio':>7}")  # fmt: skip
    print(header)
    print("-" * len(header))
    by_size: dict[int, dict[bool, dict[str, Any]]] = {}
    for row in rows:
        by_size.setdefault(row["sleeps"], {})[row["parked"]] = row
    for size, pair in by_size.items():
        live, again = pair[True], pair.get(False)
        tail = (
            ""
            if again is None
            else (f"{again['first_ms']:>18.3f} {again['last_ms']:>8.3f} {again['ratio']:>7.2f}")
        )
        print(f"{size:>7} {live['first_ms']:>10.3f} {live['last_ms']:>10.3f} "
              f"{live['ratio']:>6.2f} {tail}")  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'steps':>7} {'facts':>7} {'read+replay ms':>15} {'µs/fact':>8} "
        f"{'repository.get ms':>18} {'µs/fact':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['steps']:>7} {row['facts']:>7} {row['replay_ms']:>15.2f} "
            f"{row['replay_us_per_fact']:>8.1f} {row['repository_get_ms']:>18.2f} "
            f"{row['repository_get_us_per_fact']:>8.1f} {row['ratio']:>6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--resumes", default="10,100,1000,10000")
    parser.add_argument("--long", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="stemlog-bench-") as folder:
        rows = [measure(steps, options.repeat, Path(folder)) for steps in sizes]
    resumes = []
    for count in (int(size) for size in options.resumes.split(",") if size):
        resumes.append(anyio.run(live_resumes, count, True))
        if count <= 1000:  # re-entering from the top is quadratic: keep it short
            resumes.append(anyio.run(live_resumes, count, False))
    long = anyio.run(long_script, options.long) if options.long else None
    if options.json:
        document = {"replay": rows, "resumes": resumes, "long": long}
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"replay of a script run (SQLite file, median of {options.repeat})")
    print_table(rows)
    print()
    print_resumes(resumes)
    if long is not None:
        print()
        print(f"a script of {long['steps']:,} steps ran to its end in {long['seconds']:.1f} s "
              f"({long['steps_per_s']:,.0f} steps/s, memory://)")  # fmt: skip


if __name__ == "__main__":
    main()
