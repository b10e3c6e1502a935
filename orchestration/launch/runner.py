"""Submitting an enhance run to the embedded Dagster instance and following it (used by the CLI, the
demo and the tests). The run is recorded in the instance, so it shows in the Dagster UI with its partition."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.utils import make_new_run_id

from orchestration.definitions import build_definitions
from orchestration.graphs.enhance_steps import enhance_run_config
from orchestration.graphs.retries import (
    MAX_RUNTIME_ENV,
    limit_tags,
    max_runtime_seconds,
)
from orchestration.launch.events import error_line, progress_events
from orchestration.launch.request import EnhanceRequest
from orchestration.resources.config import (
    EncodeConfig,
)
from orchestration.resources.core import DeviceResource, ModelStoreResource
from orchestration.resources.process import process_tags
from orchestration.resources.workspace import (
    Workspace,
    prepare_dagster_home,
    register_job,
    register_video,
)
from orchestration.sensors.watchdog import reclaim_abandoned_runs
from stages.device import validate_device_settings
from stages.errors import DiskFullError, SettingsError
from stages.media.probe import VideoInfo, probe_video
from stages.ops.interpolate.timing import MAX_OUTPUT_FPS, rational_fps
from stages.ops.reframe.crops import EASINGS, display_aspect, parse_keyframes, target_size
from stages.production.plan import ProductionPlan
from stages.store.diskspace import disk_full_message, free_bytes, raise_if_disk_full

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EnhanceOutcome:
    success: bool
    run_id: str
    partition_key: str
    output: str | None
    report: dict[str, Any] | None
    error: str | None
    seconds: float


def _error_message(result: Any) -> str:
    """The first line of the deepest error of the first failed step (our typed errors say what to do)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return error_line(event.step_failure_data.error)
    return "the run failed; open the Dagster UI (vup dev) for its logs"


def run_enhance(
    workspace: Workspace,
    request: EnhanceRequest,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    model_store: ModelStoreResource | None = None,
    poll_seconds: float = 0.5,
    log_level: str = "WARNING",
) -> EnhanceOutcome:
    """Register the input as a `videos` partition and run ``enhance_job`` for it in this process.

    ``on_event`` receives each per-chunk progress event (``stage``, ``chunk``, ``chunks``, ``frames``,
    ``reused``, ``seconds``) while the run goes on.
    """
    started = time.perf_counter()
    record = register_video(workspace.ensure(), request.input)
    instance = prepare_partition(workspace, "videos", record.key)
    encode = request.encode
    if request.output is not None:
        encode = EncodeConfig(**{**encode.model_dump(), "output_path": str(request.output.expanduser().resolve())})
    defs = build_definitions(
        str(workspace.root),
        model_store=model_store,
        device=DeviceResource(device=request.device, precision=request.precision),
    )
    run = execute_partition(
        instance, defs.resolve_job_def("enhance_job"), record.key,
        {**enhance_run_config(request.chunk, request.upscale, encode, request.temporal, request.interpolate,
                              request.metrics),
         "loggers": {"console": {"config": {"log_level": log_level, "skip_errors": True}}}},
        {"vup/source": record.name, "vup/launched_by": "cli", **limit_tags(request.max_runtime_hours)},
        workspace=workspace, on_event=on_event, poll_seconds=poll_seconds,
        limit=max_runtime_seconds(request.max_runtime_hours),
    )
    run_id = run.run_id
    if run.overdue is not None:
        return EnhanceOutcome(False, run_id, record.key, None, None, run.overdue, time.perf_counter() - started)
    result = run.result
    if not result.success:
        return EnhanceOutcome(False, run_id, record.key, None, None, _error_message(result),
                              time.perf_counter() - started)
    report = result.output_for_node("metrics_report")
    encoded = result.output_for_node("encoded_video")
    return EnhanceOutcome(True, run_id, record.key, encoded["path"], report, None, time.perf_counter() - started)


def prepare_partition(workspace: Workspace, partitions: str, key: str) -> DagsterInstance:
    """The workspace's Dagster instance, with runs whose process died reclaimed and ``key`` added to the dynamic
    partitions ``partitions``."""
    try:
        workspace.ensure()
        prepare_dagster_home(workspace)
        instance = DagsterInstance.get()
        reclaim_abandoned_runs(instance, workspace)
        if not instance.has_dynamic_partition(partitions, key):
            instance.add_dynamic_partitions(partitions, [key])
    except Exception as exc:
        _raise_if_disk_full(exc, "the Dagster instance", workspace.dagster_home)
        raise
    return instance


@dataclass(frozen=True)
class PartitionRun:
    """A finished in-process run: its id, Dagster's result, or the message when the max runtime stopped it."""

    run_id: str
    result: Any | None
    overdue: str | None = None


