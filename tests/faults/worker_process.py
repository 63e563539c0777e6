"""A worker process for the fault tests: ``python -m tests.faults.worker_process URL``.

It serves the workload until SIGTERM and exits 0; any other exit means the
faults killed it, which the test treats as a failure.
"""

from __future__ import annotations

import logging
import signal
import sys

import anyio

from stemlog import WorkflowApp
from tests.faults.workflows import faulty


async def main(url: str) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with WorkflowApp.open(url, lease=2.0, concurrency=32) as app:
            app.register_scripts([faulty])
            print("ready", flush=True)
            async for _ in signals:
                return


if __name__ == "__main__":
    line = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=line)
    anyio.run(main, sys.argv[1])
