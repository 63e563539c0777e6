"""How long replaying a script run takes, against eventsourcing's own reconstruction.

For scripts of 10, 1,000 and 10,000 completed steps (2 facts per step), on a
SQLite file, it measures in the same run:

* ``repository.get`` — eventsourcing reads the run's events and mutates the
  aggregate (the baseline);
* read + ``stemlog.execution.replay`` — the same read, then stemlog's offline replay:
  fold with a snapshot per fact, and re-execution of ``run`` answering every
  step from the log.

It prints the median time, the time per fact (flat when the cost grows
linearly) and the ratio to the baseline. ``--json`` prints the rows as JSON.

    python benchmarks/replay.py [--repeat 5] [--sizes 10,1000,10000] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from stemlog import WorkflowScript, replay
from stemlog.model.run import Run
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
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="stemlog-bench-") as folder:
        rows = [measure(steps, options.repeat, Path(folder)) for steps in sizes]
    if options.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"replay of a script run (SQLite file, median of {options.repeat})")
        print_table(rows)


if __name__ == "__main__":
    main()
