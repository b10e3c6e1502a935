"""The per-video asset graph. Each asset is one stage; values passed between them are small manifests.

Frames never travel through Dagster: they live in the workspace's content-addressed chunk store, so a rerun
of a partition finds every chunk and skips decoding and model work, and a changed setting redoes only the
chunks whose key it changes.
"""


import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from dagster import (
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    MetadataValue,
    asset,
)

from orchestration.chunk_steps import (
    cached_output,
    cached_timestamps,
    deliver_file,
    extract_records,
    interpolate_records,
    progress_reporter,
    report_progress,
    rife_factory,
    upscale_records,
)
from orchestration.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    MetricsConfig,
    TemporalConfig,
    UpscaleConfig,
)
from orchestration.resources import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.retries import retry_transient_only
from orchestration.workspace import lookup_video
from stages.chunk_store import ChunkContent, ChunkRecord, content_key
from stages.chunking import (
    ChunkSpec,
    decode_video_rgb,
    detect_scene_cuts,
    plan_chunks,
)
from stages.chunkio import last_frame, read_frames
from stages.device import host_free_memory
from stages.encode import EncodeInput, encode_video
from stages.fsutil import atomic_write_text, sha256_file
from stages.interpolate import choose_method as choose_interpolation
from stages.interpolate import (
    chunk_output_frames,
    find_duplicates,
    make_interpolator,
    plan_output_frames,
    rational_fps,
    timeline_seconds,
)
from stages.metrics import (
    FLICKER_DEFINITION,
    FlickerMeter,
    VmafUnavailableError,
    WarpErrorMeter,
    flow_with_mask,
    lanczos_luma,
    mean_ignoring_nan,
    psnr,
    quality_summary,
    ssim,
    vmaf,
    write_report,
)
from stages.model_selection import select_model
from stages.ncnn_backend import choose_backend
from stages.probe import VideoInfo, probe_video
from stages.temporal import TEMPORAL_VERSION, TemporalFilter, cohere_chunk
from stages.temporal import choose_method as choose_temporal
from stages.upscale import (
    NO_UPSCALE,
    describe_plan,
    output_size,
    plan_scale,
)

videos_partitions = DynamicPartitionsDefinition(name="videos")

# Bump a version when a stage's code changes the bytes it produces: its chunks are then redone.
# (The upscale loop's UPSCALE_VERSION is in orchestration/chunk_steps.py.)
FRAMES_VERSION = "1"
ENCODE_VERSION = "1"
METRICS_VERSION = "4"
SCENES_VERSION = "1"

GROUP = "enhance"


def _records(manifest: dict[str, Any]) -> list[ChunkRecord]:
    return [ChunkRecord.from_dict(r) for r in manifest["records"]]


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def video_probe(context: AssetExecutionContext, workspace: WorkspaceResource) -> dict[str, Any]:
    """The source video's facts: streams, frame count, fps (average and real), VFR flag, pixel format, bit
    depth, colour primaries/transfer/matrix/range, rotation, audio and subtitle streams, interlacing."""
    ws = workspace.workspace()
    video = lookup_video(ws, context.partition_key)
    info = probe_video(video.path)
    context.add_output_metadata(
        {
            "source": MetadataValue.path(video.path),
            "resolution": f"{info.width}x{info.height}",
            "frames": info.frame_count,
            "fps": round(info.avg_fps, 3),
            "vfr": info.is_vfr,
            "duration_s": round(info.duration, 3),
            "pix_fmt": info.pix_fmt,
            "audio_streams": len(info.audio_streams),
            "subtitle_streams": len(info.subtitle_streams),
        }
    )
    return {"video": asdict(video), "info": info.to_dict()}


