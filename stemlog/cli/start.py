"""``stemlog start``: start a run; with ``--wait``, drive it here and follow it."""

from __future__ import annotations

import anyio
import typer

from stemlog import RunStatus, RunView, WorkflowApp
from stemlog.cli.common import AppOption, JsonOption, load_definitions, open_app, parse_json, run
from stemlog.cli.format import format_run, run_json
from stemlog.cli.output import console, fail, note, print_json, say
from stemlog.cli.progress import follow


async def _wait(
    app: WorkflowApp, run_id: str, until_suspended: bool, timeout: float | None
) -> RunView:
    """The run's view when it ends (or suspends), or as it stands when ``timeout`` passes
    (then it has not ended: the caller tells the two apart by its status)."""
    with anyio.move_on_after(timeout):
        return await follow(app, run_id, until_suspended=until_suspended)
    view = await app.get_run(run_id, consistent=True)
    assert view is not None, "the run was started here"
    return view


def _finish(view: RunView, *, as_json: bool, timeout: float | None, suspended_ok: bool) -> None:
    """Print the run's view on stdout and exit 1 unless the wait got what it asked:
    a completed run (or, with ``--until-suspended``, a suspended one) in time."""
    if as_json:
        print_json(run_json(view))
    else:
        console.print(format_run(view))
    if view.status is RunStatus.COMPLETED:
        return
    if view.status is RunStatus.SUSPENDED and suspended_ok:
        return
    if not view.status.is_terminal:
        fail(f"timed out after {timeout:g}s: run {view.run_id} is {view.status}", 1, "TimeoutError")
    note(f"run {view.run_id} {view.status}")
    raise typer.Exit(1)


def start(
    name: str,
    params: str = typer.Option("{}", help="the run's params as a JSON object"),
    wait: bool = typer.Option(
        False, "--wait", help="drive the run here until it ends; its steps go to stderr"
    ),
    until_suspended: bool = typer.Option(
        False, "--until-suspended", help="wait (as --wait) but return when the run suspends"
    ),
    timeout: float | None = typer.Option(None, help="seconds to wait at most (then exit 1)"),
    run_id: str | None = typer.Option(
        None, "--run-id", help="the run's id: a UUID or a key of yours (an idempotent start)"
    ),
    if_exists: str = typer.Option(
        "return", "--if-exists", help="when --run-id exists: 'return' it, or 'fail' (exit 2)"
    ),
    app_target: str | None = AppOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a run of NAME and print its id.

    NAME is found in the store's catalog (the workflows apps registered with it),
    or in --app. With --wait the run's steps go to stderr as they happen and its
    view to stdout when it ends (exit 0 if it completed, else 1); with --app this
    process drives it, else a worker does. A run that suspends is said so on
    stderr, with what it waits on, and still waited for (deliver the event from
    another shell, or --timeout). With --until-suspended the command returns
    (exit 0) as soon as the run suspends.
    """
    if if_exists not in ("return", "fail"):
        fail(f"--if-exists is 'return' or 'fail', got {if_exists!r}")
    values = parse_json(params, "--params")
    if timeout is not None and not timeout > 0:
        fail(f"--timeout takes seconds > 0, got {timeout}")
    following = wait or until_suspended
    started: list[str] = []

    async def main() -> RunView | None:
        definitions = load_definitions(app_target, required=False)
        drive = following and bool(definitions)
        async with open_app(worker=drive, definitions=definitions,
                            create=bool(definitions)) as app:  # fmt: skip
            started.append(
                await app.start(
                    name,
                    values,
                    run_id=run_id,
                    if_exists="fail" if if_exists == "fail" else "return",
                )
            )
            if not following:
                return None
            return await _wait(app, started[0], until_suspended, timeout)

    try:
        view = run(main)
    except KeyboardInterrupt:
        where = f": run {started[0]} goes on without this process" if started else ""
        fail(f"interrupted{where}", 130, "KeyboardInterrupt")
    if view is None:
        print_json({"run_id": started[0], "workflow": name}) if as_json else say(started[0])
    else:
        _finish(view, as_json=as_json, timeout=timeout, suspended_ok=until_suspended)
