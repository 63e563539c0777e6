"""The command line, through typer's runner, on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from stemlog.cli.main import cli

APP = "stemlog.examples.app:app"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def test_demo_runs_both_seed_workflows(db: str) -> None:
    code, out, _ = invoke(db, "demo")
    assert code == 0, out
    assert "approved-by:alice" in out
    assert "receipt-ch_1001" in out
    code, out, _ = invoke(db, "runs", "--json")
    runs = orjson.loads(out)
    assert {run["workflow"] for run in runs} == {"approvals.flow", "billing.retry-script"}
    # the two seed runs complete; a third approvals run is left waiting to try commands on
    assert [run["status"] for run in runs] == ["completed", "completed", "suspended"]


def test_history_exports_and_imports_into_another_store(db: str, tmp_path: Path) -> None:
    assert invoke(db, "demo")[0] == 0
    run_id = orjson.loads(invoke(db, "runs", "--json")[1])[0]["run_id"]
    code, out, _ = invoke(db, "history", run_id, "--json")
    assert code == 0
    lines = out.splitlines()
    assert [orjson.loads(line)["position"] for line in lines] == list(range(1, len(lines) + 1))
    exported = tmp_path / "run.jsonl"
    exported.write_text(out)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert invoke(other, "import", str(exported))[0] == 0
    assert invoke(other, "history", run_id, "--json")[1] == out
    code, out, _ = invoke(other, "replay", run_id, "--app", APP, "--json")
    assert code == 0
    assert orjson.loads(out)["divergence"] is None


def test_start_wait_and_manifest(db: str) -> None:
    code, out, _ = invoke(db, "start", "examples.batch", "--params", '{"items": 3}', "--wait",
                          "--app", APP, "--json")  # fmt: skip
    assert code == 0
    assert orjson.loads(out)["result"] == 30
    code, out, _ = invoke(db, "manifest", "--app", APP, "--json")
    assert {entry["name"] for entry in orjson.loads(out)} >= {"approvals.flow", "examples.batch"}


def test_projections_list_rebuild_verify(db: str, tmp_path: Path) -> None:
    assert invoke(db, "demo")[0] == 0
    code, out, _ = invoke(db, "projections", "list", "--json")
    models = orjson.loads(out)
    assert {model["name"] for model in models} >= {"runs", "watchers", "timers", "step_stats"}
    assert all(model["lag"] == 0 for model in models)
    assert invoke(db, "projections", "rebuild")[0] == 0
    assert invoke(db, "projections", "verify")[0] == 0
    audit = tmp_path / "audit.db"
    code, out, _ = invoke(db, "projections", "rebuild", "--as-of", "5", "--into", str(audit))
    assert code == 0, out
    assert audit.exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("emit", "topic", "{not json"), id="bad-json"),
        pytest.param(("send", "00000000-0000-0000-0000-000000000000", "t", "1"), id="unknown-run"),
        pytest.param(("cancel", "not-a-run-id"), id="malformed-run-id"),
        pytest.param(("emit", " ", "1"), id="empty-topic"),
        pytest.param(("start", "nope", "--app", APP), id="unknown-workflow"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db: str, args: tuple[str, ...]) -> None:
    code, out, err = invoke(db, *args)
    assert code == 2
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_replay_exits_1_when_the_code_diverges(db: str, tmp_path: Path) -> None:
    module = tmp_path / "changed_workflows.py"
    module.write_text(
        "from stemlog import Flow\n"
        "approvals = Flow('approvals.flow')\n"
        "approvals.step('draft', lambda ctx: 1)\n"
        "approvals.step('other', lambda ctx: 2)\n"
        "approvals.step('finalize', lambda ctx: 3)\n"
    )
    assert invoke(db, "demo")[0] == 0
    runs = orjson.loads(invoke(db, "runs", "--workflow", "approvals.flow", "--json")[1])
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        code, out, _ = invoke(db, "replay", runs[0]["run_id"], "--app",
                              "changed_workflows:approvals", "--json")  # fmt: skip
    finally:
        sys.path.remove(str(tmp_path))
    report = orjson.loads(out)
    assert code == 1
    assert report["divergence"]["recorded"] == "manager-review"
    assert report["divergence"]["requested"] == "other"


def test_commands_that_only_read_never_create_a_database(tmp_path: Path) -> None:
    typo = tmp_path / "stemlgo.db"
    for args in (["runs"], ["show", "00000000-0000-0000-0000-000000000000"], ["waiters", "t"],
                 ["projections", "list"], ["emit", "t", "1"]):  # fmt: skip
        code, out, err = invoke(f"sqlite:///{typo}", *args)
        assert code == 2, (args, out, err)
        assert err.count("\n") == 1 and "no such database" in err and str(typo) in err
        assert not typo.exists()
    code, _, err = invoke(f"sqlite:///{tmp_path}/no/such/dir/x.db", "runs")
    assert code == 2 and err.count("\n") == 1


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    code, _, err = invoke(f"sqlite:///{junk}", "runs")
    assert code in (1, 2)
    assert err.count("\n") == 1 and "not a database" in err


def test_import_refuses_oversized_and_out_of_order_lines_by_number(db: str, tmp_path: Path) -> None:
    from stemlog.model.history import MAX_LINE_BYTES

    assert invoke(db, "demo")[0] == 0
    run_id = orjson.loads(invoke(db, "runs", "--json")[1])[0]["run_id"]
    lines = invoke(db, "history", run_id, "--json")[1].splitlines()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    code, _, err = invoke(other, "import", str(swapped))
    assert code == 2 and "line 2" in err and "position 3 where 2 is next" in err
    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(lines[0].encode() + b"\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\n")
    code, _, err = invoke(other, "import", str(huge))
    assert code == 2 and "line 2" in err and f"{MAX_LINE_BYTES:,}" in err
    assert orjson.loads(invoke(other, "runs", "--json")[1]) == []  # nothing was written