def _cached_scene_cuts(cache: Path, path: str, info: VideoInfo) -> list[int]:
    file = cache / f"scenes-v{SCENES_VERSION}.json"
    if file.exists():
        return [int(i) for i in json.loads(file.read_text(encoding="utf-8"))]
    cuts = detect_scene_cuts(path, info)
    atomic_write_text(file, json.dumps(cuts))
    return cuts


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def chunk_plan(
    context: AssetExecutionContext, config: ChunkPlanConfig, workspace: WorkspaceResource, video_probe: dict[str, Any]
) -> dict[str, Any]:
    """Frame-exact chunks of about `chunk_seconds` each, with boundaries moved to a scene cut when one is
    near. Timestamps and scene cuts are cached per source file."""
    ws = workspace.workspace()
    info = VideoInfo.from_dict(video_probe["info"])
    source = video_probe["video"]
    cache = ws.cache / source["sha256"]
    stamps = cached_timestamps(cache, source["path"], info)
    cuts = _cached_scene_cuts(cache, source["path"], info) if config.scene_detection else []
    specs = plan_chunks(stamps, info.time_base, config.chunk_seconds, cuts)
    context.add_output_metadata(
        {"chunks": len(specs), "scene_cuts": len(cuts), "chunk_seconds": config.chunk_seconds}
    )
    return {"chunk_seconds": config.chunk_seconds, "scene_cuts": cuts, "chunks": [asdict(s) for s in specs]}


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def frame_chunks(
    context: AssetExecutionContext, workspace: WorkspaceResource, video_probe: dict[str, Any], chunk_plan: dict[str, Any]
) -> dict[str, Any]:
    """Each chunk decoded once to a lossless intermediate (stages.chunkio: FFVHuff RGB, FFV1 16-bit above 8 bits),
    stored by content key. Already stored chunks are validated and reused."""
    ws = workspace.workspace()
    store = ws.chunk_store()
    info = VideoInfo.from_dict(video_probe["info"])
    source = video_probe["video"]
    specs = [ChunkSpec(**s) for s in chunk_plan["chunks"]]

    def short(spec: ChunkSpec, record: ChunkRecord) -> None:
        context.log.warning(
            f"frames: chunk {spec.index} decoded {record.frame_count} frames, the plan expected "
            f"{spec.frame_count}; the source has undecodable frames"
        )

    records, computed = extract_records(store, source, info, specs, version=FRAMES_VERSION,
                                        on_chunk=progress_reporter(context, "frames"), on_short=short)
    context.add_output_metadata(
        {
            "chunks": len(records),
            "chunks_computed": computed,
            "chunks_reused": len(records) - computed,
            "frames": sum(r.frame_count for r in records),
        }
    )
    return {"records": [r.to_dict() for r in records]}


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"pytorch"}, pool="gpu")
@retry_transient_only
def upscaled_chunks(
    context: AssetExecutionContext,
    config: UpscaleConfig,
    workspace: WorkspaceResource,
    model_store: ModelStoreResource,
    device: DeviceResource,
    video_probe: dict[str, Any],
    frame_chunks: dict[str, Any],
) -> dict[str, Any]:
    """Every chunk upscaled by the AI model (spandrel), tiled with seamless blending, batched, at the
    device's precision, on the PyTorch or the ncnn backend (``--backend``; auto picks the faster here and logs
    why). Runs in the `gpu` pool. Decode, inference and writing overlap (stages.upscale.upscale_chunk); the
    output metadata says how long the model ran and how long it waited on the writer."""
    ws = workspace.workspace()
    store = ws.chunk_store()
    info = VideoInfo.from_dict(video_probe["info"])
    settings = config.to_settings()
    settings.validate()
    output_size(info.width, info.height, settings.scale)
    if settings.scale == NO_UPSCALE:
        context.log.info("upscale: scale 1, no model: the decoded frames pass through")
        records = _records(frame_chunks)
        context.add_output_metadata({"model": "none", "chunks_computed": 0, "chunks_reused": len(records),
                                     "model_calls": 0, "backend": "none"})
        return {"records": [r.to_dict() for r in records], "model": "none", "plan": "none (x1)", "note": None,
                "device": "none", "precision": "none", "backend": "none", "model_calls": 0, "scale": 1}
    selection = select_model(model_store.store(), settings.model, settings.scale, config.model_path)
    if selection.note:
        context.log.warning(selection.note)
    choice = device.choose()
    context.log.info(f"device: {choice.reason}")
    steps = plan_scale(settings.scale, selection.model_scale)
    backend, backend_reason = choose_backend(settings.backend, choice, selection.load().descriptor)
    context.log.info(f"backend: {backend_reason}")
    if backend == "ncnn" and settings.compile:
        context.log.warning("upscale: --compile applies to the torch backend only; ignored for ncnn")
    tally = upscale_records(
        store, _records(frame_chunks), selection=selection, steps=steps, choice=choice, backend=backend,
        settings=settings, ncnn_cache=model_store.store().cache_dir / "ncnn-exports",
        on_chunk=progress_reporter(context, "upscale"),
    )
    records, computed, calls = tally.records, tally.computed, tally.model_calls
    model_seconds, write_wait_seconds = tally.model_seconds, tally.write_wait_seconds
    precision = tally.precision
    context.add_output_metadata(
        {
            "backend": backend,
            "backend_reason": backend_reason,
            "model_seconds": round(model_seconds, 2),
            "waited_on_writer_seconds": round(write_wait_seconds, 2),
            "model": selection.model_id,
            "weights_source": selection.source,
            "plan": describe_plan(steps),
            "device": choice.device,
            "device_reason": choice.reason,
            "precision": precision,
            "chunks_computed": computed,
            "chunks_reused": len(records) - computed,
            "model_calls": calls,
            "resolution": f"{records[0].width}x{records[0].height}" if records else "",
        }
    )
    return {
        "records": [r.to_dict() for r in records],
        "model": selection.model_id,
        "plan": describe_plan(steps),
        "note": selection.note,
        "device": choice.device,
        "precision": precision,
        "backend": backend,
        "model_calls": calls,
        "scale": settings.scale,
    }


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"}, pool="gpu")
@retry_transient_only
def interpolated_chunks(
    context: AssetExecutionContext,
    config: InterpolateConfig,
    workspace: WorkspaceResource,
    model_store: ModelStoreResource,
    device: DeviceResource,
    video_probe: dict[str, Any],
    chunk_plan: dict[str, Any],
    frame_chunks: dict[str, Any],
    upscaled_chunks: dict[str, Any],
) -> dict[str, Any]:
    """New frames between pairs (stages.interpolate) at a factor or a target fps (at most 120), on the source's
    real timestamps (VFR in, constant rate out), never across a scene cut (the nearer frame is repeated), with
    optional duplicate-frame removal. RIFE when its weights are present, else the optical-flow interpolator
    (DIS flow both ways, occlusion-aware splatting); blend and ffmpeg minterpolate are baselines. The last
    pairs of a chunk use the first frame of the next chunk, so joined chunks have no missing or doubled frame.
    Pass-through when interpolation is off."""
    settings = config.to_settings()
    info = VideoInfo.from_dict(video_probe["info"])
    source_fps = rational_fps(info.avg_fps)
    out_fps = settings.validate(source_fps)
    inputs = _records(upscaled_chunks)
    if not settings.enabled or out_fps == source_fps:
        context.add_output_metadata({"method": "none (pass-through)", "chunks": len(inputs),
                                     "source_fps": float(source_fps)})
        return {"records": upscaled_chunks["records"], "method": "none", "interpolated": False}
    ws = workspace.workspace()
    store = ws.chunk_store()
    choice = device.choose()
    rife_present, make_rife = rife_factory(model_store.store(), choice)
    method, reason = choose_interpolation(settings.method, rife_present, choice.kind)
    context.log.info(f"interpolate: {source_fps} fps -> {out_fps} fps; {reason}")
    interpolator = make_interpolator(method, flow_preset=settings.flow_preset, rife_factory=make_rife)
    stamps = cached_timestamps(ws.cache / video_probe["video"]["sha256"], video_probe["video"]["path"], info)
    times, end = timeline_seconds(stamps, info.time_base, info.end_pts, nominal_fps=source_fps)
    chunk_starts = [r.start_frame for r in inputs]
    duplicates: set[int] = set()
    if settings.dedup:
        sources = _records(frame_chunks)
        duplicates = find_duplicates((f for r in sources for f in read_frames(r.path)), settings.dedup_threshold)
        context.log.info(f"interpolate: {len(duplicates)} duplicate frames dropped before interpolation")
    plan = plan_output_frames(times, end, out_fps, chunk_plan.get("scene_cuts", []), duplicates, keep=chunk_starts)
    per_chunk = chunk_output_frames(plan, chunk_starts)
    start_pts = round(Fraction(int(stamps[0])) * info.time_base * out_fps)
    records, computed, synthesized = interpolate_records(
        store, inputs, per_chunk, interpolator, start_pts, params={"method": method, "fps": str(out_fps)},
        on_chunk=progress_reporter(context, "interpolate"),
    )
    context.add_output_metadata({
        "method": method, "reason": reason, "source_fps": float(source_fps), "output_fps": float(out_fps),
        "frames_out": sum(r.frame_count for r in records), "frames_synthesized": synthesized,
        "duplicates_dropped": len(duplicates), "chunks_computed": computed,
        "chunks_reused": len(records) - computed,
    })
    return {"records": [r.to_dict() for r in records], "method": method, "interpolated": True,
            "fps": str(out_fps), "source_fps": str(source_fps), "start_pts": start_pts,
            "end_pts": start_pts + len(plan)}


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def coherent_chunks(
    context: AssetExecutionContext,
    config: TemporalConfig,
    workspace: WorkspaceResource,
    device: DeviceResource,
    chunk_plan: dict[str, Any],
    frame_chunks: dict[str, Any],
    interpolated_chunks: dict[str, Any],
) -> dict[str, Any]:
    """Temporal-coherence pass against flicker (stages.temporal): `flow` warps the previous output onto each
    frame with optical flow from the low-resolution source and blends it where a confidence mask trusts it;
    `ema` is a motion-gated moving average; `none` passes the chunks through. Chunks are processed in order and
    each starts from the previous chunk's last output frame, so the pass is continuous across chunk boundaries;
    a chunk's key includes the previous coherent chunk's key, so a cached chunk is only reused with the same
    history."""
    settings = config.to_settings()
    settings.validate()
    inputs = _records(interpolated_chunks)
    timing = {k: interpolated_chunks[k] for k in _TIMING_KEYS if k in interpolated_chunks}
    if settings.method == "none":
        context.add_output_metadata({"method": "none (pass-through)", "chunks": len(inputs)})
        return {"records": interpolated_chunks["records"], "method": "none", **timing}
    ws = workspace.workspace()
    store = ws.chunk_store()
    first = inputs[0]
    method, reason = choose_temporal(settings.method, device.choose().kind, first.width, first.height,
                                     host_free_memory())
    context.log.info(f"temporal: {reason}")
    resolved = replace(settings, method=method)
    # Low-resolution analysis frames exist when every output frame is a source frame (no interpolation).
    sources = _records(frame_chunks) if not interpolated_chunks.get("interpolated") else None
    cuts = set(chunk_plan.get("scene_cuts", []))
    records: list[ChunkRecord] = []
    computed = 0
    blended: list[float] = []
    for position, upstream in enumerate(inputs):
        lr = sources[position] if sources is not None else None
        previous = records[-1] if records else None
        key = content_key(
            "coherent",
            {"upstream": upstream.key, "lr": lr.key if lr else None, "previous": previous.key if previous else None,
             "settings": asdict(resolved), "version": TEMPORAL_VERSION},
        )
        started = time.perf_counter()

        def produce(tmp: Path, upstream: ChunkRecord = upstream, lr: ChunkRecord | None = lr,
                    previous: ChunkRecord | None = previous, position: int = position) -> ChunkContent:
            if previous is None:
                filt = TemporalFilter(resolved)
            elif lr is not None:
                filt = TemporalFilter.from_state(resolved, last_frame(previous.path),
                                                 last_frame(sources[position - 1].path))
            else:
                filt = TemporalFilter.from_state(resolved, last_frame(previous.path),
                                                 prev_hr=last_frame(inputs[position - 1].path))
            chunk_cuts = ({c - lr.start_frame for c in cuts if lr.start_frame <= c < lr.start_frame + lr.frame_count}
                          if lr is not None else set())
            result = cohere_chunk(upstream.path, lr.path if lr else None, tmp, filt,
                                  cuts_in_chunk=frozenset(chunk_cuts), bit_depth=upstream.bit_depth,
                                  expected_frames=upstream.frame_count)
            blended.append(result.blended_fraction)
            return ChunkContent(result.frame_count, upstream.pts, result.width, result.height, result.bit_depth)

        record, reused = store.get_or_put("coherent", key, produce, index=upstream.index,
                                          start_frame=upstream.start_frame, params={"method": method})
        if not reused:
            computed += 1
        records.append(record)
        report_progress(context, "coherence", upstream.index, len(inputs), record.frame_count, reused,
                         time.perf_counter() - started)
    context.add_output_metadata({
        "method": method, "reason": reason, "chunks_computed": computed, "chunks_reused": len(records) - computed,
        "blended_fraction": round(float(np.mean(blended)), 3) if blended else None,
    })
    return {"records": [r.to_dict() for r in records], "method": method, **timing}


