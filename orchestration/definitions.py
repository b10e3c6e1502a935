"""Everything Dagster loads, assembled in one place (``dagster dev -m orchestration.definitions``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    in_process_executor,
)

from orchestration.graphs.benchmark import (
    BENCHMARK_ASSETS,
    benchmark_job,
    benchmark_schedule,
)
from orchestration.graphs.cache_budget import chunk_budget_hook
from orchestration.graphs.enhance import ENHANCE_ASSETS, GROUP, enhance_assets
from orchestration.graphs.production import GROUP as PRODUCTION_GROUP
from orchestration.graphs.production import PRODUCTION_ASSETS, PRODUCTION_JOB
from orchestration.graphs.reframe import GROUP as REFRAME_GROUP
from orchestration.graphs.reframe import REFRAME_ASSETS, REFRAME_JOB
from orchestration.launch.console import console_logger
from orchestration.resources.concurrency import serialize_sqlite_claims
from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.resources.io_managers import RunScopedIOManager
from orchestration.resources.workspace import Workspace, default_workspace
from orchestration.sensors.inbox import ENHANCE_JOB, INBOX_SENSORS
from orchestration.sensors.watchdog import abandoned_runs_sensor

# every process that runs enhance_job (run workers, `vup enhance`) imports this module: claims of the gpu pool's
# slot must not race between them on SQLite (see orchestration/resources/concurrency.py)
serialize_sqlite_claims()

enhance_job = define_asset_job(
    ENHANCE_JOB,
    selection=AssetSelection.groups(GROUP),
    description="Probe, chunk, upscale, (interpolate, cohere), encode and report one video (one partition).",
    # The steps form a chain, so nothing would run side by side: one process per run instead of one per step
    # saves the 5-7 s start-up between steps (README, "GPU and several machines"). The `gpu` pool is still enforced.
    executor_def=in_process_executor,
    hooks={chunk_budget_hook},  # when the job ends: the chunk store's size budget (docs/cache.md)
)

production_job = define_asset_job(
    PRODUCTION_JOB,
    selection=AssetSelection.groups(PRODUCTION_GROUP),
    description="Assemble and deliver one production plan (one `plans` partition): image sequences, interpolation, "
    "upscaling, cuts and crossfades, the audio mix, every deliverable, the thumbnail, the contact sheet and "
    "report.json.",
    executor_def=in_process_executor,
    hooks={chunk_budget_hook},  # when the job ends: the chunk store's size budget (docs/cache.md)
)

reframe_job = define_asset_job(
    REFRAME_JOB,
    selection=AssetSelection.groups(REFRAME_GROUP),
    description="Reframe and upscale one video (one `reframes` partition): crop keyframes, native-resolution crop, "
    "AI upscale to the target size, the requested frame rate, H.264 MP4 with the source's audio.",
    executor_def=in_process_executor,
    hooks={chunk_budget_hook},  # when the job ends: the chunk store's size budget (docs/cache.md)
)


def build_definitions(
    workspace_root: str | None = None,
    model_store: ModelStoreResource | None = None,
    device: DeviceResource | None = None,
    chain: Sequence[str] | None = None,
) -> Definitions:
    """Definitions for a workspace (default: ``VUP_WORKSPACE`` or the per-user data directory). ``chain``: the
    enhance graph's op names, in order (default: orchestration.graphs.enhance_steps.ENHANCE_CHAIN)."""
    workspace = Workspace(default_workspace() if workspace_root is None else Path(workspace_root))
    return Definitions(
        assets=[*(ENHANCE_ASSETS if chain is None else enhance_assets(chain)), *PRODUCTION_ASSETS, *REFRAME_ASSETS, *BENCHMARK_ASSETS],
        jobs=[enhance_job, production_job, reframe_job, benchmark_job],
        schedules=[benchmark_schedule],
        sensors=[*INBOX_SENSORS, abandoned_runs_sensor],
        loggers={"console": console_logger},  # one line per record on terminals; the UI keeps the tracebacks
        resources={
            "workspace": WorkspaceResource(root=str(workspace.root)),
            "model_store": model_store or ModelStoreResource(),
            "device": device or DeviceResource(),
            # one copy per run: runs of the same partition at the same time never read each other's values
            "io_manager": RunScopedIOManager(base_dir=str(workspace.io_storage)),
        },
    )


defs = build_definitions()
