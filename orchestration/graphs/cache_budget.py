"""The chunk store's size budget, applied when a job ends: a success hook on every asset of the enhance, production and
reframe jobs that acts once the job's last asset succeeded. It releases the run's lease on the store and prunes the
store to its budget, least recently used chunks first (orchestration.resources.core.WorkspaceResource.end_run,
stages/store/cache.py; docs/cache.md). A run that fails is not pruned: its rerun resumes from its chunks."""

from __future__ import annotations

from dagster import HookContext, success_hook

# the asset each job ends with (enhance, production, reframe)
RUN_END_ASSETS = frozenset({"metrics_report", "production_report", "reframed_video"})


@success_hook(name="chunk_budget", required_resource_keys={"workspace"})
def chunk_budget_hook(context: HookContext) -> None:
    """After the job's last asset: release the run's lease and prune the chunk store to its budget."""
    if context.op.name in RUN_END_ASSETS:
        context.resources.workspace.end_run(context.log)