def execute_partition(
    instance: DagsterInstance,
    job: Any,
    partition_key: str,
    run_config: dict[str, Any],
    tags: dict[str, str],
    *,
    workspace: Workspace,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    poll_seconds: float = 0.5,
    limit: float | None = None,
) -> PartitionRun:
    """Run ``job`` for one partition in this process (recorded in ``instance``, so it shows in the Dagster UI),
    forwarding its per-chunk progress events to ``on_event``; a run past ``limit`` seconds is marked failed and
    its slots freed (see :func:`_stop_overdue`)."""
    run_id = make_new_run_id()
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                run_config=run_config, instance=instance, partition_key=partition_key, run_id=run_id,
                raise_on_error=False, tags={**tags, **process_tags()},
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["exception"] = exc

    thread = threading.Thread(target=execute, name=f"{job.name}-run", daemon=True)
    thread.start()
    seen = 0
    while True:
        alive = thread.is_alive()
        if on_event is not None:
            seen = _forward_events(instance, run_id, seen, on_event)
        if not alive:
            break
        if limit is not None and _run_seconds(instance, run_id) > limit:
            return PartitionRun(run_id, None, _stop_overdue(instance, run_id, limit))
        thread.join(poll_seconds)
    if "exception" in outcome:
        _raise_if_disk_full(outcome["exception"], "the run's records", workspace.dagster_home)
        raise outcome["exception"]
    return PartitionRun(run_id, outcome["result"])


def _run_seconds(instance: DagsterInstance, run_id: str) -> float:
    """Seconds since the run started (0 until it has), the clock Dagster's run monitoring uses too."""
    try:
        record = instance.get_run_record_by_id(run_id)
    except Exception:  # noqa: BLE001 - unreadable for now (e.g. a full disk): the run's own thread reports it
        return 0.0
    return time.time() - record.start_time if record is not None and record.start_time else 0.0


def _stop_overdue(instance: DagsterInstance, run_id: str, limit: float) -> str:
    """A run past its max runtime (a hung step): mark it failed and give back its pool slots. Its thread is a
    daemon thread, so it ends with the CLI process; whatever it still writes is atomic and content-keyed."""
    span = f"{limit / 3600:g} h" if limit >= 3600 else f"{limit:g} s"
    message = (f"limits: the run passed its max runtime of {span} and was stopped (a step hung or the "
               f"job is larger than the limit); finished chunks are kept, so rerun to resume, or raise the limit "
               f"with --max-runtime-hours / {MAX_RUNTIME_ENV} (0: no limit)")
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    log.error("%s", message)
    return message


def _forward_events(instance: DagsterInstance, run_id: str, seen: int, on_event: Callable[[dict], None]) -> int:
    events = progress_events(instance, run_id)
    for event, _logged in events[seen:]:
        on_event(event)
    return max(seen, len(events))


def _raise_if_disk_full(exc: BaseException, what: str, where: Path) -> None:
    """Raise a DiskFullError for ``exc`` when the disk is full: ENOSPC anywhere in its chain, or SQLite's vaguer
    "disk I/O error" while less than 1 MB is free there."""
    raise_if_disk_full(exc, what, where)
    if isinstance(exc, Exception) and "disk i/o error" in str(exc).lower():
        try:
            full = free_bytes(where) < 1_000_000
        except OSError:
            full = False
        if full:
            raise DiskFullError(disk_full_message(what, where)) from None


# ---------------------------------------------------------------------------------------------- production plans


@dataclass(frozen=True)
class ProductionOutcome:
    success: bool
    run_id: str
    partition_key: str
    report_path: str | None
    outputs: list[dict[str, Any]]
    error: str | None
    seconds: float


def register_plan(workspace: Workspace, plan: ProductionPlan) -> str:
    """Record a validated plan as a ``plans`` partition (key: hash of the plan); returns the key."""
    return register_job(workspace.plans, plan.to_dict())


def run_production(
    workspace: Workspace,
    plan: ProductionPlan,
    *,
    device: str = "auto",
    precision: str = "auto",
    on_event: Callable[[dict[str, Any]], None] | None = None,
    model_store: ModelStoreResource | None = None,
    max_runtime_hours: float | None = None,
    poll_seconds: float = 0.5,
    log_level: str = "WARNING",
) -> ProductionOutcome:
    """Register ``plan`` as a ``plans`` partition and run ``production_job`` for it in this process; the run's
    ``report.json`` is in the plan's output folder whether it succeeded or not."""
    started = time.perf_counter()
    validate_device_settings(device, precision)
    key = register_plan(workspace.ensure(), plan)
    instance = prepare_partition(workspace, "plans", key)
    defs = build_definitions(str(workspace.root), model_store=model_store,
                             device=DeviceResource(device=device, precision=precision))
    run = execute_partition(
        instance, defs.resolve_job_def("production_job"), key,
        {"loggers": {"console": {"config": {"log_level": log_level, "skip_errors": True}}}},
        {"vup/source": Path(plan.plan_path).name, "vup/launched_by": "cli", **limit_tags(max_runtime_hours)},
        workspace=workspace, on_event=on_event, poll_seconds=poll_seconds, limit=max_runtime_seconds(max_runtime_hours),
    )
    report = Path(plan.output_dir) / "report.json"
    seconds = time.perf_counter() - started
    if run.overdue is not None or not run.result.success:
        error = run.overdue or _error_message(run.result)
        return ProductionOutcome(False, run.run_id, key, str(report) if report.exists() else None, [], error, seconds)
    final = run.result.output_for_node("production_report")
    return ProductionOutcome(True, run.run_id, key, final["report"], final["outputs"], None, seconds)


