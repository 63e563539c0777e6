"""SQLite: a full disk, a read-only file, a database locked for too long.

The call that wrote gets a typed error, the app and its worker keep running,
and once the store accepts writes again everything continues.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from stemlog import Flow, RunStatus, StoreUnavailableError, StoreWriteError, WorkflowApp

pytestmark = [pytest.mark.anyio, pytest.mark.faults]


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "3m") -> Iterator[Path]:
    """A tmpfs of ``size`` (needs root and ``mount``; the test skips otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small disk needs root to mount a tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _flows() -> tuple[Flow, Flow]:
    quick = Flow("f.quick")
    quick.step("one", lambda ctx: "x" * 2000)
    quick.step("two", lambda ctx: ctx.previous_value()[:10])
    waits = Flow("f.waits")
    waits.step("wait", lambda ctx: ctx.wait_for_event_value("f.go"))
    return quick, waits


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def test_a_full_disk_fails_the_write_and_the_app_goes_on(tmp_path: Path) -> None:
    quick, waits = _flows()
    with small_disk(tmp_path) as mount:
        url = f"sqlite:///{mount / 'app.db'}"
        async with WorkflowApp.open(url, store_timeout=2) as app:
            app.register_flows([quick, waits])
            first = await app.start_and_wait(quick, timeout=5)
            assert first.status is RunStatus.COMPLETED
            waiting = await app.start(waits)
            filler = _fill(mount)
            refusal: StoreWriteError | None = None
            for _ in range(50):  # the WAL may hold a few pages: write until it is full
                try:
                    await app.start(quick)
                except StoreWriteError as error:
                    refusal = error
                    break
            assert refusal is not None and "full" in str(refusal)
            assert (await app.list_runs(limit=5)) is not None  # reads go on
            filler.unlink()
            again = await app.start_and_wait(quick, timeout=10)
            assert again.status is RunStatus.COMPLETED
            with anyio.fail_after(10):
                while waiting not in await app.runs_waiting_on("f.go"):
                    await anyio.sleep(0.05)
            await app.emit("f.go", 1)
            assert (await app.wait_for(waiting, timeout=10)).status is RunStatus.COMPLETED
            with anyio.fail_after(10):
                while await app.list_runs(status="running"):
                    await anyio.sleep(0.05)  # runs cut short by the full disk finish too
            assert await app.read_models.verify() == []


@contextlib.contextmanager
def read_only_view(folder: Path, tmp_path: Path) -> Iterator[Path]:
    """``folder`` bind-mounted read-only (needs root; the test skips otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only mount needs root")
    view = tmp_path / "read-only"
    view.mkdir()
    done = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


async def test_a_read_only_file_or_folder_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    quick, _ = _flows()
    folder = tmp_path / "data"
    folder.mkdir()
    async with WorkflowApp.open(f"sqlite:///{folder / 'app.db'}") as app:
        app.register_flows([quick])
        assert (await app.start_and_wait(quick, timeout=5)).status is RunStatus.COMPLETED
    with read_only_view(folder, tmp_path) as view:
        url = f"sqlite:///{view / 'app.db'}"
        for worker in (True, False):
            with pytest.raises((StoreWriteError, StoreUnavailableError)) as raised:
                async with WorkflowApp.open(url, worker=worker, store_timeout=1):
                    pass
            assert str(view / "app.db") in str(raised.value)
    async with WorkflowApp.open(f"sqlite:///{folder / 'app.db'}") as app:  # writable again
        app.register_flows([quick])
        assert (await app.start_and_wait(quick, timeout=5)).status is RunStatus.COMPLETED


async def test_a_database_locked_past_its_busy_timeout_is_unavailable_then_back(
    tmp_path: Path,
) -> None:
    quick, _ = _flows()
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}?lock_timeout=1"
    async with WorkflowApp.open(url, store_timeout=1.5) as app:
        app.register_flows([quick])
        assert (await app.start_and_wait(quick, timeout=5)).status is RunStatus.COMPLETED
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreUnavailableError, match="locked"):
                await app.start(quick)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await app.start_and_wait(quick, timeout=10)).status is RunStatus.COMPLETED
