"""The ``stemlog`` command line: tables for people, ``--json`` for scripts.

Exit codes: 0 ok; 1 the thing asked about failed (a run that did not
complete, a replay that diverged, models that differ from a rebuild) or the
store failed the command (unavailable, refusing writes, a worker already
serving the file); 2 bad usage or bad input. Results go to standard output;
progress, hints and errors to standard error, an error always in one line
(``{"error", "type", "exit_code"}`` under ``--json``), never a traceback.
"""
