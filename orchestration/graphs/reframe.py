"""The "reframe and upscale" asset graph: one request (a video, crop keyframes, a target) is a ``reframes`` partition.

    reframe_request -> reframe_frames -> retimed_frames -> reframed_chunks -> reframed_video

The source is decoded into the same lossless chunks as the enhance graph (shared through the chunk store), brought
to the requested frame rate at its own resolution (cheaper than after upscaling), then each frame's crop is taken
at native resolution, upscaled by the AI model and resized to the target (stages.ops.reframe.crops), and encoded to H.264
MP4 with the source's audio. Without the model's weights the crop is resized with Lanczos, with a warning.

Keyframes are in the source's stored pixels; a source with non-square pixels (DV at 8:9, QCIF at 128:117) has its
crops' target size chosen from their display aspect (``width * SAR / height``), and the resize to the target gives
square pixels, so the output shows what the crop showed. An interlaced source is deinterlaced (bwdif, one frame per
frame) as it is decoded.
"""

import time
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    MetadataValue,
    asset,
)

from orchestration.graphs.common import (
    cached_timestamps,
    decode_chunks,
    progress_reporter,
    report_progress,
)
from orchestration.graphs.retries import retry_transient_only
from orchestration.launch.events import first_line
from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.resources.workspace import Workspace, lookup_job
from stages.errors import ModelError
from stages.media.aspect import format_ratio
from stages.media.chunking import ChunkSpec, plan_chunks
from stages.media.deinterlace import decoded_view
from stages.media.encode import EncodeInput, EncodeSettings, encode_video
from stages.media.probe import VideoInfo, probe_video
from stages.models.catalog import DEFAULT_UPSCALE_MODEL
from stages.ops.driver import run_op
from stages.ops.interpolate.op import InterpolateOp, choose_interpolator, plan_retime
from stages.ops.interpolate.timing import rational_fps, timeline_seconds
from stages.ops.records import RecordSet, Retiming
from stages.ops.reframe.crops import (
    CropKeyframe,
    describe_target,
    display_aspect,
    model_scale_for,
    parse_keyframes,
    plan_crops,
    target_size,
)
from stages.ops.reframe.op import ReframeOp
from stages.ops.upscale.content import classify_video
from stages.ops.upscale.engine import SUPPORTED_SCALES, UpscaleSettings
from stages.ops.upscale.op import build_upscale_op

reframes_partitions = DynamicPartitionsDefinition(name="reframes")

GROUP = "reframe"
REFRAME_JOB = "reframe_job"
CHUNK_SECONDS = 10.0


def default_output(workspace: Workspace, key: str, video_name: str) -> Path:
    """Where a request without an output path gets its video: ``outputs/reframes/<partition>/<stem>_reframed.mp4``."""
    return workspace.outputs / "reframes" / key / f"{Path(video_name).stem}_reframed.mp4"


