"""Submitting an enhance run to the embedded Dagster instance and following it (used by the CLI, the
demo and the tests). The run is recorded in the instance, so it shows in the Dagster UI with its partition."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.utils import make_new_run_id

from orchestration.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    MetricsConfig,
    TemporalConfig,
    UpscaleConfig,
    enhance_run_config,
)
from orchestration.definitions import build_definitions
from orchestration.events import error_line, progress_events
from orchestration.resources import DeviceResource, ModelStoreResource
from orchestration.workspace import Workspace, prepare_dagster_home, register_video
from stages.device import validate_device_settings
from stages.errors import SettingsError
from stages.interpolate import rational_fps
from stages.probe import VideoInfo, probe_video
from stages.upscale import output_size

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class EnhanceRequest:
    """One video to enhance and how."""

    input: Path
    output: Path | None = None
    chunk: ChunkPlanConfig = field(default_factory=ChunkPlanConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    interpolate: InterpolateConfig = field(default_factory=InterpolateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    device: str = "auto"
    precision: str = "auto"


@dataclass(frozen=True)
class EnhanceOutcome:
    success: bool
    run_id: str
    partition_key: str
    output: str | None
    report: dict[str, Any] | None
    error: str | None
    seconds: float


def validate_request(request: EnhanceRequest) -> VideoInfo:
    """Check the input and every setting before any work; returns the probe.

    Raises:
        InputError / ProbeError: the input cannot be used. SettingsError: a setting is impossible.
    """
    info = probe_video(request.input)
    settings = request.upscale.to_settings()
    settings.validate()
    output_size(info.width, info.height, settings.scale)
    request.encode.to_settings().validate()
    request.temporal.to_settings().validate()
    request.interpolate.to_settings().validate(rational_fps(info.avg_fps))
    if request.metrics.reference_path:
        probe_video(request.metrics.reference_path)  # a missing or unreadable reference fails here, before any work
    if request.chunk.chunk_seconds <= 0:
        raise SettingsError(f"chunks: --chunk-seconds {request.chunk.chunk_seconds} must be above 0; use 10")
    validate_device_settings(request.device, request.precision)
    if request.output is not None:
        out = request.output.expanduser()
        if out.suffix.lower() not in OUTPUT_SUFFIXES:
            raise SettingsError(f"output: {out.name} must end in {', '.join(OUTPUT_SUFFIXES)}; e.g. {out.stem}.mp4")
        if out.exists() and out.resolve() == request.input.expanduser().resolve():
            raise SettingsError("output: the output path is the input file; choose another name")
        if out.is_dir():
            raise SettingsError(f"output: {out} is a folder; give a file name such as {out / 'result.mp4'}")
    return info


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
    workspace.ensure()
    prepare_dagster_home(workspace)
    record = register_video(workspace, request.input)
    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition("videos", record.key):
        instance.add_dynamic_partitions("videos", [record.key])
    encode = request.encode
    if request.output is not None:
        encode = EncodeConfig(**{**encode.model_dump(), "output_path": str(request.output.expanduser().resolve())})
    defs = build_definitions(
        str(workspace.root),
        model_store=model_store,
        device=DeviceResource(device=request.device, precision=request.precision),
    )
    job = defs.resolve_job_def("enhance_job")
    run_id = make_new_run_id()
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                run_config={
                    **enhance_run_config(request.chunk, request.upscale, encode, request.temporal,
                                        request.interpolate, request.metrics),
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                },
                instance=instance,
                partition_key=record.key,
                run_id=run_id,
                raise_on_error=False,
                tags={"vup/source": record.name, "vup/launched_by": "cli"},
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["exception"] = exc

    thread = threading.Thread(target=execute, name="enhance-run", daemon=True)
    thread.start()
    seen = 0
    while True:
        alive = thread.is_alive()
        if on_event is not None:
            seen = _forward_events(instance, run_id, seen, on_event)
        if not alive:
            break
        thread.join(poll_seconds)
    if "exception" in outcome:
        raise outcome["exception"]
    result = outcome["result"]
    if not result.success:
        return EnhanceOutcome(False, run_id, record.key, None, None, _error_message(result),
                              time.perf_counter() - started)
    report = result.output_for_node("metrics_report")
    encoded = result.output_for_node("encoded_video")
    return EnhanceOutcome(True, run_id, record.key, encoded["path"], report, None, time.perf_counter() - started)


def _forward_events(instance: DagsterInstance, run_id: str, seen: int, on_event: Callable[[dict], None]) -> int:
    events = progress_events(instance, run_id)
    for event, _logged in events[seen:]:
        on_event(event)
    return max(seen, len(events))