_TIMING_KEYS = ("interpolated", "fps", "source_fps", "start_pts", "end_pts")


def _output_timing(info: VideoInfo, chunks: dict[str, Any]) -> VideoInfo:
    """The source's VideoInfo, retimed to the constant output rate when frames were interpolated (time base
    1/fps, one tick per frame); unchanged otherwise. Audio and subtitles still come from the source."""
    if not chunks.get("interpolated"):
        return info
    fps = Fraction(chunks["fps"])
    frames = sum(r.frame_count for r in _records(chunks))
    return replace(info, time_base_num=fps.denominator, time_base_den=fps.numerator,
                   start_pts=int(chunks["start_pts"]), end_pts=int(chunks["end_pts"]), avg_fps=float(fps),
                   real_fps=float(fps), is_vfr=False, frame_count=frames)


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def encoded_video(
    context: AssetExecutionContext,
    config: EncodeConfig,
    workspace: WorkspaceResource,
    video_probe: dict[str, Any],
    coherent_chunks: dict[str, Any],
) -> dict[str, Any]:
    """The final video: chunks joined frame-exactly, encoded (H.264/H.265), with every audio and subtitle
    stream, the colour metadata, rotation and timing of the source. Cached by content key."""
    ws = workspace.workspace()
    info = _output_timing(VideoInfo.from_dict(video_probe["info"]), coherent_chunks)
    source = video_probe["video"]
    settings = config.to_settings()
    settings.validate()
    records = _records(coherent_chunks)
    default_name = f"{Path(source['name']).stem}_enhanced.mp4"
    target = Path(config.output_path).expanduser() if config.output_path else ws.outputs / context.partition_key / default_name
    key = content_key(
        "encoded",
        {
            "chunks": [r.key for r in records],
            "settings": asdict(settings),
            "source": source["sha256"],
            "suffix": target.suffix.lower(),
            "version": ENCODE_VERSION,
        },
    )
    started = time.perf_counter()

    def encode(path: Path) -> dict[str, Any]:
        total = sum(r.frame_count for r in records)
        ends = np.cumsum([r.frame_count for r in records])
        reported = [0]
        last = [started]

        def progress(done: int, _total: int) -> None:
            # one event each time the encoder has passed the end of a chunk, with that chunk's own seconds
            while reported[0] < len(records) and done >= ends[reported[0]]:
                index = reported[0]
                now = time.perf_counter()
                report_progress(context, "encode", index, len(records), records[index].frame_count, False,
                                 now - last[0])
                last[0] = now
                reported[0] += 1

        encoded = encode_video(
            [EncodeInput(r.path, tuple(r.pts)) for r in records], info, path, settings, progress=progress
        )
        return {**asdict(encoded), "seconds": time.perf_counter() - started, "frames_expected": total}

    result, reused = cached_output(ws.outputs / ".cache" / key, f"video{target.suffix.lower()}", encode)
    cached = Path(result["cached_path"])
    deliver_file(cached, target)
    if reused:
        report_progress(context, "encode", 0, 1, int(result["frame_count"]), True, time.perf_counter() - started)
    context.add_output_metadata(
        {
            "path": MetadataValue.path(str(target)),
            "resolution": f"{result['width']}x{result['height']}",
            "frames": int(result["frame_count"]),
            "duration_s": round(float(result["duration"]), 3),
            "codec": result["codec"],
            "pix_fmt": result["pix_fmt"],
            "audio_streams": int(result["audio_streams"]),
            "subtitle_streams": int(result["subtitle_streams"]),
            "reused": reused,
        }
    )
    return {**result, "path": str(target), "cached_path": str(cached), "reused": reused}


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def metrics_report(
    context: AssetExecutionContext,
    config: MetricsConfig,
    workspace: WorkspaceResource,
    video_probe: dict[str, Any],
    frame_chunks: dict[str, Any],
    upscaled_chunks: dict[str, Any],
    coherent_chunks: dict[str, Any],
    encoded_video: dict[str, Any],
) -> dict[str, Any]:
    """Per-frame table (Parquet), per-chunk timings (Parquet) and a summary (JSON): frame counts, model,
    device, precision, timings, and the no-reference flicker score of the output next to a lanczos upscale
    of the same source (ratio near 1 = no added flicker)."""
    ws = workspace.workspace()
    source_info = VideoInfo.from_dict(video_probe["info"])
    info = _output_timing(source_info, coherent_chunks)
    sources, upscaled, finals = _records(frame_chunks), _records(upscaled_chunks), _records(coherent_chunks)
    key = content_key(
        "metrics",
        {"sources": [r.key for r in sources], "finals": [r.key for r in finals],
         "output": encoded_video["sha256"], "version": METRICS_VERSION,
         "reference": sha256_file(config.reference_path) if config.reference_path else None,
         "vmaf": config.vmaf},
    )
    folder = ws.reports / context.partition_key / key
    summary_file = folder / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        context.log.info("metrics: report already computed; reused")
    else:
        tb = info.time_base
        frame_cols: dict[str, list] = {k: [] for k in ("frame", "chunk", "time_s", "flicker_output",
                                                         "flicker_lanczos", "mean_luma_output")}
        out_meter, lz_meter = FlickerMeter(), FlickerMeter()
        ew_out, ew_lz = WarpErrorMeter(), WarpErrorMeter()
        frame_cols["warp_error_output"], frame_cols["warp_error_lanczos"] = [], []
        lz_values: list[float] = []
        ew_lz_values: list[float] = []
        previous_source: np.ndarray | None = None
        index = 0
        interpolated = bool(coherent_chunks.get("interpolated"))
        for src, fin in zip(sources, finals, strict=True):
            chunk_started = time.perf_counter()
            frames_before = index
            size = _analysis_size(fin.width, fin.height)

            def baseline(src_frame: np.ndarray, flow_mask: tuple | None = None, fin: ChunkRecord = fin,
                         size: tuple[int, int] = size) -> tuple[float, float]:
                """Flicker and E_warp of the lanczos upscale of one source frame (both meters advance); with
                ``flow_mask`` the E_warp reuses the flow already computed on the source pair."""
                flicker = lz_meter.add_luma(next(lanczos_luma([src_frame], fin.width, fin.height)))
                small = _lanczos_small(src_frame, size)
                warp = ew_lz.add(small, source=src_frame) if flow_mask is None else ew_lz.add_with_flow(small, *flow_mask)
                lz_values.append(flicker)
                ew_lz_values.append(warp)
                return flicker, warp

            if interpolated:
                # the output has more frames than the source: the baseline runs over the source frames alone,
                # and the output's E_warp takes its flow from its own frames
                for src_frame in read_frames(src.path):
                    baseline(src_frame)
                source_frames: Iterator[np.ndarray] = iter(())
            else:
                source_frames = read_frames(src.path)  # streamed in step with the output: one frame in memory
            for out_frame, pts in zip(read_frames(fin.path), fin.pts, strict=False):
                src_frame = next(source_frames, None)
                small = cv2.resize(out_frame, size, interpolation=cv2.INTER_AREA) if size != (fin.width, fin.height) \
                    else out_frame
                if src_frame is None:
                    lz_flicker, lz_warp = math.nan, math.nan
                    frame_cols["warp_error_output"].append(ew_out.add(small))
                else:
                    # one DIS flow on the source pair serves the output's and the baseline's E_warp
                    flow_mask = (flow_with_mask(previous_source, src_frame, size=size)
                                 if previous_source is not None else (None, None))
                    lz_flicker, lz_warp = baseline(src_frame, flow_mask)
                    frame_cols["warp_error_output"].append(ew_out.add_with_flow(small, *flow_mask))
                    previous_source = src_frame
                frame_cols["warp_error_lanczos"].append(lz_warp)
                frame_cols["frame"].append(index)
                frame_cols["chunk"].append(fin.index)
                frame_cols["time_s"].append(float((pts - info.start_pts) * tb))
                frame_cols["flicker_output"].append(out_meter.add(out_frame))
                frame_cols["flicker_lanczos"].append(lz_flicker)
                frame_cols["mean_luma_output"].append(out_meter.last_mean_luma)
                index += 1
            report_progress(context, "report", fin.index, len(finals), index - frames_before, False,
                             time.perf_counter() - chunk_started)
        chunk_cols = {
            "chunk": [r.index for r in finals],
            "frames": [r.frame_count for r in finals],
            "extract_s": [r.seconds for r in sources],
            "upscale_s": [r.seconds for r in upscaled],
        }
        reference_note = None
        if config.reference_path:
            reference_note = _full_reference(context, config, finals, frame_cols, encoded_video)
        flicker_out = mean_ignoring_nan(frame_cols["flicker_output"])
        flicker_lz = mean_ignoring_nan(lz_values)
        ratio = (flicker_out / flicker_lz) if flicker_out is not None and flicker_lz and not interpolated else None
        ew_output, ew_lanczos = mean_ignoring_nan(frame_cols["warp_error_output"]), mean_ignoring_nan(ew_lz_values)
        summary = {
            "partition": context.partition_key,
            "source": video_probe["video"]["path"],
            "input": {"width": source_info.width, "height": source_info.height, "frames": source_info.frame_count,
                      "fps": source_info.avg_fps, "duration_s": source_info.duration, "vfr": source_info.is_vfr},
            "interpolation": {"method": coherent_chunks.get("interpolated") and "yes" or "none",
                              "output_fps": float(Fraction(coherent_chunks["fps"])) if coherent_chunks.get("fps")
                              else None},
            "temporal": coherent_chunks.get("method", "none"),
            "output": {"path": encoded_video["path"], "width": encoded_video["width"],
                       "height": encoded_video["height"], "frames": encoded_video["frame_count"],
                       "duration_s": encoded_video["duration"], "codec": encoded_video["codec"]},
            "model": upscaled_chunks["model"],
            "plan": upscaled_chunks["plan"],
            "model_note": upscaled_chunks.get("note"),
            "device": upscaled_chunks["device"],
            "precision": upscaled_chunks["precision"],
            "backend": upscaled_chunks.get("backend", "torch"),
            "timings_s": {"extract": sum(chunk_cols["extract_s"]), "upscale": sum(chunk_cols["upscale_s"]),
                          "encode": encoded_video.get("seconds", 0.0)},
            "flicker": {"output": flicker_out, "lanczos_baseline": flicker_lz,
                        "ratio": ratio,
                      "note": ("output and baseline have different frame rates (interpolated): their flicker "
                               "scores are not comparable, so no ratio") if interpolated else None,
                        "definition": FLICKER_DEFINITION},
            "warp_error": {"output": ew_output, "lanczos_baseline": ew_lanczos,
                           "ratio": (ew_output / ew_lanczos) if ew_output is not None and ew_lanczos else None,
                           "definition": WARP_ERROR_REPORT_DEFINITION},
            "quality": quality_summary({k: v for k, v in frame_cols.items()
                                        if k.startswith(("psnr", "ssim", "vmaf"))}, ratio),
            "reference": {"path": config.reference_path, "note": reference_note} if config.reference_path else None,
            "frames_measured": index,
        }
        summary["files"] = asdict(write_report(folder, frame_cols, chunk_cols, summary,
                                               plot_title=f"{Path(video_probe['video']['path']).name}: per frame"))
    atomic_write_text(ws.reports / context.partition_key / "latest.json", json.dumps(summary, indent=2, default=str))
    flicker = summary["flicker"]
    context.add_output_metadata(
        {
            "report": MetadataValue.path(str(folder)),
            "frames": summary["frames_measured"],
            "flicker_output": flicker["output"],
            "flicker_lanczos": flicker["lanczos_baseline"],
            "flicker_ratio": flicker["ratio"],
            "warp_error_output": summary["warp_error"]["output"],
            "warp_error_lanczos": summary["warp_error"]["lanczos_baseline"],
            "grade": (summary.get("quality") or {}).get("grade", {}).get("grade") if isinstance(
                (summary.get("quality") or {}).get("grade"), dict) else None,
            "summary": MetadataValue.md(_summary_markdown(summary)),
            **({"plot": MetadataValue.path(summary["files"]["plots"][0])}
               if summary.get("files", {}).get("plots") else {}),
            "frames_table": MetadataValue.path(summary["files"]["frames_parquet"]),
            "upscale_s": round(summary["timings_s"]["upscale"], 2),
        }
    )
    return summary


