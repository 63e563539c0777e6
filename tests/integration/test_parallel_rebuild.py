"""A rebuild with a helper process leaves exactly the models a rebuild in one process
leaves; a helper that fails or cannot open the store only slows the rebuild down."""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections import audit, parallel
from projections.view import RunsView
from projections.views import view_class
from stemlog.model.run import Run
from stemlog.runtime.read_models import StoreModels
from stemlog.store.base import PartitionedLog, Share
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url
from tests.strategies import COMMANDS, START, apply

PAGE = 37
"""Positions per range: small, so that runs go on over many ranges and both sides
read rows the other side's ranges left."""


def _interleaved_runs(store: RunStore, runs: int = 60, commands: int = 900) -> None:
    """``runs`` runs whose facts are spread all over the log (each command drives a
    random run), every kind of fact among them."""
    chooser = random.Random(7)
    fields = {"kind": "flow", "workflow_version": 1, "fingerprint": "f", "parent_run_id": None,
              "policy": None, "ttl": 5.0, "forked_from": None}  # fmt: skip
    started = [
        Run.begin(run_id=uuid.uuid4(), at=START, workflow=f"wf{i % 3}", params={"i": i}, **fields)
        for i in range(runs)
    ]
    for run in started:
        store.log_of(run.id).save(run)
    for tick in range(commands):
        run = chooser.choice(started)
        command, name = chooser.choice(COMMANDS), chooser.choice("abc")
        if apply(run, command, name, {"v": tick}, START + timedelta(milliseconds=tick + 1)):
            store.log_of(run.id).save(run)


@pytest.fixture
def store(durable_url: str) -> Iterator[RunStore]:
    opened = RunStore(parse_store_url(durable_url))
    try:
        _interleaved_runs(opened)
        yield opened
    finally:
        opened.close()


def _view(store: RunStore) -> RunsView:
    view = cast(RunsView, store.tracking_recorder(view_class(store.backend.name)))
    view.ensure_models()
    return view


def test_a_rebuild_with_a_helper_equals_one_without(
    store: RunStore, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(audit, "REBUILD_PAGE", PAGE)
    monkeypatch.setattr(parallel, "HELPER_FROM", 0)
    view = _view(store)
    alone = audit.rebuild(store, view)
    expected = view.dump()
    with caplog.at_level(logging.WARNING, logger="stemlog.projections"):
        helped = audit.rebuild(store, view, helper=StoreModels.of(store))
    assert "one process" not in caplog.text  # the helper folded its share to the end
    assert helped.position == alone.position and helped.events == alone.events
    assert view.dump() == expected
    assert audit.verify(store, view) == []


def test_a_short_log_is_rebuilt_without_a_helper(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(parallel, "_start_helper", lambda *args: started.append(args))
    audit.rebuild(store, _view(store), helper=StoreModels.of(store))
    assert started == []  # far fewer facts than HELPER_FROM


@contextlib.contextmanager
def _failing_open() -> Iterator[tuple[PartitionedLog, RunsView]]:
    raise OSError("no such store here")
    yield  # pragma: no cover


@pytest.mark.parametrize("opener", [_failing_open, StoreModels("sqlite:///missing/dir/x.db")])
def test_a_helper_that_fails_leaves_the_rebuild_to_this_process(
    store: RunStore, monkeypatch: pytest.MonkeyPatch, caplog: Any, opener: Any
) -> None:
    monkeypatch.setattr(audit, "REBUILD_PAGE", PAGE)
    monkeypatch.setattr(parallel, "HELPER_FROM", 0)
    view = _view(store)
    audit.rebuild(store, view)
    expected = view.dump()
    with caplog.at_level(logging.WARNING, logger="stemlog.projections"):
        result = audit.rebuild(store, view, helper=opener)
    assert "rebuild goes on in one process" in caplog.text
    assert result.position == store.head(0) + sum(store.head(p) for p in range(1, store.partitions))
    assert view.dump() == expected


run_ids = st.uuids(version=4) | st.uuids(version=5)


@given(run_id=run_ids)
def test_the_two_shares_hold_every_run_once_in_any_stored_form(run_id: uuid.UUID) -> None:
    for stored in (run_id, run_id.hex, str(run_id)):
        row = (1, stored, 1, "topic", b"{}")
        kept = [share.kept([row]) for share in (parallel.HELPER_SHARE, parallel.OWN_SHARE)]
        assert sorted(len(rows) for rows in kept) == [0, 1]
        assert kept == [Share.of(0, 10).kept([row]), Share.of(10, 16).kept([row])]
