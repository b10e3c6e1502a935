"""Disk space of an enhance request, checked before any work (``validate.validate_request`` calls it, so the CLI,
the inbox and the page all refuse a job that does not fit, with the numbers).

The estimate is stages.store.diskspace's; this module adds what only the Dagster instance knows: which chunks earlier
runs of the same video with the same settings already stored (a rerun after a full disk, a kill or a cancel needs
space only for the rest). Those shares come from the runs' per-chunk progress events, and are capped by the bytes
really present in each stage's chunk folder (chunks deleted by hand are not counted twice).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestration.graphs.chain import plan_shapes
from orchestration.graphs.enhance_steps import ENHANCE_CHAIN, enhance_run_config
from orchestration.launch.request import EnhanceRequest
from orchestration.resources.workspace import Workspace, default_workspace
from stages.media.deinterlace import decoded_view
from stages.media.probe import VideoInfo
from stages.store.diskspace import (
    JobShape,
    SpaceEstimate,
    StageSize,
    audio_bits_per_second,
    check_disk_space,
    estimate_job_space,
    same_disk,
    sample_bytes_per_pixel,
)

log = logging.getLogger(__name__)

_RECENT_RUNS = 20


def job_shape(request: EnhanceRequest, info: VideoInfo) -> JobShape:
    """The sizes that decide the space ``request`` needs on the source ``info``, each chain step's from the chain
    (orchestration.graphs.chain.plan_shapes). Interpolated frame counts get one frame of margin. Field-rate
    deinterlacing decodes twice the source's frames (stages.media.deinterlace.decoded_view)."""
    decoded = decoded_view(info, request.chunk.deinterlace)
    shapes = plan_shapes(ENHANCE_CHAIN, request.step_configs(), decoded)
    stages = tuple(StageSize(name, shape.frames + (shape.frames != decoded.frame_count), shape.width, shape.height)
                   for name, shape in shapes.items() if name != "frames")
    pix_fmt = request.encode.pix_fmt
    return JobShape(
        width=info.width, height=info.height, frames=decoded.frame_count, bit_depth=info.bit_depth,
        duration=info.duration, stages=stages,
        chunks=max(1, math.ceil(info.duration / request.chunk.chunk_seconds)), crf=request.encode.crf,
        high_bit_depth_output=(info.bit_depth > 8) if pix_fmt is None else ("10le" in pix_fmt or "12le" in pix_fmt),
        audio_bits_per_second=audio_bits_per_second(info.path) if info.audio_streams else 0.0,
    )


def _config_chain(stage: str) -> tuple[str, ...]:
    """The run-config entries that decide the chunks of ``stage``: its own op's and every op's before it."""
    ops = ("chunk_plan", *ENHANCE_CHAIN, "encoded_video")
    if stage == "frames":
        return ops[:1]
    if stage == "encode":
        return ops
    return ops[:ops.index(stage) + 1]


def estimate_request_space(request: EnhanceRequest, info: VideoInfo, workspace: Workspace | None = None
                           ) -> SpaceEstimate:
    """What ``request`` will add to the disks, minus the chunks earlier runs of the same job stored."""
    workspace = workspace or Workspace(default_workspace())
    shape = job_shape(request, info)
    bytes_per_pixel = sample_bytes_per_pixel(info.path, info)
    output = _output_path(request, workspace)
    elsewhere = not same_disk(workspace.root, output.parent)
    full = estimate_job_space(shape, bytes_per_pixel, output_elsewhere=elsewhere)
    done = _done_shares(workspace, request, info, full)
    if not done:
        return full
    return estimate_job_space(shape, bytes_per_pixel, done=done, output_elsewhere=elsewhere)