@asset(partitions_def=reframes_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def reframe_request(context: AssetExecutionContext, workspace: WorkspaceResource) -> dict[str, Any]:
    """The request checked against the video: its probe, the crop keyframes (inside the frame, sorted, one aspect
    ratio), the target size (from the crop's aspect unless given) and the output rate."""
    ws = workspace.workspace()
    request = lookup_job(ws.reframes, context.partition_key, "reframe request")
    info = probe_video(request["video"]["path"])
    keyframes = parse_keyframes(request["keyframes"], info.width, info.height, info.duration)
    override = tuple(request["target"]) if request.get("target") else None
    shown = display_aspect(keyframes[0], info.sample_aspect)  # the crop as players show it (non-square pixels)
    target = target_size(shown, override)
    fps = rational_fps(request["target_fps"])
    described = describe_target(shown, override)
    if info.sample_aspect != 1:
        described += f" (source pixels {format_ratio(info.sample_aspect)}: the output has square pixels)"
    context.log.info(f"reframe: {len(keyframes)} keyframes, {described}, {float(fps):g} fps")
    context.add_output_metadata({"source": MetadataValue.path(request["video"]["path"]),
                                 "keyframes": len(keyframes), "target": f"{target[0]}x{target[1]}",
                                 "target_fps": float(fps), "easing": request["easing"]})
    return {"request": request, "info": info.to_dict(), "keyframes": [asdict(k) for k in keyframes],
            "target": list(target), "fps": str(fps), "described": described}


@asset(partitions_def=reframes_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def reframe_frames(context: AssetExecutionContext, workspace: WorkspaceResource,
                   reframe_request: dict[str, Any]) -> RecordSet:
    """The source decoded once into lossless chunks of about 10 s (shared with the enhance graph's
    frame_chunks through the chunk store)."""
    ws = workspace.workspace()
    info = VideoInfo.from_dict(reframe_request["info"])
    source = reframe_request["request"]["video"]
    stamps = cached_timestamps(ws.cache / source["sha256"], source["path"], info)
    specs: list[ChunkSpec] = plan_chunks(stamps, info.time_base, CHUNK_SECONDS, [])
    return decode_chunks(context, ws, source, decoded_view(info, "auto"), specs)  # an interlaced source: bwdif


@asset(partitions_def=reframes_partitions, group_name=GROUP, kinds={"python"}, pool="gpu")
@retry_transient_only
def retimed_frames(context: AssetExecutionContext, workspace: WorkspaceResource, model_store: ModelStoreResource,
                   device: DeviceResource, reframe_request: dict[str, Any],
                   reframe_frames: RecordSet) -> dict[str, Any]:
    """The source at the requested frame rate, at its own resolution: frames made between pairs (RIFE when its
    weights are present, else optical flow) or dropped to a lower rate; passed through when the rates match."""
    ws = workspace.workspace()
    info = VideoInfo.from_dict(reframe_request["info"])
    source = reframe_request["request"]["video"]
    out_fps = Fraction(reframe_request["fps"])
    inputs = reframe_frames.records
    source_fps = rational_fps(info.avg_fps)
    stamps = cached_timestamps(ws.cache / source["sha256"], source["path"], info)
    times, end = timeline_seconds(stamps, info.time_base, info.end_pts, nominal_fps=source_fps)
    plan = plan_retime(times, end, out_fps, [r.start_frame for r in inputs])
    if not info.is_vfr and source_fps == out_fps:
        context.add_output_metadata({"method": "none (pass-through)", "fps": float(out_fps)})
        return {"chunks": reframe_frames, "times": [float(t) for t in times], "method": "none", "warnings": []}
    chosen = choose_interpolator(model_store.store(), device.choose())
    context.log.info(f"reframe: {float(source_fps):g} fps -> {float(out_fps):g} fps; {chosen.reason}")
    op = InterpolateOp(chosen.interpolator, plan.per_chunk, 0, params={"method": chosen.method, "fps": str(out_fps)})
    run = run_op(ws.chunk_store(), op, inputs, on_chunk=progress_reporter(context, "interpolate"))
    context.add_output_metadata({"method": chosen.method, "reason": chosen.reason, "frames_out": len(plan.frames),
                                 "frames_synthesized": op.synthesized, "chunks_computed": run.computed})
    warnings = [f"reframe: {chosen.reason}"] if chosen.method != "rife" else []
    retiming = Retiming(out_fps, 0, len(plan.frames))
    return {"chunks": reframe_frames.then("interpolate", run.records, retiming=retiming, method=chosen.method),
            "times": [f.time - float(times[0]) for f in plan.frames], "method": chosen.method, "warnings": warnings}


@asset(partitions_def=reframes_partitions, group_name=GROUP, kinds={"pytorch"}, pool="gpu")
@retry_transient_only
def reframed_chunks(context: AssetExecutionContext, workspace: WorkspaceResource, model_store: ModelStoreResource,
                    device: DeviceResource, reframe_request: dict[str, Any],
                    retimed_frames: dict[str, Any]) -> dict[str, Any]:
    """Each frame's crop (interpolated between keyframes, linear or eased, held after the last) taken at native
    resolution with sub-pixel accuracy, upscaled by the AI model (the smallest of x2/x4/x8 that reaches the
    target) and resized to the target. Without the model's weights: Lanczos, with a warning."""
    ws = workspace.workspace()
    keyframes = [CropKeyframe(**k) for k in reframe_request["keyframes"]]
    target = tuple(reframe_request["target"])
    easing = reframe_request["request"]["easing"]
    inputs = retimed_frames["chunks"].records
    boxes = plan_crops(keyframes, retimed_frames["times"], easing)
    warnings = list(retimed_frames.get("warnings") or [])
    scale = model_scale_for(boxes, target, SUPPORTED_SCALES)
    model_id = reframe_request["request"].get("model") or DEFAULT_UPSCALE_MODEL
    sample_aspect = float(VideoInfo.from_dict(reframe_request["info"]).sample_aspect)
    op = ReframeOp(boxes, target, pixel_aspect=sample_aspect)
    if scale > 1:
        choice = device.choose()
        try:
            source = reframe_request["request"]["video"]
            info = VideoInfo.from_dict(reframe_request["info"])
            chosen = build_upscale_op(model_store.store(), UpscaleSettings(model=model_id, scale=scale), choice,
                                      content=lambda: classify_video(source["path"], info.duration))
        except ModelError as exc:
            warnings.append(f"reframe: no AI upscaling weights ({first_line(exc)}); the crops are "
                            "resized with Lanczos instead")
        else:
            if choice.kind == "cpu":
                warnings.append("reframe: no GPU; the model runs on the CPU (slow)")
            if chosen.decision.fallback:
                warnings.append(chosen.decision.fallback)
            context.log.info(f"reframe: x{scale} with {chosen.selection.model_id} ({chosen.decision.reason}); "
                             f"{chosen.backend_reason}")
            op = ReframeOp(boxes, target, chosen.op.upscale, chosen.op.model_key(), pixel_aspect=sample_aspect)
    for warning in warnings:
        context.log.warning(warning)
    run = run_op(ws.chunk_store(), op, inputs, on_chunk=progress_reporter(context, "reframe"))
    model = op.model_key["model"]
    context.add_output_metadata({"target": f"{target[0]}x{target[1]}", "model": model, "scale": scale,
                                 "chunks_computed": run.computed, "chunks_reused": run.reused})
    return {"chunks": retimed_frames["chunks"].then("reframe", run.records, model=model, scale=scale),
            "model": model, "scale": scale, "warnings": warnings}


@asset(partitions_def=reframes_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def reframed_video(context: AssetExecutionContext, workspace: WorkspaceResource, reframe_request: dict[str, Any],
                   reframed_chunks: dict[str, Any]) -> dict[str, Any]:
    """The reframed video: H.264 MP4 at the target size and frame rate, with the source's audio and subtitles."""
    ws = workspace.workspace()
    info = VideoInfo.from_dict(reframe_request["info"])
    fps = Fraction(reframe_request["fps"])
    records = reframed_chunks["chunks"].records
    frames = sum(r.frame_count for r in records)
    start = round(Fraction(info.start_pts) * info.time_base * fps)
    timing = replace(info, time_base_num=fps.denominator, time_base_den=fps.numerator, start_pts=start,
                     end_pts=start + frames, avg_fps=float(fps), real_fps=float(fps), is_vfr=False,
                     frame_count=frames, sample_aspect_num=1, sample_aspect_den=1)  # resized to square pixels
    request = reframe_request["request"]
    target = Path(request["output"]) if request.get("output") else default_output(ws, context.partition_key,
                                                                                   request["video"]["name"])
    inputs, position = [], start
    for record in records:
        inputs.append(EncodeInput(record.path, tuple(range(position, position + record.frame_count))))
        position += record.frame_count
    started = time.perf_counter()
    result = encode_video(inputs, timing, target, EncodeSettings(codec="h264", crf=18, preset="medium"))
    report_progress(context, "encode", 0, 1, result.frame_count, False, time.perf_counter() - started)
    context.add_output_metadata({"path": MetadataValue.path(str(target)), "size": f"{result.width}x{result.height}",
                                 "frames": result.frame_count, "fps": float(fps), "duration_s": round(result.duration, 3)})
    return {**asdict(result), "fps": str(fps), "warnings": reframed_chunks.get("warnings", []),
            "model": reframed_chunks["model"], "described": reframe_request["described"]}


REFRAME_ASSETS = [reframe_request, reframe_frames, retimed_frames, reframed_chunks, reframed_video]
