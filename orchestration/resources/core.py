"""Dagster resources: the workspace (paths), the model store and the device. Tests swap in their own."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext

from orchestration.resources.process import process_tags
from orchestration.resources.workspace import Workspace, default_workspace
from stages.device import DeviceChoice, choose_device
from stages.models.store import ModelStore


class WorkspaceResource(ConfigurableResource):
    """Where all state lives: chunk store, registered videos, outputs, reports."""

    root: str | None = None

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Tag the run with the process that executes it (see orchestration.sensors.watchdog), unless it has one."""
        run = context.run
        if context.instance is not None and run is not None and "vup/pid" not in run.tags:
            context.instance.add_run_tags(run.run_id, process_tags())

    def workspace(self) -> Workspace:
        return Workspace(Path(self.root) if self.root else default_workspace()).ensure()


class ModelStoreResource(ConfigurableResource):
    """Finds model weights (explicit path, user cache, VUP_MODELS_DIR, a weights package, download)."""

    cache_dir: str | None = None
    models_dir: str | None = None
    allow_download: bool = True

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
