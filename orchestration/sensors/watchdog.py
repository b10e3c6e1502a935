"""Runs whose process died: ended, with their ``gpu`` pool slots freed, so nothing waits on them forever.

A ``vup enhance`` run executes in the CLI's own process; a run launched by the daemon in its own worker process.
When that process is killed (kill -9, the OOM killer, a crash), the run stays STARTED and keeps its claimed slot
of the ``gpu`` pool, so the next run's model step would wait for that slot forever; the embedded instance's
default run launcher cannot check worker health, so run monitoring would only end it at its max runtime.

Every run is tagged with its process (``process_tags``: pid, host, start time, pid namespace): CLI runs when they
are created, the others when their resources start (``WorkspaceResource.setup_for_execution``).
:func:`reclaim_abandoned_runs` ends every unfinished run whose process is gone (failed, or canceled when it was
canceling), frees its slots and removes the temp files that process left. The CLI calls it before each run, and
``abandoned_runs_sensor`` every 30 s under the daemon, where ``run_retries`` in dagster.yaml then relaunches the
run; the relaunch reuses every chunk the dead process finished.
"""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path
from typing import Any

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.resources.core import WorkspaceResource
from orchestration.resources.process import (
    HOST_TAG,
    PID_NAMESPACE_TAG,
    PID_TAG,
    pid_exists,
    pid_namespace,
    process_gone,
)
from orchestration.resources.workspace import Workspace

log = logging.getLogger(__name__)

WATCH_SECONDS = 30


@sensor(name="abandoned_runs_sensor", minimum_interval_seconds=WATCH_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Ends enhance runs whose worker process died (so run retries relaunch them) and frees their "
                    "gpu pool slots.")
def abandoned_runs_sensor(context: SensorEvaluationContext, workspace: WorkspaceResource) -> SkipReason:
    ended = reclaim_abandoned_runs(context.instance, workspace.workspace())
    if ended:
        return SkipReason(f"ended {len(ended)} run(s) whose worker died: {', '.join(ended)}; run retries relaunch them")
    return SkipReason("no run lost its worker")


_UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.CANCELING]



def reclaim_abandoned_runs(instance: DagsterInstance, workspace: Workspace | None = None) -> list[str]:
    """End the enhance runs that a dead process left unfinished, and free the pool slots they hold.

    A CLI run whose process was killed (kill -9, power loss, the OOM killer) stays STARTED in the instance and
    keeps its claimed slot of the ``gpu`` pool, so the next run's model step would wait for that slot forever.
    For each unfinished run tagged with a process of this host (and pid namespace) that no longer exists, this
    marks the run failed (canceled when it was canceling), frees its slots and deletes the temporary files that
    process left in the workspace (their names carry its pid). Slots still held by runs that have ended are freed
    too. Runs of other hosts (or pid namespaces) and runs without process tags are left alone. Returns the ids of
    the runs it ended.
    """
    host, namespace = socket.gethostname(), pid_namespace()
    reclaimed: list[str] = []
    try:
        records = instance.get_run_records(RunsFilter(job_name="enhance_job", statuses=_UNFINISHED))
    except Exception as exc:  # noqa: BLE001 - never block a new run on this
        log.warning("runs: could not list unfinished runs (%s)", exc)
        return reclaimed
    for record in records:
        run = record.dagster_run
        tags = dict(run.tags)
        if tags.get(HOST_TAG) != host or tags.get(PID_NAMESPACE_TAG, namespace) != namespace \
                or not process_gone(tags):
            continue
        message = (f"runs: the process running this run (pid {tags[PID_TAG]} on {host}) ended without finishing it "
                   "(killed, crashed or out of memory); marked ended by the next run, which reuses its finished "
                   "chunks")
        try:
            if run.status == DagsterRunStatus.CANCELING:
                instance.report_run_canceled(run, message)
            else:
                instance.report_run_failed(run, message)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        except Exception as exc:  # noqa: BLE001 - never block a new run on this
            log.warning("runs: could not end run %s of the ended process (%s)", run.run_id, exc)
            continue
        log.warning("%s (run %s)", message, run.run_id)
        reclaimed.append(run.run_id)
        if workspace is not None:
            _sweep_temp_files(workspace, int(tags[PID_TAG]), _run_output_folder(run.run_config))
    try:
        for run_id in instance.event_log_storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    except Exception as exc:  # noqa: BLE001 - pools may be off (no concurrency config)
        log.debug("runs: could not check pool slots (%s)", exc)
    return reclaimed


def _run_output_folder(run_config: dict[str, Any]) -> Path | None:
    output = (((run_config or {}).get("ops") or {}).get("encoded_video") or {}).get("config", {}).get("output_path")
    return Path(output).parent if output else None


def _sweep_temp_files(workspace: Workspace, pid: int, output_folder: Path | None) -> int:
    """Delete the temporary files and folders a dead process ``pid`` left in the workspace: hidden names with
    ``.<pid>.`` in them (chunk store, encode, atomic writes). Only when no process has that pid now."""
    if pid_exists(pid):
        return 0
    token = f".{pid}."
    folders = [*workspace.chunks.glob("*"), *(workspace.outputs / ".cache").glob("*"), *workspace.cache.glob("*"),
               *workspace.outputs.glob("*"), workspace.root, workspace.videos, *workspace.reports.glob("*/*")]
    if output_folder is not None:
        folders.append(output_folder)
    removed = 0
    for folder in folders:
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") or token not in entry.name:
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except OSError:
                continue
    if removed:
        log.info("runs: removed %d temporary files of the ended process %d", removed, pid)
    return removed
