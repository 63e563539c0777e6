"""The top-level command group: one line for every usage error, JSON under ``--json``.

Typer prints usage errors as a boxed rich panel over several lines; a script
that reads standard error (or a person grepping it) wants ``error: ...`` on
one line with exit 2, like every other error of the CLI. So the group runs
click in non-standalone mode and reports what it raises itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from stemlog.cli.output import Output, report_error


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options (not after ``--``): known before
    click parses anything, so even a parsing error is reported as JSON."""
    options = args[: list(args).index("--")] if "--" in args else args
    return "--json" in options


def _click_error(error: Exception) -> tuple[str, int] | None:
    """The message and exit code of a click error (a usage error names the help to
    read), or ``None`` for any other exception.

    Recent typers vendor click (``typer._click``), older ones raise click's own
    exceptions: both kinds have ``exit_code`` and ``format_message``, so they
    are recognised by those rather than by a private class.
    """
    code, format_message = getattr(error, "exit_code", None), getattr(error, "format_message", None)
    if not isinstance(code, int) or not callable(format_message):
        return None
    ctx = getattr(error, "ctx", None)
    command_path = getattr(ctx, "command_path", None)
    hint = f" (see '{command_path} --help')" if code == 2 and command_path else ""
    return f"{format_message()}{hint}", code


class OneLineErrors(TyperGroup):
    """A typer group whose ``main`` reports errors in one line (see the module)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        Output.as_json = wants_json(argv)
        code = self._invoke(argv, prog_name, complete_var, windows_expand_args, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _invoke(
        self, argv: list[str], prog_name: str | None, complete_var: str | None,
        windows_expand_args: bool, **extra: Any,
    ) -> int:  # fmt: skip
        """Run the command line; its exit code (the errors already reported)."""
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)  # fmt: skip
        except typer.Abort:
            report_error("aborted", 1, "Abort")
            return 1
        except Exception as error:
            known = _click_error(error)
            if known is None:  # a bug: still one line (the traceback with --verbose)
                logging.getLogger("stemlog.cli").debug("unexpected error", exc_info=True)
                known = (f"unexpected {type(error).__name__}: {error}", 1)
            if type(error).__name__ == "NoArgsIsHelpError":
                # a bare group: its help, as click does (exit 2); typer's rich help
                # is printed while the error is made, leaving its message empty
                if str(error).strip():
                    error.show()  # type: ignore[attr-defined]
            else:
                report_error(known[0], known[1], type(error).__name__)
            return known[1]
        # non-standalone click returns the exit code of a typer.Exit, else the
        # command's return value (None for every stemlog command)
        return result if isinstance(result, int) else 0
