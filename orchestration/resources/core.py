"""Dagster resources: the workspace (paths), the model store and the device. Tests swap in their own."""

from __future__ import annotations

import logging
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from orchestration.resources.process import process_tags
from orchestration.resources.workspace import Workspace, default_workspace
from stages.device import DeviceChoice, choose_device
from stages.models.store import ModelStore
from stages.store.budget import resolve_budget
from stages.store.cache import enforce_budget
from stages.store.leases import RunLease

log = logging.getLogger(__name__)


class WorkspaceResource(ConfigurableResource):
    """Where all state lives: chunk store, registered videos, outputs, reports."""

    root: str | None = None
    _lease: RunLease | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Tag the run with the process that executes it (see orchestration.sensors.watchdog), unless it has one, and
        hold a lease on the chunk store while the run goes on, so pruning leaves its chunks alone (docs/cache.md).
        The lease ends with :meth:`end_run` (the job's last asset succeeded), else when this resource is dropped at
        the end of the run, or with the process."""
        run = context.run
        if context.instance is not None and run is not None and "vup/pid" not in run.tags:
            context.instance.add_run_tags(run.run_id, process_tags())
        if run is not None:
            lease = RunLease(self.workspace().chunks, job=run.job_name, owner=run.tags.get("dagster/partition"),
                             label=run.tags.get("vup/source"))
            try:
                self._lease = lease.acquire()
            except OSError as exc:  # the run can go on: only pruning beside it could take its chunks
                (context.log or log).warning(f"cache: no lease on the chunk store ({exc}); a prune while this run "
                                             "goes on may make it redo chunks")
            else:
                weakref.finalize(self, lease.release)

    def end_run(self, logger: Any = None) -> None:
        """The job's last asset succeeded: release the run's lease, then prune the chunk store to its size budget,
        least recently used chunks first (orchestration/graphs/cache_budget.py). Never raises: the run is done."""
        logger = logger or log
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()
        ws = self.workspace()
        try:
            result = enforce_budget(ws.chunks, resolve_budget(ws.chunks, ws.config_file))
        except Exception as exc:  # noqa: BLE001 - the run is over: a budget that cannot apply must not fail it
            logger.warning(f"cache: the chunk store's size budget was not applied ({exc}); `vup cache info` shows "
                           "the store, `vup cache prune` frees it")
            return
        if result is not None and result.freed_chunks:
            logger.info(f"cache: over its size budget, the chunk store {result.summary()}")

    def workspace(self) -> Workspace:
        ws = Workspace(Path(self.root) if self.root else default_workspace()).ensure()
        return ws if self._lease is None else replace(ws, journal=self._lease.journal)


class ModelStoreResource(ConfigurableResource):
    """Finds model weights (explicit path, user cache, VUP_MODELS_DIR, a weights package, download)."""

    cache_dir: str | None = None
    models_dir: str | None = None
    allow_download: bool | None = None  # None: allowed unless $VUP_OFFLINE is set

    def store(self) -> ModelStore:
        return ModelStore(
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
            models_dir=Path(self.models_dir) if self.models_dir else None,
            allow_download=self.allow_download,
            progress=False,
        )


class DeviceResource(ConfigurableResource):
    """Picks the device and precision once per run (``auto``: CUDA, MPS, XPU, else CPU) and logs why."""

    device: str = "auto"
    precision: str = "auto"

    def choose(self) -> DeviceChoice:
        return choose_device(self.device, self.precision)
