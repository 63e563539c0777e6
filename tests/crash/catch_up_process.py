"""Catches the read models up, a small page at a time, printing each position.

``python -m tests.crash.catch_up_process SQLITE_FILE`` — the crash test kills it
mid-way, at whatever point of a page's transaction it happens to be.
"""

from __future__ import annotations

import sys

from projections.projector import Projector
from projections.views.sqlite import SQLiteRunsView
from stemlog.store.events import RunStore
from stemlog.store.urls import parse_store_url


def main(path: str) -> None:
    log = RunStore(parse_store_url(f"sqlite:///{path}"))
    view = log.tracking_recorder(SQLiteRunsView)
    projector = Projector(log, view, page_size=37)
    while (page := projector.apply_page()) is not None:
        print(page.position, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
