"""``stemlog demo``: the seed's two workflows end to end on the embedded store, and a
third run left waiting, so the debugging commands have something to act on."""

from __future__ import annotations

import shlex
from typing import Any

import anyio
import typer

from stemlog import RunStatus, RunView, WorkflowApp
from stemlog.cli.common import JsonOption, Options, run, stemlog_command
from stemlog.cli.format import format_run, format_timeline, run_json
from stemlog.cli.output import console, print_json, say
from stemlog.examples.approvals import ApprovalDraft, approvals_flow, approvals_ref
from stemlog.examples.billing import retry_script

DECISION = '{"approved_by": "bob"}'
"""What ``approvals.manager`` carries (``ApprovalDecision``), for the printed commands."""


def try_commands(run_id: str, stemlog: str = "stemlog ") -> list[tuple[str, str]]:
    """Commands to try on the run the demo leaves waiting, each with what it does;
    ``stemlog`` starts them (with ``--db`` when the demo did not use the default)."""
    decision = shlex.quote(DECISION)
    return [
        (f"{stemlog}runs", "every run, its status and wait"),
        (f"{stemlog}waiters approvals.manager", "who waits on the manager's decision"),
        (f"{stemlog}show {run_id}", "its status, wait and timeline"),
        (f"{stemlog}emit approvals.manager {decision}", "deliver it to every run waiting"),
        (f"{stemlog}send {run_id} approvals.manager {decision}", "or to this run only"),
        (f"{stemlog}worker stemlog.examples.app:app", "then drive it to the end (Ctrl-C)"),
        (f"{stemlog}cancel {run_id} --reason 'not needed'", "or cancel it instead"),
    ]


async def _until_waiting(app: WorkflowApp, run_id: str, topic: str) -> None:
    # emit only reaches runs already waiting (as in Stem), so look before emitting.
    with anyio.fail_after(10):
        while run_id not in await app.runs_waiting_on(topic):  # noqa: ASYNC110 - a bounded look
            await anyio.sleep(0.01)


async def _view(app: WorkflowApp, run_id: str) -> RunView:
    view = await app.get_run(run_id)
    assert view is not None, "the demo started it"
    return view


async def _seed(app: WorkflowApp, as_json: bool) -> list[str]:
    """Both seed workflows: start, suspend, emit, resume, complete; their ids."""
    approval = await approvals_ref.start(app, ApprovalDraft("doc-42", "Quarterly report"))
    billing = await retry_script.start(app)
    await _until_waiting(app, approval, "approvals.manager")
    await _until_waiting(app, billing, "billing.charge.prepared")
    if not as_json:
        console.print("[bold]Both runs are suspended:[/bold]")
        for view in [await _view(app, approval), await _view(app, billing)]:
            say(f"  {view.workflow} {view.run_id}: {view.status}, waiting on {view.wait_topic}")
    await app.emit("approvals.manager", {"approved_by": "alice"})
    await app.emit("billing.charge.prepared", {"charge_id": "ch_1001"})
    for run_id in (approval, billing):
        await app.wait_for(run_id, timeout=10)
        if not as_json:
            view = await _view(app, run_id)
            console.rule(view.workflow)
            console.print(format_run(view))
            console.print(format_timeline(await app.history(run_id)))
    return [approval, billing]


async def _demo(as_json: bool) -> tuple[list[RunView], str]:
    """The seed's runs, then a third approval left waiting on ``approvals.manager``
    (started after the emits, which would otherwise have reached it too)."""
    async with WorkflowApp.open(Options.db) as app:
        app.register_flows([approvals_flow])
        app.register_scripts([retry_script])
        seeded = await _seed(app, as_json)
        waiting = await approvals_ref.start(app, ApprovalDraft("doc-43", "Travel budget"))
        await _until_waiting(app, waiting, "approvals.manager")
        return [await _view(app, run_id) for run_id in (*seeded, waiting)], waiting


def _print_hints(waiting: RunView) -> None:
    console.rule("left waiting")
    say(f"{waiting.workflow} {waiting.run_id} is suspended, waiting on {waiting.wait_topic}.")
    say("Try:")
    commands = try_commands(waiting.run_id, stemlog_command())
    width = min(max(len(command) for command, _ in commands), 56)  # long ones stick out
    for command, what in commands:
        say(f"  {command.ljust(width)}  # {what}")
    say(f"store: {Options.db}")


def demo(as_json: bool = JsonOption) -> None:
    """Run the seed's approvals flow and billing script (start, suspend, emit, resume,
    complete), then leave a third approvals run waiting and print commands to try on it.

    Exit 1 if a seed run did not complete. --json: {"db", "completed", "runs":
    [views], "waiting": the waiting run's id, "try": [commands]}.
    """
    views, waiting = run(lambda: _demo(as_json))
    completed = all(view.status is RunStatus.COMPLETED for view in views[:2])
    if as_json:
        result: dict[str, Any] = {
            "db": Options.db, "completed": completed, "runs": [run_json(v) for v in views],
            "waiting": waiting, "try": [c for c, _ in try_commands(waiting, stemlog_command())],
        }  # fmt: skip
        print_json(result)
    else:
        _print_hints(views[2])
    if not completed:
        raise typer.Exit(1)
