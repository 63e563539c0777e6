"""The command line for scripts and people: ``--json`` everywhere (errors too), exit
codes, whole run ids at 80 columns, ``--app`` from the current directory, ``start
--wait`` progress and ``--until-suspended``, one-line usage errors, ``emit`` to
nobody, and the run ``demo`` leaves waiting with the commands it suggests.

In process through typer's runner on SQLite files; a subprocess where a second
process matters (a worker, a wait that another process ends, the installed script).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from stemlog import (
    InvalidPayloadError,
    StoreUnavailableError,
    StoreWriteError,
    UnknownRunError,
)
from stemlog.cli.common import exit_code_of
from stemlog.cli.format import fit_widths
from stemlog.cli.main import cli

APP = "stemlog.examples.app:app"
DRAFT = '{"draft": {"document_id": "doc-9"}}'
ROOT = Path(__file__).resolve().parents[2]
NO_RUN = "00000000-0000-0000-0000-000000000000"


def invoke(db: str | None, *args: str, columns: int | None = None) -> tuple[int, str, str]:
    env = None if columns is None else {"COLUMNS": str(columns)}
    prefix = [] if db is None else ["--db", db]
    result = CliRunner().invoke(cli, [*prefix, *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def json_lines(text: str) -> list[Any]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def stemlog_process(*args: str, cwd: Path = ROOT, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stemlog.cli.main", *args], cwd=cwd, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen,
    )  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def demo_db(db: str) -> tuple[str, str]:
    """A database after ``stemlog demo``, and the id of the run it left waiting."""
    code, out, err = invoke(db, "demo", "--json")
    assert code == 0, err
    return db, orjson.loads(out)["waiting"]


# -- 8. the demo leaves a run waiting, and the commands it prints work -------------------


def test_demo_leaves_a_run_waiting_and_its_suggested_commands_work(db: str) -> None:
    code, out, _ = invoke(db, "demo")
    assert code == 0
    waiting = orjson.loads(invoke(db, "runs", "--status", "suspended", "--json")[1])
    assert [run["wait_topic"] for run in waiting] == ["approvals.manager"]
    run_id = waiting[0]["run_id"]
    assert f"{run_id} is suspended, waiting on approvals.manager" in out
    commands = [line.split("  # ")[0].strip() for line in out.splitlines()
                if line.startswith("  stemlog ")]  # fmt: skip
    assert any(c.endswith(f"show {run_id}") for c in commands)
    assert any('emit approvals.manager \'{"approved_by": "bob"}\'' in c for c in commands)
    for command in commands:
        args = shlex.split(command)
        assert args[:3] == ["stemlog", "--db", db]  # not the default store: said so
        if args[3] == "worker":
            continue  # runs until stopped: see test_worker_speaks_json_and_stops_cleanly
        code, out, err = invoke(None, *args[1:])
        assert code == 0, (command, out, err)
        if args[3] in ("waiters", "show", "emit", "runs"):
            assert run_id in out, command
    view = orjson.loads(invoke(db, "show", run_id, "--json")[1])["run"]
    assert view["status"] == "cancelled"  # the last suggestion


def test_demo_json_names_the_runs_and_the_commands(demo_db: tuple[str, str]) -> None:
    db, waiting = demo_db
    code, out, _ = invoke(db, "demo", "--json")
    report = orjson.loads(out)
    assert code == 0 and report["completed"] is True
    assert [run["status"] for run in report["runs"]] == ["completed", "completed", "suspended"]
    assert report["runs"][2]["run_id"] == report["waiting"] != waiting  # a new one each time
    assert any(command.endswith(f"show {report['waiting']}") for command in report["try"])


# -- 1. --json on every command ------------------------------------------------------------


def test_every_command_answers_json(demo_db: tuple[str, str], tmp_path: Path) -> None:
    db, waiting = demo_db
    runs = orjson.loads(invoke(db, "runs", "--json")[1])
    done = runs[0]["run_id"]

    def ok(*args: str) -> Any:
        code, out, err = invoke(db, *args, "--json")
        assert code == 0, (args, err)
        return orjson.loads(out)

    assert ok("waiters", "approvals.manager") == [waiting]
    assert ok("show", waiting)["run"]["wait_topic"] == "approvals.manager"
    assert ok("start", "examples.batch", "--app", APP).keys() == {"run_id", "workflow"}
    assert ok("send", waiting, "other.topic", "1") == {
        "run_id": waiting, "topic": "other.topic", "ok": True,
        "run": ok("show", waiting)["run"]}  # fmt: skip
    assert ok("emit", "approvals.manager", '{"approved_by": "bob"}') == {
        "topic": "approvals.manager", "delivered_to": [waiting]}  # fmt: skip
    rewound = ok("rewind", done, "finalize")
    assert rewound["ok"] is True and rewound["step"] == "finalize"
    assert rewound["run"]["run_id"] == done
    forked = ok("fork", done, "manager-review")
    assert forked["forked_from"] == done and forked["run_id"] != done
    cancelled = ok("cancel", waiting, "--reason", "test")
    assert cancelled["run"]["status"] == "cancelled" and cancelled["run"]["cancel_reason"] == "test"
    assert ok("replay", done, "--app", APP)["run_id"] == done
    assert {entry["name"] for entry in ok("manifest", "--app", APP)} >= {"approvals.flow"}
    assert all(model["lag"] == 0 for model in ok("projections", "list"))
    rebuilt = ok("projections", "rebuild")
    assert rebuilt["events"] > 0 and rebuilt["into"] is None
    as_of = ok("projections", "rebuild", "--as-of", "3", "--into", str(tmp_path / "a.db"))
    assert as_of["as_of"] == "3" and (tmp_path / "a.db").exists()
    assert ok("projections", "verify") == []
    history = invoke(db, "history", done, "--json")[1]
    (tmp_path / "run.jsonl").write_text(history)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = invoke(other, "import", str(tmp_path / "run.jsonl"), "--json")
    assert code == 0
    assert orjson.loads(out) == [{"run_id": done, "facts": len(history.splitlines())}]


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        pytest.param(("emit", "t", "{bad"), 2, "InvalidPayloadError", id="bad-json"),
        pytest.param(("show", NO_RUN), 2, "UnknownRunError", id="unknown-run"),
        pytest.param(("history", NO_RUN), 2, "UnknownRunError", id="history-unknown-run"),
        pytest.param(("runs", "--limit", "x"), 2, "BadParameter", id="bad-option-value"),
        pytest.param(("nope",), 2, "UsageError", id="unknown-command"),
        pytest.param(("projections", "nope"), 2, "UsageError", id="unknown-subcommand"),
        pytest.param(("projections", "rebuild", "nope"), 2, "UsageError", id="unknown-model"),
        pytest.param(("start", "nope", "--app", APP), 2, "UnknownWorkflowError", id="workflow"),
        pytest.param(
            ("start", "x", "--app", "no_such_module_here:app"), 2, "UsageError", id="unloadable-app"
        ),
        pytest.param(("cancel", "not-a-run-id"), 2, "UnknownRunError", id="malformed-id"),
    ],
)
def test_errors_are_one_json_line_on_stderr_under_json(
    demo_db: tuple[str, str], args: tuple[str, ...], code: int, kind: str
) -> None:
    got, out, err = invoke(demo_db[0], *args, "--json")
    assert got == code
    assert out == ""
    [error] = json_lines(err)
    assert error["exit_code"] == code and error["type"] == kind and error["error"]
    assert "Traceback" not in err


def test_no_such_database_is_a_json_error_too(tmp_path: Path) -> None:
    code, out, err = invoke(f"sqlite:///{tmp_path / 'typo.db'}", "runs", "--json")
    assert code == 2 and out == ""
    assert "no such database" in orjson.loads(err)["error"]


# -- 2. exit codes -------------------------------------------------------------------------


def test_a_failure_inside_a_command_is_reported_once(demo_db: tuple[str, str]) -> None:
    code, _, err = invoke(demo_db[0], "projections", "rebuild", "nope")
    assert code == 2 and err == "error: unknown model 'nope'\n"
    code, _, err = invoke(demo_db[0], "start", "x", "--app", "no_such_module_here:app")
    assert code == 2 and err.count("\n") == 1 and "unexpected" not in err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreUnavailableError("db", "gone", 30.0), 1),
        (StoreWriteError("db", "disk full"), 1),
        (RuntimeError("a bug"), 1),
        (UnknownRunError(NO_RUN), 2),
        (InvalidPayloadError("payload", "not JSON"), 2),
    ],
)
def test_the_store_failing_is_1_and_bad_input_is_2(error: Exception, code: int) -> None:
    assert exit_code_of(error) == code


def test_start_wait_timeout_must_be_positive(db: str) -> None:
    code, _, err = invoke(db, "start", "examples.batch", "--wait", "--timeout", "0", "--app", APP)
    assert code == 2 and err.startswith("error: --timeout")


# -- 4. --app from the current directory ---------------------------------------------------

WORKFLOWS = """\
from stemlog import Flow

