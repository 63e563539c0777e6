"""``stemlog demo``: the seed's two workflows end to end on the embedded store."""

from __future__ import annotations

import anyio
import typer

from stemlog import RunStatus, WorkflowApp
from stemlog.cli.common import Options, console, run
from stemlog.cli.format import format_run, format_timeline
from stemlog.examples.approvals import ApprovalDraft, approvals_flow, approvals_ref
from stemlog.examples.billing import retry_script


async def _until_waiting(app: WorkflowApp, run_id: str, topic: str) -> None:
    # emit only reaches runs already waiting (as in Stem), so look before emitting.
    with anyio.fail_after(10):
        while run_id not in await app.runs_waiting_on(topic):  # noqa: ASYNC110 - a bounded look
            await anyio.sleep(0.01)


async def _demo() -> bool:
    async with WorkflowApp.open(Options.db) as app:
        app.register_flows([approvals_flow])
        app.register_scripts([retry_script])
        approval = await approvals_ref.start(app, ApprovalDraft("doc-42", "Quarterly report"))
        billing = await retry_script.start(app)
        await _until_waiting(app, approval, "approvals.manager")
        await _until_waiting(app, billing, "billing.charge.prepared")
        console.print("[bold]Both runs are suspended:[/bold]")
        for run_id in (approval, billing):
            view = await app.get_run(run_id)
            assert view is not None
            console.print(
                f"  {view.workflow} {run_id}: {view.status}, waiting on {view.wait_topic}"
            )
        await app.emit("approvals.manager", {"approved_by": "alice"})
        await app.emit("billing.charge.prepared", {"charge_id": "ch_1001"})
        completed = True
        for run_id in (approval, billing):
            result = await app.wait_for(run_id, timeout=10)
            view = await app.get_run(run_id)
            assert view is not None
            console.rule(f"{view.workflow}")
            console.print(format_run(view))
            console.print(format_timeline(await app.history(run_id)))
            completed = completed and result.status is RunStatus.COMPLETED
        console.print(f"store: {Options.db}")
        return completed


def demo() -> None:
    """Run the seed's approvals flow and billing script: start, suspend, emit, resume, complete."""
    if not run(_demo):
        raise typer.Exit(1)
