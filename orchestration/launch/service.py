"""The page's link to Dagster, with no Gradio in it: submit runs to the Dagster webserver (GraphQL), and read their
progress, logs and results back from the Dagster instance; and the System tab's facts about this machine.

Runs go through the webserver, like a click in the Dagster UI, so they appear there with their partition and the
daemon launches them in their own process (no model runs in the page's process). Runs started elsewhere (CLI,
inbox, Dagster UI) show in :meth:`DagsterService.recent_runs` too, since everything is read from the instance.
The rest of what the page needs lives beside it: uploads (:mod:`orchestration.launch.uploads`), models, output
plans and settings (:mod:`orchestration.launch.options`), progress and ETA estimation
(:mod:`orchestration.launch.eta`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.graphs.retries import limit_tags
from orchestration.launch.eta import _stages_of, estimate_progress, learn_priors
from orchestration.launch.events import error_line, first_line, progress_events
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import (
    ReframeRequest,
    register_reframe,
)
from orchestration.launch.uploads import human_size
from orchestration.resources.workspace import Workspace, register_video
from orchestration.sensors.inbox import (
    ENHANCE_JOB,
    TAG_LAUNCHED_BY,
    TAG_SOURCE,
    run_config_for,
)
from stages.errors import StageError
from stages.media.probe import VideoInfo

log = logging.getLogger(__name__)

TAG_KIND = "vup/kind"
PARTITION_TAG = "dagster/partition"

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
CODE_SERVER_WAIT_S = 30.0
"""How long a submission waits for a code server that is starting (or too busy to answer) before it gives up:
Dagster launched nothing then, so trying again cannot make a second run."""
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


# ------------------------------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: Dagster's status, the share of work done, the stage, times, and its results."""

    run_id: str
    status: str
    fraction: float
    stage: str
    elapsed_s: float
    eta_s: float | None
    output: str | None = None
    report: dict[str, Any] | None = None
    report_dir: str | None = None
    error: str | None = None
    partition: str | None = None
    events: int = 0
    kind: str | None = None
    source: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    partition: str | None
    source: str | None
    launched_by: str | None
    kind: str | None
    started: float | None
    seconds: float | None
    url: str


