"""An app module for the CLI: ``stemlog worker stemlog.examples.app:app``.

``app`` is a :class:`WorkflowApp` (not yet open) with the examples registered;
the CLI opens it on the ``--db`` URL.
"""

from __future__ import annotations

import os

from stemlog import WorkflowApp
from stemlog.examples.approvals import approvals_flow
from stemlog.examples.billing import retry_script
from stemlog.examples.loop import batch_script

app = WorkflowApp.open(os.environ.get("STEMLOG_DB", "sqlite:///./stemlog.db"))
app.register_workflows([approvals_flow, retry_script, batch_script])