def _full_reference(context: AssetExecutionContext, config: MetricsConfig, finals: list[ChunkRecord],
                    frame_cols: dict[str, list], encoded_video: dict[str, Any]) -> str | None:
    """PSNR/SSIM (Y and RGB) of every output frame against the matching frame of the user's reference video,
    and VMAF of the encoded output against it; adds per-frame columns; returns a note on what was adjusted."""
    notes = []
    reference = decode_video_rgb(config.reference_path, bit_depth=finals[0].bit_depth)
    width, height = finals[0].width, finals[0].height
    count = sum(r.frame_count for r in finals)
    columns: dict[str, list[float]] = {"psnr_y": [], "psnr_rgb": [], "ssim_y": [], "ssim_rgb": []}
    resized = False
    for record in finals:
        for out_frame in read_frames(record.path):
            ref = next(reference, None)
            if ref is None:
                break
            if ref.shape[:2] != (height, width):
                ref = cv2.resize(ref, (width, height), interpolation=cv2.INTER_AREA)
                resized = True
            for channel in ("y", "rgb"):
                columns[f"psnr_{channel}"].append(psnr(ref, out_frame, channel))
                columns[f"ssim_{channel}"].append(ssim(ref, out_frame, channel))
    measured = len(columns["psnr_y"])
    if resized:
        notes.append(f"the reference was resized (area) to {width}x{height}")
    if measured < count:
        notes.append(f"the reference has {measured} frames, the output {count}: the last {count - measured} "
                     "output frames have no reference")
    for name, values in columns.items():
        frame_cols[name] = values + [math.nan] * (count - measured)
    if config.vmaf:
        try:
            result = vmaf(config.reference_path, encoded_video["cached_path"])
            frame_cols["vmaf"] = (result.per_frame + [math.nan] * count)[:count]
        except VmafUnavailableError as exc:
            notes.append(str(exc))
    context.log.info(f"metrics: full-reference figures against {config.reference_path} ({measured} frames)")
    return "; ".join(notes) or None