ok = Flow("cwd.ok")
ok.step("one", lambda ctx: 1)

def explode(ctx):
    raise RuntimeError("boom")

boom = Flow("cwd.boom")
boom.step("explode", explode)

flows = [ok, boom]
"""


def test_app_module_is_found_in_the_current_directory(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"cwd_flows_{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    project.mkdir()
    (project / f"{module}.py").write_text(WORKFLOWS)
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(project))])
    code, out, err = invoke(db, "start", "cwd.ok", "--wait", "--app", f"{module}:flows", "--json")
    assert code == 0, err
    assert orjson.loads(out)["result"] == 1
    code, out, err = invoke(db, "start", "cwd.boom", "--wait", "--app", f"{module}:flows",
                            "--json")  # fmt: skip
    assert code == 1  # the run failed: the thing asked about failed
    view = orjson.loads(out)
    assert view["status"] == "failed" and view["error"]["type"] == "RuntimeError"
    code, out, _ = invoke(db, "replay", view["run_id"], "--app", f"{module}:flows", "--json")
    assert code == 0 and orjson.loads(out)["divergence"] is None
    monkeypatch.delitem(sys.modules, module)


def test_the_installed_script_finds_an_app_in_the_current_directory(
    db: str, tmp_path: Path
) -> None:
    script = shutil.which("stemlog")
    if script is None:
        pytest.skip("the stemlog console script is not installed")
    (tmp_path / "myflows.py").write_text(WORKFLOWS)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = [script, "--db", db, "manifest", "--app", "myflows:flows", "--json"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {entry["name"] for entry in orjson.loads(done.stdout)} == {"cwd.ok", "cwd.boom"}


# -- 5. start --wait: progress on stderr, --until-suspended, a suspension said -------------


def test_start_wait_shows_each_step_on_stderr_and_the_result_on_stdout(db: str) -> None:
    code, out, err = invoke(db, "start", "examples.batch", "--params", '{"items": 2}', "--wait",
                            "--app", APP)  # fmt: skip
    assert code == 0
    assert "completed" in out
    lines = err.splitlines()
    assert lines[0].startswith("started examples.batch run ")
    assert "  process: started" in lines and "  process#1: started" in lines
    assert any(line.startswith("  process#1: completed in ") for line in lines)
    assert lines[-1] == "completed: 10"
    code, out, err = invoke(db, "start", "examples.batch", "--params", '{"items": 2}', "--wait",
                            "--app", APP, "--json")  # fmt: skip
    assert code == 0 and orjson.loads(out)["result"] == 10
    notes = json_lines(err)
    assert [n["fact"]["type"] for n in notes][:3] == ["RunStarted", "StepStarted", "StepCompleted"]
    assert notes[-1]["fact"]["type"] == "RunCompleted"


def test_until_suspended_returns_saying_what_the_run_waits_on(db: str) -> None:
    code, out, err = invoke(db, "start", "approvals.flow", "--params", DRAFT, "--until-suspended",
                            "--app", APP, "--json")  # fmt: skip
    assert code == 0
    view = orjson.loads(out)
    assert view["status"] == "suspended" and view["wait_topic"] == "approvals.manager"
    last = json_lines(err)[-1]
    assert last["wait_topic"] == "approvals.manager" and last["run_id"] == view["run_id"]
    code, out, err = invoke(db, "start", "approvals.flow", "--params", DRAFT,
                            "--until-suspended", "--app", APP)  # fmt: skip
    assert code == 0 and "approvals.manager" in out
    assert err.splitlines()[-1].endswith("is suspended, waiting on approvals.manager")


def test_a_wait_on_a_suspended_run_says_so_and_honours_the_timeout(db: str) -> None:
    began = time.monotonic()
    code, out, err = invoke(db, "start", "approvals.flow", "--params", DRAFT, "--wait",
                            "--timeout", "1", "--app", APP)  # fmt: skip
    assert time.monotonic() - began < 20
    assert code == 1
    assert "suspended" in out and "approvals.manager" in out  # the view, on stdout
    said = [line for line in err.splitlines() if "is suspended, waiting" in line]
    assert len(said) == 1  # once, not at every look
    assert "waiting on approvals.manager: still waiting" in said[0]
    assert "emit approvals.manager" in said[0]
    assert err.splitlines()[-1].startswith("error: timed out after 1s: run ")


def test_a_wait_goes_on_until_another_process_delivers_the_event(db: str) -> None:
    waiter = stemlog_process("--db", db, "start", "approvals.flow", "--params", DRAFT, "--wait",
                             "--timeout", "60", "--app", APP, "--json",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert waiter.stderr is not None
    try:
        for line in waiter.stderr:  # the notes, until the suspension is said
            if orjson.loads(line).get("status") == "suspended":
                break
        code, out, err = invoke(db, "emit", "approvals.manager", '{"approved_by": "bob"}')
        assert code == 0 and out.strip(), err
        out, _ = waiter.communicate(timeout=60)
    finally:
        waiter.kill()
    assert waiter.returncode == 0
    assert orjson.loads(out)["result"] == "approved-by:bob"


# -- 6. usage errors in one line -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("projections", "nope"),
        ("nope",),
        ("runs", "--limit", "x"),
        ("show",),
        ("runs", "--bogus"),
        ("start", "x", "--timeout", "soon"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(db: str, args: tuple[str, ...]) -> None:
    code, out, err = invoke(db, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "╭" not in err and "--help" in err


@pytest.mark.parametrize("args", [("--help",), ("projections", "--help"), ("runs", "--help")])
def test_help_still_works(args: tuple[str, ...]) -> None:
    code, out, _ = invoke(None, *args)
    assert code == 0 and "Usage" in out


# -- 7. emit and waiters with nobody waiting -----------------------------------------------


def test_emit_that_reaches_nobody_says_so_and_exits_0(demo_db: tuple[str, str]) -> None:
    db, _ = demo_db
    code, out, err = invoke(db, "emit", "nobody.waits", "{}")
    assert code == 0 and out == ""
    assert err.startswith("no run is waiting on nobody.waits: nothing delivered")
    assert "send" in err
    code, out, err = invoke(db, "emit", "nobody.waits", "{}", "--json")
    assert code == 0 and orjson.loads(out) == {"topic": "nobody.waits", "delivered_to": []}
    assert orjson.loads(err)["topic"] == "nobody.waits"
    code, out, err = invoke(db, "waiters", "nobody.waits")
    assert code == 0 and out == "" and err == "no run is waiting on nobody.waits\n"


# -- 3. whole run ids at 80 columns --------------------------------------------------------


def test_runs_at_80_columns_never_cut_an_id(demo_db: tuple[str, str]) -> None:
    db, _ = demo_db
    for _ in range(2):
        assert invoke(db, "start", "approvals.flow", "--params", DRAFT, "--app", APP)[0] == 0
    ids = [run["run_id"] for run in orjson.loads(invoke(db, "runs", "--json")[1])]
    code, out, _ = invoke(db, "runs", columns=80)
    assert code == 0
    assert all(len(line) <= 80 for line in out.splitlines()), out
    rows = [line for line in out.splitlines() if line[:36] in ids]
    assert [row[:36] for row in rows] == ids  # whole, one per line, copyable
    assert "--wide" in out  # the caption says how to see the rest
    code, out, _ = invoke(db, "runs", "--wide", columns=80)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["run", "id", "workflow"] and "updated (UTC)" in header
    assert all(line.split()[0] in ids for line in lines)
    assert any("manager-review" in line and "approvals.manager" in line for line in lines)
    assert "…" not in out
    code, out, _ = invoke(db, "show", ids[0], columns=80)
    assert ids[0] in out


def test_fit_widths_keeps_the_id_and_drops_the_least_useful_columns() -> None:
    natural = [36, 14, 1, 9, 14, 17, 19]
    assert fit_widths(natural, 200, gap=2, drop=(6, 2, 4)) == natural
    at_80 = fit_widths(natural, 80, gap=2, drop=(6, 2, 4))
    assert at_80[0] == 36 and at_80[6] == at_80[2] == at_80[4] == 0
    assert at_80[1] == 14 and at_80[3] == 9  # workflow and status whole; waiting on cut
    assert sum(w for w in at_80 if w) + 2 * (sum(1 for w in at_80 if w) - 1) <= 80
    assert fit_widths(natural, 40, gap=2, drop=(6, 2, 4)) == [36, 0, 0, 0, 0, 0, 0]


# -- 1. the worker: JSON lines, a clean stop -----------------------------------------------


def test_worker_speaks_json_and_stops_cleanly(demo_db: tuple[str, str]) -> None:
    db, waiting = demo_db
    assert invoke(db, "emit", "approvals.manager", '{"approved_by": "bob"}')[0] == 0
    worker = stemlog_process("--db", db, "worker", APP, "--json",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert worker.stdout is not None
    try:
        serving = orjson.loads(worker.stdout.readline())
        assert serving["event"] == "serving" and "approvals.flow" in serving["workflows"]
        deadline = time.monotonic() + 30
        while orjson.loads(invoke(db, "show", waiting, "--json")[1])["run"]["status"] != \
                "completed":  # fmt: skip
            assert time.monotonic() < deadline, "the worker did not finish the run"
            time.sleep(0.1)
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0
    assert orjson.loads(out) == {"event": "stopped", "signal": "SIGINT"}
    logs = json_lines(err)
    assert logs and all({"time", "level", "logger", "message"} <= log.keys() for log in logs)