# ---------------------------------------------------------------------------------------------- reframe requests


@dataclass(frozen=True)
class ReframeRequest:
    """One video to reframe: crop keyframes (JSON text or a list), the output rate, an optional target size
    (else from the crop's aspect), the easing, the output path (else under the workspace) and the model."""

    input: Path
    keyframes: Any
    target_fps: float | str = 30
    target: tuple[int, int] | None = None
    easing: str = "linear"
    output: Path | None = None
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    max_runtime_hours: float | None = None


@dataclass(frozen=True)
class ReframeOutcome:
    success: bool
    run_id: str
    partition_key: str
    output: str | None
    result: dict[str, Any] | None
    error: str | None
    seconds: float


def validate_reframe(request: ReframeRequest, info: VideoInfo | None = None
                     ) -> tuple[VideoInfo, list[Any], tuple[int, int], Fraction]:
    """Check the video, keyframes, target, rate and output before any work; returns the probe, the parsed
    keyframes, the target size and the exact rate. ``info``: the video's probe when the caller has it (a probe
    reads every packet of the file).

    Raises:
        InputError / ProbeError: the video cannot be used. SettingsError: a keyframe, the target, the rate,
        the easing or the output is impossible (the message says which and what to do).
    """
    info = info or probe_video(request.input)
    keyframes = parse_keyframes(request.keyframes, info.width, info.height, info.duration)
    target = target_size(display_aspect(keyframes[0], info.sample_aspect), request.target)  # as shown (SAR)
    if request.easing not in EASINGS:
        raise SettingsError(f"reframe: easing {request.easing!r} is not one of {', '.join(EASINGS)}")
    try:
        fps = rational_fps(request.target_fps)
    except (ValueError, ZeroDivisionError, ArithmeticError) as exc:
        raise SettingsError(f"reframe: target fps {request.target_fps!r} is not a frame rate; use e.g. 30") from exc
    if not 1 <= fps <= MAX_OUTPUT_FPS:
        raise SettingsError(f"reframe: target fps {float(fps):g} is outside 1-120; use e.g. 30")
    validate_device_settings(request.device, request.precision)
    max_runtime_seconds(request.max_runtime_hours)
    if request.output is not None:
        out = request.output.expanduser()
        if out.suffix.lower() != ".mp4":
            raise SettingsError(f"output: {out.name} must end in .mp4 (the reframe is H.264 MP4); e.g. {out.stem}.mp4")
        if out.is_dir():
            raise SettingsError(f"output: {out} is a folder; give a file name such as {out / 'reframed.mp4'}")
        if out.exists() and out.resolve() == request.input.expanduser().resolve():
            raise SettingsError("output: the output path is the input file; choose another name")
    return info, list(keyframes), target, fps


def register_reframe(workspace: Workspace, request: ReframeRequest, *, sha256: str | None = None,
                     info: VideoInfo | None = None) -> str:
    """Validate ``request`` (``info``: its video's probe when known), register its video and record it as a
    ``reframes`` partition; returns the key."""
    _info, keyframes, target, fps = validate_reframe(request, info)
    record = register_video(workspace.ensure(), request.input, sha256=sha256)
    content = {
        "video": asdict(record),
        "keyframes": [asdict(k) for k in keyframes],
        "target": list(request.target) if request.target else None,
        "target_fps": str(fps),
        "easing": request.easing,
        "output": str(request.output.expanduser().resolve()) if request.output else None,
        "model": request.model,
        "resolved_target": list(target),
    }
    return register_job(workspace.reframes, content)


def run_reframe(
    workspace: Workspace,
    request: ReframeRequest,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    model_store: ModelStoreResource | None = None,
    poll_seconds: float = 0.5,
    log_level: str = "WARNING",
    info: VideoInfo | None = None,
) -> ReframeOutcome:
    """Register ``request`` as a ``reframes`` partition and run ``reframe_job`` for it in this process (``info``:
    the video's probe, when the caller has already validated the request)."""
    started = time.perf_counter()
    key = register_reframe(workspace, request, info=info)
    instance = prepare_partition(workspace, "reframes", key)
    defs = build_definitions(str(workspace.root), model_store=model_store,
                             device=DeviceResource(device=request.device, precision=request.precision))
    run = execute_partition(
        instance, defs.resolve_job_def("reframe_job"), key,
        {"loggers": {"console": {"config": {"log_level": log_level, "skip_errors": True}}}},
        {"vup/source": request.input.name, "vup/launched_by": "cli", **limit_tags(request.max_runtime_hours)},
        workspace=workspace, on_event=on_event, poll_seconds=poll_seconds,
        limit=max_runtime_seconds(request.max_runtime_hours),
    )
    seconds = time.perf_counter() - started
    if run.overdue is not None or not run.result.success:
        return ReframeOutcome(False, run.run_id, key, None, None, run.overdue or _error_message(run.result), seconds)
    result = run.result.output_for_node("reframed_video")
    return ReframeOutcome(True, run.run_id, key, result["path"], result, None, seconds)
