"""Kill -9 the projector mid-catch-up: resuming never double-counts (exactly once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from projections.audit import verify
from projections.projector import Projector
from projections.views.sqlite import SQLiteRunsView
from stemlog.model.run import Run
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url

pytestmark = pytest.mark.crash
ROOT = Path(__file__).resolve().parents[2]
START = datetime(2030, 1, 1, tzinfo=UTC)


def fill(log: RunStore, runs: int) -> None:
    batch = []
    for index in range(runs):
        at = START + timedelta(milliseconds=index)
        run = Run.begin(
            run_id=uuid.uuid4(), at=at, workflow=f"wf{index % 3}", kind="flow",
            workflow_version=1, params={}, fingerprint="f", parent_run_id=None, policy=None,
            ttl=None, forked_from=None,
        )  # fmt: skip
        for step in ("a", "b"):
            run.start_step((step, 0), 1, at)
            if index % 5 == 0 and step == "b":
                run.fail_step((step, 0), {"type": "E", "message": "m", "traceback": None},
                              at + timedelta(seconds=1), at)  # fmt: skip
                run.start_step((step, 0), 2, at + timedelta(seconds=1))
            run.complete_step((step, 0), index, at + timedelta(milliseconds=3))
        if index % 7 == 0:
            run.start_step(("c", 0), 1, at)
            run.await_event(("c", 0), "topic", None, at)
        else:
            run.complete(index, at + timedelta(milliseconds=9))
        batch.append(run)
        if len(batch) == 50:
            log.log.save(*batch)
            batch.clear()
    log.log.save(*batch)


@pytest.mark.parametrize("kill_after_pages", [3, 17, 41])
def test_a_killed_catch_up_resumes_without_counting_twice(
    tmp_path: Path, kill_after_pages: int
) -> None:
    path = tmp_path / "models.db"
    log = RunStore(parse_store_url(f"sqlite:///{path}"))
    try:
        fill(log, 600)
        head = log.head()
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.catch_up_process", str(path)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None
        for _ in range(kill_after_pages):
            assert worker.stdout.readline().strip().isdigit()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        worker.stdout.close()
        view = log.tracking_recorder(SQLiteRunsView)
        reached = view.position()
        assert 0 < reached < (head or 0)
        Projector(log, view, page_size=53).catch_up()
        assert view.position() == head
        assert verify(log, view) == []
        steps, _ = view.stats()
        completions = {(s.workflow, s.step): s.completions for s in steps}
        assert sum(completions.values()) == 2 * 600
    finally:
        log.close()
