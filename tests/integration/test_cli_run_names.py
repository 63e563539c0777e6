"""The CLI names runs by id, by key and by a unique prefix of the id; it starts runs by
name from the store's catalog, without the code (issue: runs by key, a registry)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.integration.test_cli_v2 import invoke


@pytest.fixture
def demo_db(tmp_path: Path) -> tuple[str, str]:
    db = f"sqlite:///{tmp_path / 'names.db'}"
    code, out, err = invoke(db, "demo", "--json")
    assert code == 0, err
    return db, orjson.loads(out)["waiting"]


def test_a_unique_prefix_of_eight_names_the_run(demo_db: tuple[str, str]) -> None:
    db, waiting = demo_db
    code, out, err = invoke(db, "show", waiting[:8], "--json")
    assert code == 0, err
    assert orjson.loads(out)["run"]["run_id"] == waiting
    code, _, err = invoke(db, "show", waiting[:7])  # too short to be a prefix
    assert code == 2 and "unknown run" in err


def test_a_prefix_of_several_runs_is_refused_naming_them(demo_db: tuple[str, str]) -> None:
    db, _ = demo_db
    twins = ["aaaaaaaa-0000-4000-8000-000000000010", "aaaaaaaa-0000-4000-8000-000000000020"]
    for twin in twins:  # a UUID given as --run-id is taken as it is
        assert invoke(db, "start", "billing.retry-script", "--run-id", twin)[0] == 0
    code, _, err = invoke(db, "show", "aaaaaaaa")
    assert code == 2 and "more than one run" in err and all(t in err for t in twins)
    code, out, _ = invoke(db, "show", "aaaaaaaa-0000-4000-8000-0000000000", "--json")
    assert code == 2
    code, out, _ = invoke(db, "show", twins[1][:-1], "--json")
    assert code == 0 and orjson.loads(out)["run"]["run_id"] == twins[1]


def test_start_by_name_with_a_key_and_find_the_run_by_it(demo_db: tuple[str, str]) -> None:
    db, _ = demo_db
    params = '{"draft": {"document_id": "doc-9", "title": "Nine"}}'
    code, out, err = invoke(db, "start", "approvals.flow", "--params", params,
                            "--run-id", "doc-9", "--json")  # fmt: skip
    assert code == 0, err
    run_id = orjson.loads(out)["run_id"]
    again = invoke(db, "start", "approvals.flow", "--params", params, "--run-id", "doc-9",
                   "--json")  # fmt: skip
    assert again[0] == 0 and orjson.loads(again[1])["run_id"] == run_id
    code, _, err = invoke(db, "start", "approvals.flow", "--params", params,
                          "--run-id", "doc-9", "--if-exists", "fail")  # fmt: skip
    assert code == 2 and "exists already" in err
    code, out, _ = invoke(db, "show", "doc-9", "--json")
    view = orjson.loads(out)["run"]
    assert (view["run_id"], view["key"], view["status"]) == (run_id, "doc-9", "running")
    code, out, _ = invoke(db, "cancel", "doc-9", "--json")
    assert code == 0 and orjson.loads(out)["run_id"] == run_id


def test_start_and_manifest_without_the_code(demo_db: tuple[str, str]) -> None:
    db, _ = demo_db
    code, out, _ = invoke(db, "manifest", "--json")
    assert code == 0
    assert {entry["name"] for entry in orjson.loads(out)} == {
        "approvals.flow",
        "billing.retry-script",
    }
    code, _, err = invoke(db, "start", "no.such.workflow")
    assert code == 2 and err.count("\n") == 1 and "'no.such.workflow'" in err
