"""stemlog's eventsourcing application: one aggregate per run, one log."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Transcoder
from eventsourcing.utils import Environment, EnvType

from stemlog.store.base import partition_name
from stemlog.store.transcoder import OrjsonTranscoder

__all__ = ["RunLog", "partition_name"]


class RunLog(Application[UUID]):
    """One partition of the log of every run's facts (eventsourcing's application
    named after the partition, ``stemlog`` for the first)."""

    name = "stemlog"

    def __init__(self, env: EnvType | None = None, *, name: str = "stemlog") -> None:
        self.name = name
        super().__init__(env)

    log_section_size = 1000
    is_snapshotting_enabled = True
    """Long runs keep snapshots (``stemlog_snapshots``): see :data:`SNAPSHOT_EVERY`."""

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Configured by URL only: never let os.environ leak in (eventsourcing merges it).
        return Environment(name, dict(env or {}))

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()