WARP_ERROR_REPORT_DEFINITION = (
    "E_warp(t) = mean over pixels visible in both frames of the squared RGB error (values in [0,1]) between frame t "
    "and frame t-1 warped onto it; flow (DIS) and visibility mask from the low-resolution source pair, scaled up; "
    "frames area-downscaled to a long side of at most 960 px first; for an interpolated output the flow comes "
    "from its own frames. Video score = mean over pairs. Lower = more temporally consistent (blur also lowers it)."
)
_ANALYSIS_LONG_SIDE = 960


def _analysis_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, _ANALYSIS_LONG_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _lanczos_small(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, size, interpolation=cv2.INTER_LANCZOS4)


def _summary_markdown(summary: dict[str, Any]) -> str:
    flicker, warp = summary["flicker"], summary["warp_error"]

    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [("frames", summary["frames_measured"]),
            ("flicker output / lanczos / ratio",
             f"{fmt(flicker['output'])} / {fmt(flicker['lanczos_baseline'])} / {fmt(flicker['ratio'])}"),
            ("E_warp output / lanczos / ratio",
             f"{fmt(warp['output'])} / {fmt(warp['lanczos_baseline'])} / {fmt(warp['ratio'])}"),
            ("model", f"{summary['model']} ({summary['plan']})"), ("temporal", summary.get("temporal")),
            ("interpolation", summary.get("interpolation"))]
    return "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


ENHANCE_ASSETS = [
    video_probe,
    chunk_plan,
    frame_chunks,
    upscaled_chunks,
    interpolated_chunks,
    coherent_chunks,
    encoded_video,
    metrics_report,
]
