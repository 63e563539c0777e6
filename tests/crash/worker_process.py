"""A worker process for the crash tests: ``python -m tests.crash.worker_process URL MODE ...``.

Modes: ``start MARKER`` starts a blocking run and drives it; ``drive`` only drives
what the log holds; ``emit TOPIC`` emits and prints ``emitted`` before serving on.
It prints the run id / ``emitted`` on standard output and then serves until killed.
"""

from __future__ import annotations

import sys

import anyio

from stemlog import WorkflowApp
from tests.crash.workflows import blocking, poison


async def main(url: str, mode: str, argument: str) -> None:
    async with WorkflowApp.open(url) as app:
        app.register_flows([blocking, poison])
        if mode == "start":
            print(await app.start(blocking, {"marker": argument}), flush=True)
        elif mode == "poison":
            print(await app.start(poison, {"marker": argument}), flush=True)
        elif mode == "emit":
            reached = await app.emit(argument, "delivered")
            print(f"emitted {len(reached)}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
