"""Commands that act on runs: ``emit``, ``send``, ``cancel``, ``rewind``, ``fork``; and
``manifest``. (``start`` and ``worker`` have their own modules.)

Each prints a short confirmation for people, or with ``--json`` a JSON object:
the run's view after the command for ``send``, ``cancel`` and ``rewind`` (what
a script checks next), the runs reached for ``emit``, the new id for ``fork``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import typer

from stemlog import WorkflowApp
from stemlog.cli.common import (
    AppOption,
    JsonOption,
    load_definitions,
    open_app,
    parse_json,
    resolve_run,
    run,
)
from stemlog.cli.format import format_manifest, run_json
from stemlog.cli.output import console, note, print_json, say


async def _view_json(app: WorkflowApp, run_id: str) -> dict[str, Any] | None:
    view = await app.get_run(run_id, consistent=True)
    return None if view is None else run_json(view)


def _act_on(
    run_id: str, act: Callable[[WorkflowApp, str], Awaitable[None]]
) -> tuple[str, dict[str, Any] | None]:
    """Do ``act`` to the run that RUN names (id, key or prefix); its full id and its
    view afterwards (as the ``--json`` output shows it)."""

    async def main() -> tuple[str, dict[str, Any] | None]:
        async with open_app() as app:
            full_id = await resolve_run(app, run_id)
            await act(app, full_id)
            return full_id, await _view_json(app, full_id)

    return run(main)


def emit(topic: str, payload: str, as_json: bool = JsonOption) -> None:
    """Deliver a JSON payload to every run waiting on TOPIC now; print the runs reached.

    Only runs already waiting get it. Reaching none is not an error (exit 0):
    a note on stderr says so; `send RUN TOPIC PAYLOAD` keeps a payload for one
    run until it waits. --json: {"topic": ..., "delivered_to": [run ids]}.
    """
    value = parse_json(payload, "the payload")

    async def main() -> list[str]:
        async with open_app() as app:
            return await app.emit(topic, value)

    reached = run(main)
    if as_json:
        print_json({"topic": topic, "delivered_to": reached})
    else:
        for run_id in reached:
            say(run_id)
    if not reached:
        keep = "use `send RUN TOPIC PAYLOAD` to keep a payload for one run"
        note(f"no run is waiting on {topic}: nothing delivered ({keep})", topic=topic)


def send(run_id: str, topic: str, payload: str, as_json: bool = JsonOption) -> None:
    """Deliver a JSON payload to one run (kept until it waits on TOPIC).

    --json: {"run_id", "topic", "ok": true, "run": the run's view after}.
    """
    value = parse_json(payload, "the payload")

    full_id, view = _act_on(run_id, lambda app, rid: app.send(rid, topic, value))
    if as_json:
        print_json({"run_id": full_id, "topic": topic, "ok": True, "run": view})
    else:
        say(f"sent {topic} to {full_id}")


def cancel(
    run_id: str, reason: str | None = typer.Option(None, help="why"), as_json: bool = JsonOption
) -> None:
    """Cancel a run and its running children.

    --json: {"run_id", "ok": true, "run": the run's view after}.
    """

    full_id, view = _act_on(run_id, lambda app, rid: app.cancel(rid, reason))
    if as_json:
        print_json({"run_id": full_id, "ok": True, "run": view})
    else:
        say(f"cancelled {full_id}")


def rewind(run_id: str, step: str, as_json: bool = JsonOption) -> None:
    """Run STEP and the steps after it again (nothing is deleted; a worker drives them).

    --json: {"run_id", "step", "ok": true, "run": the run's view after}.
    """

    full_id, view = _act_on(run_id, lambda app, rid: app.rewind(rid, step))
    if as_json:
        print_json({"run_id": full_id, "step": step, "ok": True, "run": view})
    else:
        say(f"rewound {full_id} to {step}: a worker runs it and the steps after it again")


def fork(run_id: str, step: str, as_json: bool = JsonOption) -> None:
    """Start a new run with this run's history up to STEP; print its id.

    --json: {"run_id": the new run, "forked_from": RUN_ID, "step": STEP}.
    """

    async def main() -> tuple[str, str]:
        async with open_app() as app:
            run_id_ = await resolve_run(app, run_id)
            return run_id_, await app.fork(run_id_, step)

    source, new_id = run(main)
    if as_json:
        print_json({"run_id": new_id, "forked_from": source, "step": step})
    else:
        say(new_id)


def manifest(app_target: str | None = AppOption, as_json: bool = JsonOption) -> None:
    """The workflows of --app, or without it every workflow registered with the store:
    kinds, versions, declared steps, fingerprints."""
    definitions = load_definitions(app_target, required=False)
    if definitions:
        entries = [definition.manifest() for definition in definitions]
    else:

        async def main() -> list[dict[str, Any]]:
            async with open_app() as app:
                return await app.workflows()

        entries = run(main)
    if as_json:
        print_json(entries)
    else:
        console.print(format_manifest(entries))