def check_request_space(request: EnhanceRequest, info: VideoInfo, workspace: Workspace | None = None) -> None:
    """Raise DiskSpaceError (with the numbers and what to do) when ``request`` does not fit on the disk of the
    workspace or of the output."""
    workspace = workspace or Workspace(default_workspace())
    estimate = estimate_request_space(request, info, workspace)
    log.info("disk: estimate for %s: %s", info.path, estimate)
    check_disk_space(estimate, workspace.root, _output_path(request, workspace))


def _output_path(request: EnhanceRequest, workspace: Workspace) -> Path:
    if request.output is not None:
        return Path(request.output).expanduser().absolute()
    return workspace.outputs / "output.mp4"


def _partition_of(workspace: Workspace, source: str) -> str | None:
    """The partition key under which ``source`` (same path, same size) was registered, if it was."""
    path = Path(source).expanduser().resolve()
    try:
        size = path.stat().st_size
        records = sorted(workspace.videos.glob("*.json"))
    except OSError:
        return None
    for file in records:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("path") == str(path) and data.get("size_bytes") == size:
            return str(data.get("key"))
    return None


def _ops(run_config: Mapping[str, Any]) -> dict[str, Any]:
    ops = dict((run_config or {}).get("ops") or {})
    encode = dict((ops.get("encoded_video") or {}).get("config") or {})
    if encode:
        output = encode.pop("output_path", None)  # where the encode goes does not change it, its container does
        encode["suffix"] = Path(output).suffix.lower() if output else ".mp4"
        ops["encoded_video"] = {"config": encode}
    return ops


def _done_shares(workspace: Workspace, request: EnhanceRequest, info: VideoInfo,
                 full: SpaceEstimate) -> dict[str, float]:
    """Share of each stage that earlier runs of this video with the same settings stored (0..1)."""
    partition = _partition_of(workspace, info.path)
    if partition is None or not workspace.dagster_home.is_dir():
        return {}
    try:
        from dagster import DagsterInstance, RunsFilter

        from orchestration.launch.events import progress_events

        encode = request.encode
        if request.output is not None:
            encode = type(encode)(**{**encode.model_dump(), "output_path": str(request.output)})
        wanted = _ops(enhance_run_config(request.chunk, request.upscale, encode, request.temporal,
                                         request.interpolate, request.metrics))
        instance = DagsterInstance.get()
        records = instance.get_run_records(
            RunsFilter(job_name="enhance_job", tags={"dagster/partition": partition}), limit=_RECENT_RUNS)
        seen: dict[str, set[int]] = {}
        totals: dict[str, int] = {}
        for record in records:
            run = record.dagster_run
            ops = _ops(run.run_config)
            matching = {stage for stage in ("frames", *ENHANCE_CHAIN, "encode")
                        if all(ops.get(op) == wanted.get(op) for op in _config_chain(stage))}
            if not matching:
                continue
            for event, _logged in progress_events(instance, run.run_id):
                stage = str(event.get("stage"))
                if stage not in matching:
                    continue
                if stage == "encode" and event.get("reused"):
                    seen.setdefault(stage, set()).update(range(int(event.get("chunks", 1))))
                    totals[stage] = int(event.get("chunks", 1))
                    continue
                seen.setdefault(stage, set()).add(int(event.get("chunk", 0)))
                totals[stage] = max(totals.get(stage, 0), int(event.get("chunks", 1)))
    except Exception as exc:  # noqa: BLE001 - no credit is the safe answer when the instance cannot tell
        log.info("disk: could not read earlier runs (%s); counting every chunk as new", exc)
        return {}
    done: dict[str, float] = {}
    for stage, indices in seen.items():
        share = len(indices) / max(1, totals.get(stage, 1))
        if stage == "encode":
            done[stage] = 1.0 if share >= 1 else 0.0  # a cut encode starts over
            continue
        stored = _folder_bytes(workspace.chunks / stage)
        need = full.chunks.get(stage, 0)
        done[stage] = min(share, stored / need) if need else share
    return done


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.suffix == ".nut"
                   and not entry.name.startswith("."))
    except OSError:
        return 0