class DagsterService:
    """Submits runs to a Dagster webserver and reads runs from the instance both use.

    ``webserver_url``: e.g. ``http://127.0.0.1:3000`` (the Dagster UI; also where GraphQL is). ``instance``:
    defaults to ``DagsterInstance.get()`` (``DAGSTER_HOME``), the instance the webserver serves.
    """

    def __init__(self, workspace: Workspace, webserver_url: str, instance: DagsterInstance | None = None) -> None:
        self.workspace = workspace
        self.webserver_url = webserver_url.rstrip("/")
        self._instance = instance
        self._priors: tuple[float, dict[str, float]] | None = None  # (when learned, priors)

    @property
    def instance(self) -> DagsterInstance:
        if self._instance is None:
            self._instance = DagsterInstance.get()
        return self._instance

    def _client(self):
        from dagster_graphql import DagsterGraphQLClient

        url = urlparse(self.webserver_url)
        return DagsterGraphQLClient(url.hostname or "127.0.0.1", port_number=url.port,
                                    use_https=url.scheme == "https", timeout=60, path_prefix=url.path or "")

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url}/runs/{run_id}"

    # -- submit and cancel

    def submit(self, request: EnhanceRequest, *, kind: str = "process", sha256: str | None = None) -> str:
        """Register the input as a ``videos`` partition and submit ``enhance_job`` for it; returns the run id.

        ``sha256``: the input's digest when known (an accepted upload), so a large file is not hashed again.

        Raises:
            StageError: the webserver cannot be reached or refused the run (message says what to do).
        """
        record = register_video(self.workspace, request.input, sha256=sha256)
        run_config = run_config_for(request)
        run_config["resources"] = {"device": {"config": {"device": request.device, "precision": request.precision}}}
        tags = {TAG_SOURCE: record.name, TAG_LAUNCHED_BY: "ui", TAG_KIND: kind, **limit_tags(request.max_runtime_hours)}
        return self._submit(ENHANCE_JOB, "videos", record.key, run_config, tags, "ui")

    def _submit(self, job: str, partitions: str, key: str, run_config: dict[str, Any], tags: dict[str, str],
                who: str) -> str:
        """Add ``key`` to the dynamic partitions ``partitions`` and submit ``job`` for it through the webserver.

        Raises:
            StageError: the webserver cannot be reached or refused the run (``who`` starts the message).
        """
        from dagster_graphql import DagsterGraphQLClientError

        if not self.instance.has_dynamic_partition(partitions, key):
            self.instance.add_dynamic_partitions(partitions, [key])
        deadline = time.monotonic() + CODE_SERVER_WAIT_S
        while True:
            try:
                return self._client().submit_job_execution(job, run_config=run_config,
                                                           tags={PARTITION_TAG: key, **tags})
            except DagsterGraphQLClientError as exc:
                # The code server is (re)starting or too busy to answer: nothing was launched, so wait and retry.
                if "UserCodeUnreachable" in str(exc) and time.monotonic() < deadline:
                    time.sleep(2.0)
                    continue
                raise StageError(f"{who}: Dagster refused the run ({first_line(exc)}); see the webserver's log") \
                    from exc
            except Exception as exc:
                raise StageError(
                    f"{who}: cannot reach the Dagster webserver at {self.webserver_url} ({first_line(exc)}); "
                    "start everything with `vup serve`"
                ) from exc

    def submit_reframe(self, request: ReframeRequest, *, sha256: str | None = None,
                       info: VideoInfo | None = None) -> tuple[str, Path]:
        """Validate and register ``request`` as a ``reframes`` partition and submit ``reframe_job`` for it;
        returns the run id and the path its video will have. ``sha256`` and ``info``: the accepted upload's
        digest and probe, so the file is not read again for them.

        Raises:
            InputError / SettingsError: the video, a keyframe or a setting cannot be used (before any run).
            StageError: the webserver cannot be reached or refused the run.
        """
        from orchestration.graphs.reframe import REFRAME_JOB, default_output

        key = register_reframe(self.workspace, request, sha256=sha256, info=info)
        output = request.output.expanduser().resolve() if request.output else default_output(
            self.workspace, key, request.input.name)
        run_config = {"resources": {"device": {"config": {"device": request.device, "precision": request.precision}}}}
        tags = {TAG_SOURCE: request.input.name, TAG_LAUNCHED_BY: "api", TAG_KIND: "reframe",
                **limit_tags(request.max_runtime_hours)}
        return self._submit(REFRAME_JOB, "reframes", key, run_config, tags, "api"), output

    def known_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is a run of this instance. Anything that is not a plain run id (letters, digits,
        ``-``, ``_``) is refused before it reaches the instance: SQLite event-log storage keeps one database per
        run at ``history/runs/<run_id>.db``, so a run id such as ``../../x`` would open (and create) a file
        outside the instance's folder."""
        return bool(isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id)) and self.instance.has_run(run_id)

    def cancel(self, run_id: str) -> str:
        """Ask Dagster to stop a run (a queued run is dropped, a started one is terminated); returns a message."""
        if not self.known_run(run_id):
            return f"no run {run_id}"
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return f"no run {run_id}"
        if run.status.value in TERMINAL:
            return f"run {run_id[:8]} already ended ({run.status.value.lower()})"
        try:
            self._client().terminate_run(run_id)
        except Exception as exc:  # noqa: BLE001 - reported to the user
            return f"could not cancel run {run_id[:8]}: {first_line(exc)}"
        return f"cancelling run {run_id[:8]}"

    # -- read back

    def progress(self, run_id: str) -> RunProgress:
        """Status, share of work done, stage, elapsed time, ETA and (when finished) the results of a run."""
        record = self.instance.get_run_record_by_id(run_id) if self.known_run(run_id) else None
        if record is None:
            return RunProgress(run_id, "UNKNOWN", 0.0, "", 0.0, None, error=f"no run {run_id}")
        run = record.dagster_run
        status = run.status.value
        stages, ratio, output = _stages_of(run.run_config)
        observations = self._observations(run_id)
        fraction, stage, eta = estimate_progress(observations, stages, ratio, self.priors())
        # elapsed from the submission (queue and start-up included: what the user waited)
        start = record.create_timestamp.timestamp()
        end = record.end_time if status in TERMINAL and record.end_time else time.time()
        elapsed = max(0.0, end - start)
        report = report_dir = error = None
        if status == "SUCCESS":
            fraction, eta, stage = 1.0, 0.0, "done"
            report_dir = self._report_dir(run_id)
            if report_dir:
                try:
                    report = json.loads((Path(report_dir) / "summary.json").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    report = None
            output = (report or {}).get("output", {}).get("path") or output
        elif status == "FAILURE":
            error = self.failure_message(run_id)
            eta = None
        elif status in ("CANCELED", "CANCELING"):
            eta = None
        return RunProgress(run_id, status, fraction, stage, elapsed, eta, output if status == "SUCCESS" else None,
                           report, report_dir, error, run.tags.get(PARTITION_TAG), len(observations),
                           run.tags.get(TAG_KIND), run.tags.get(TAG_SOURCE))

    def priors(self, runs: int = 5, max_age_s: float = 60.0) -> dict[str, float]:
        """Stage cost priors learned from the last ``runs`` successful enhance runs of this instance (this
        machine's own balance of model, encode and report work), refreshed at most every ``max_age_s``."""
        cached = self._priors
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        history = []
        try:
            records = self.instance.get_run_records(
                RunsFilter(job_name=ENHANCE_JOB, statuses=[DagsterRunStatus.SUCCESS]), limit=runs)
            for record in records:
                stages, ratio, _ = _stages_of(record.dagster_run.run_config)
                history.append((self._observations(record.dagster_run.run_id), stages, ratio))
        except Exception as exc:  # noqa: BLE001 - fixed priors then
            log.debug("no run history for the ETA (%s)", exc)
        learned = learn_priors(history)
        self._priors = (time.monotonic(), learned)
        return learned

    def _observations(self, run_id: str) -> list[dict[str, Any]]:
        return [event for event, _logged in progress_events(self.instance, run_id)]

    def _report_dir(self, run_id: str) -> str | None:
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.dagster_event.event_specific_data.materialization
            if materialization.asset_key.path[-1] == "metrics_report" and "report" in materialization.metadata:
                return str(materialization.metadata["report"].value)
        return None

    def failure_message(self, run_id: str) -> str:
        """The first line of the deepest error of the first failed step, else of the run failure."""
        for entry in self.instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE,
                                                              DagsterEventType.RUN_FAILURE}):
            error = getattr(entry.dagster_event.event_specific_data, "error", None)
            if error is not None:
                return error_line(error)
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
            return entry.dagster_event.message or "the run failed"
        return "the run failed; open it in the Dagster UI for its logs"

    def recent_runs(self, limit: int = 20) -> list[RunRow]:
        """The latest ``enhance_job`` runs of the instance, whoever started them."""
        rows = []
        for record in self.instance.get_run_records(RunsFilter(job_name=ENHANCE_JOB), limit=limit):
            run = record.dagster_run
            end = record.end_time
            rows.append(RunRow(
                run.run_id, run.status.value, run.tags.get(PARTITION_TAG), run.tags.get(TAG_SOURCE),
                run.tags.get(TAG_LAUNCHED_BY), run.tags.get(TAG_KIND), record.start_time,
                (end - record.start_time) if end and record.start_time else None, self.run_url(run.run_id)))
        return rows

    def logs(self, run_id: str, limit: int = 400) -> str:
        """The run's log messages (time, level, step, message), oldest first, at most ``limit`` lines; empty for
        an unknown run id."""
        if not self.known_run(run_id):
            return ""
        lines = []
        for entry in self.instance.all_logs(run_id)[-limit:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
            step = entry.step_key or "run"
            message = entry.dagster_event.message if entry.dagster_event else entry.user_message
            level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else str(entry.level)
            lines.append(f"{stamp} {level:7} {step}: {(message or '').strip()}")
        return "\n".join(lines)

    def wait(self, run_id: str, timeout: float = 600.0, poll: float = 1.0) -> RunProgress:
        """Poll until the run ends (or ``timeout`` seconds); returns the last progress."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(run_id)
            if progress.finished or time.monotonic() > deadline:
                return progress
            time.sleep(poll)


# ------------------------------------------------------------------------------------------------ system


def system_info(workspace: Workspace, webserver_url: str) -> list[tuple[str, str]]:
    """(field, value) rows: device, memory, VRAM, CPU, versions, Dagster instance and webserver."""
    from importlib.metadata import PackageNotFoundError, version

    from stages.device import cpu_name, host_free_memory

    rows: list[tuple[str, str]] = []
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info(0)
            rows.append(("device", f"CUDA: {props.name}"))
            rows.append(("VRAM", f"{human_size(free)} free of {human_size(total)}"))
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            rows.append(("device", "Apple MPS"))
        else:
            rows.append(("device", "CPU (no CUDA or MPS GPU found)"))
            rows.append(("VRAM", "none"))
    except Exception as exc:  # noqa: BLE001 - shown, not raised
        rows.append(("device", f"unknown ({first_line(exc)})"))
    total_mem = _total_memory()
    rows.append(("memory", f"{human_size(host_free_memory())} free"
                 + (f" of {human_size(total_mem)}" if total_mem else "")))
    rows.append(("CPU", f"{cpu_name()}, {os.cpu_count()} logical cores"))
    rows.append(("system", f"{platform.system()} {platform.release()}, Python {platform.python_version()}"))
    versions = []
    for package in ("video-upscaler-pro", "torch", "spandrel", "dagster", "gradio", "av"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    rows.append(("versions", ", ".join(versions)))
    rows.append(("workspace", str(workspace.root)))
    rows.append(("chunk cache", _cache_row(workspace)))
    rows.append(("Dagster instance", str(workspace.dagster_home)))
    rows.append(("Dagster UI", webserver_url))
    return rows


def _cache_row(workspace: Workspace) -> str:
    """The chunk store's size and budget, and the command that frees it (docs/cache.md)."""
    from stages.store.budget import resolve_budget
    from stages.store.cache import store_size

    size, chunks = store_size(workspace.chunks)
    try:
        budget = resolve_budget(workspace.chunks, workspace.config_file).describe()
    except StageError as exc:
        budget = f"not applied: {exc}"
    return (f"{human_size(size)} in {chunks} chunks, budget {budget}; `vup cache info` shows it, "
            "`vup cache prune` frees space")


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


__all__ = [
    "DagsterService",
    "RunProgress",
    "RunRow",
    "first_line",
    "system_info",
]
