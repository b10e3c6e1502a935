"""Runs whose worker died: ended by a sensor, so Dagster's run retries start them again.

A run launched by the daemon runs in its own worker process. When that process is killed (kill -9, the OOM
killer, a crash), the run stays STARTED: the embedded instance's default run launcher cannot check worker health,
so run monitoring would only end it at its max runtime. Each run's worker tags the run with its process when its
resources start (``tag_run_process``); ``abandoned_runs_sensor`` then ends every unfinished run whose process is
gone (``runner.reclaim_abandoned_runs``: failed, pool slots freed, temp files of that process removed), and
``run_retries`` in dagster.yaml relaunches it; the relaunch reuses every chunk the dead worker finished.
"""

from __future__ import annotations

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from orchestration.resources import WorkspaceResource

WATCH_SECONDS = 30


@sensor(name="abandoned_runs_sensor", minimum_interval_seconds=WATCH_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Ends enhance runs whose worker process died (so run retries relaunch them) and frees their "
                    "gpu pool slots.")
def abandoned_runs_sensor(context: SensorEvaluationContext, workspace: WorkspaceResource) -> SkipReason:
    from orchestration.runner import reclaim_abandoned_runs

    ended = reclaim_abandoned_runs(context.instance, workspace.workspace())
    if ended:
        return SkipReason(f"ended {len(ended)} run(s) whose worker died: {', '.join(ended)}; run retries relaunch them")
    return SkipReason("no run lost its worker")
