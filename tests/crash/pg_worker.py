"""A worker process: ``python -m tests.crash.pg_worker URL`` serves the scale workflows."""

from __future__ import annotations

import sys

import anyio

from stemlog import WorkflowApp
from tests.crash.scale_workflows import WORKFLOWS
from tests.crash.workflows import blocking


async def main(url: str) -> None:
    async with WorkflowApp.open(url, lease=1.0, concurrency=32) as app:
        app.register_workflows([*WORKFLOWS, blocking])
        print("serving", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
