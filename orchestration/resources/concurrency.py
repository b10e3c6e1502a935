"""Claims of Dagster concurrency slots (the ``gpu`` pool) made safe between processes on the SQLite instance.

Every run claims the pool's slot for its model steps from its own process: the daemon's run workers and
``vup enhance`` (``execute_in_process`` against the same instance) alike. Dagster's SQL claim first marks the
step as assigned when it counts a free slot, then reads a free slot row and writes the step into it
(``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE ... WHERE id = ?``). SQLite has no row locks, so two
processes that claim at the same moment can both be assigned and both write themselves into the one slot: both
steps run, and the slot row names only the later one. Seen with two ``vup enhance`` runs of one clip (their
``upscale`` steps ran side by side); reproduced with two processes claiming at once (both got the single
slot in 2 trials out of 10).

:func:`serialize_sqlite_claims` makes each claim on a SQLite event log storage hold an exclusive file lock
(``flock``, next to the database: ``<DAGSTER_HOME>/history/runs/.concurrency-claims.lock``) for its few
statements, so claims from different processes happen one after the other. Freeing a slot needs no lock (it
only makes slots free). Other storages (Postgres, MySQL) have real row locks and are left alone.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from stages.store.fsutil import file_lock

log = logging.getLogger(__name__)

LOCK_NAME = ".concurrency-claims.lock"
_MARK = "_vup_claims_serialized"


def serialize_sqlite_claims() -> bool:
    """Wrap ``SqliteEventLogStorage.claim_concurrency_slot`` in a file lock (once per process); False when this
    Dagster has no such method (then nothing is changed)."""
    try:
        from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
            SqliteEventLogStorage,
        )
    except ImportError:  # pragma: no cover - a Dagster without the SQLite storage
        return False
    original = getattr(SqliteEventLogStorage, "claim_concurrency_slot", None)
    if original is None:  # pragma: no cover - a Dagster that renamed it
        log.warning("concurrency: this Dagster has no claim_concurrency_slot; pool claims are not serialized")
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def claim_concurrency_slot(self, concurrency_key, run_id, step_key, priority=None):
        with file_lock(Path(self._base_dir) / LOCK_NAME):
            return original(self, concurrency_key, run_id, step_key, priority)

    setattr(claim_concurrency_slot, _MARK, True)
    SqliteEventLogStorage.claim_concurrency_slot = claim_concurrency_slot
    return True
