"""The ``stemlog`` command line: tables for people, ``--json`` for scripts.

Exit codes: 0 ok; 1 the thing asked about failed (a run that did not
complete, a replay that diverged, models that differ from a rebuild); 2 bad
usage or bad input. Errors are one line on standard error, never a traceback.
"""
