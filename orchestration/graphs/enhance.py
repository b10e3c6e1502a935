"""The per-video asset graph (enhance): probe, chunk plan, decoded chunks, the chain of chunk ops
(orchestration.graphs.chain; today upscale -> interpolate -> cohere), the encode and the report. Each asset is one stage;
values passed between them are small typed records (stages.ops.records.RecordSet), never frames.

Frames live in the workspace's content-addressed chunk store, so a rerun of a partition finds every chunk and skips
decoding and model work, and a changed setting redoes only the chunks whose key it changes.
"""

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from dagster import (
    AssetExecutionContext,
    AssetIn,
    DynamicPartitionsDefinition,
    MetadataValue,
    asset,
)

import orchestration.graphs.enhance_steps  # noqa: F401 - binds the enhance chain's steps
import stages.ops.builtin  # noqa: F401 - registers the built-in chunk ops
from orchestration.graphs.chain import chain_asset
from orchestration.graphs.common import (
    cached_output,
    cached_timestamps,
    decode_chunks,
    deliver_file,
    report_progress,
)
from orchestration.graphs.enhance_steps import ENHANCE_CHAIN
from orchestration.graphs.retries import retry_transient_only
from orchestration.resources.config import ChunkPlanConfig, EncodeConfig, MetricsConfig
from orchestration.resources.core import WorkspaceResource
from orchestration.resources.workspace import lookup_video
from stages.media.chunking import ChunkSpec, decoded_plan, detect_scene_cuts, plan_chunks
from stages.media.codecs import default_suffix
from stages.media.deinterlace import decoded_view, describe_deinterlace
from stages.media.encode import EncodeInput, encode_video
from stages.media.probe import VideoInfo, probe_video
from stages.ops.records import RecordSet
from stages.quality.report import ReportRequest, measure_video, summary_markdown
from stages.store.chunk_store import content_key
from stages.store.fsutil import atomic_write_text, sha256_file
from stages.store.versions import stage_version

videos_partitions = DynamicPartitionsDefinition(name="videos")

GROUP = "enhance"


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def video_probe(context: AssetExecutionContext, workspace: WorkspaceResource) -> dict[str, Any]:
    """The source video's facts: streams, frame count, fps (average and real), VFR flag, pixel format, bit
    depth, colour primaries/transfer/matrix/range, rotation, audio and subtitle streams, interlacing."""
    ws = workspace.workspace()
    video = lookup_video(ws, context.partition_key)
    info = probe_video(video.path)
    for warning in info.warnings:  # a file accepted with something missing (e.g. a few audio packets at the end)
        context.log.warning(warning)
    context.add_output_metadata(
        {
            "source": MetadataValue.path(video.path),
            "resolution": f"{info.width}x{info.height}",
            "frames": info.frame_count,
            "fps": round(info.avg_fps, 3),
            "vfr": info.is_vfr,
            "duration_s": round(info.duration, 3),
            "pix_fmt": info.pix_fmt,
            "sample_aspect": f"{info.sample_aspect_num}:{info.sample_aspect_den}",
            "interlaced": info.interlaced,
            "audio_streams": len(info.audio_streams),
            "subtitle_streams": len(info.subtitle_streams),
        }
    )
    return {"video": asdict(video), "info": info.to_dict()}


def _cached_scene_cuts(cache: Path, path: str, info: VideoInfo) -> list[int]:
    file = cache / f"scenes-v{stage_version('scenes')}.json"
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
    near. Timestamps and scene cuts are cached per source file. The plan is on the timeline of the decoded frames
    (`deinterlace`: field-rate deinterlacing doubles every frame index and pts; stages.media.deinterlace)."""
    ws = workspace.workspace()
    info = VideoInfo.from_dict(video_probe["info"])
    source = video_probe["video"]
    cache = ws.cache / source["sha256"]
    stamps = cached_timestamps(cache, source["path"], info)
    cuts = _cached_scene_cuts(cache, source["path"], info) if config.scene_detection else []
    view = decoded_view(info, config.deinterlace)
    specs, cuts = decoded_plan(plan_chunks(stamps, info.time_base, config.chunk_seconds, cuts), cuts, view)
    if info.interlaced or view.deinterlace != "off":
        context.log.info(f"deinterlace: {describe_deinterlace(view)}")
    context.add_output_metadata(
        {"chunks": len(specs), "scene_cuts": len(cuts), "chunk_seconds": config.chunk_seconds,
         "deinterlace": view.deinterlace}
    )
    return {"chunk_seconds": config.chunk_seconds, "scene_cuts": cuts, "chunks": [asdict(s) for s in specs],
            "deinterlace": view.deinterlace}


@asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"})
@retry_transient_only
def frame_chunks(
    context: AssetExecutionContext, workspace: WorkspaceResource, video_probe: dict[str, Any], chunk_plan: dict[str, Any]
) -> RecordSet:
    """Each chunk decoded once to a lossless intermediate (stages.media.chunkio: FFVHuff RGB, FFV1 16-bit above 8 bits),
    deinterlaced with bwdif as the chunk plan says, stored by content key. Already stored chunks are validated and
    reused."""
    view = decoded_view(VideoInfo.from_dict(video_probe["info"]), chunk_plan.get("deinterlace", "auto"))
    return decode_chunks(context, workspace.workspace(), video_probe["video"], view,
                         [ChunkSpec(**s) for s in chunk_plan["chunks"]])


def _encoded_video(last: str):
    @asset(name="encoded_video", partitions_def=videos_partitions, group_name=GROUP, kinds={"python"},
           ins={"chunks": AssetIn(last), "video_probe": AssetIn("video_probe")})
    @retry_transient_only
    def encoded_video(context: AssetExecutionContext, config: EncodeConfig, workspace: WorkspaceResource,
                      video_probe: dict[str, Any], chunks: RecordSet) -> dict[str, Any]:
        """The final video: chunks joined frame-exactly, encoded (H.264/H.265), with every audio and subtitle
        stream, the colour metadata, rotation and timing of the source. Cached by content key."""
        ws = workspace.workspace()
        info = chunks.output_info(VideoInfo.from_dict(video_probe["info"]))
        source = video_probe["video"]
        settings = config.to_settings()
        settings.validate()
        records = chunks.records
        default_name = f"{Path(source['name']).stem}_enhanced{default_suffix(settings.codec)}"  # .mov for ProRes
        target = (Path(config.output_path).expanduser() if config.output_path
                  else ws.outputs / context.partition_key / default_name)
        key = content_key("encoded", {"chunks": [r.key for r in records], "settings": asdict(settings),
                                      "source": source["sha256"], "suffix": target.suffix.lower(),
                                      "version": stage_version("encode")})
        started = time.perf_counter()

        def encode(path: Path) -> dict[str, Any]:
            ends = np.cumsum([r.frame_count for r in records])
            reported, last_time = [0], [started]

            def progress(done: int, _total: int) -> None:
                # one event each time the encoder has passed the end of a chunk, with that chunk's own seconds
                while reported[0] < len(records) and done >= ends[reported[0]]:
                    index = reported[0]
                    now = time.perf_counter()
                    report_progress(context, "encode", index, len(records), records[index].frame_count, False,
                                    now - last_time[0])
                    last_time[0] = now
                    reported[0] += 1

            encoded = encode_video([EncodeInput(r.path, tuple(r.pts)) for r in records], info, path, settings,
                                   progress=progress)
            return {**asdict(encoded), "seconds": time.perf_counter() - started, "frames_expected": chunks.frames}

        result, reused = cached_output(ws.outputs / ".cache" / key, f"video{target.suffix.lower()}", encode)
        cached = Path(result["cached_path"])
        deliver_file(cached, target)
        if reused:
            report_progress(context, "encode", 0, 1, int(result["frame_count"]), True, time.perf_counter() - started)
        context.add_output_metadata({
            "path": MetadataValue.path(str(target)), "resolution": f"{result['width']}x{result['height']}",
            "frames": int(result["frame_count"]), "duration_s": round(float(result["duration"]), 3),
            "codec": result["codec"], "pix_fmt": result["pix_fmt"], "audio_streams": int(result["audio_streams"]),
            "subtitle_streams": int(result["subtitle_streams"]), "reused": reused,
        })
        return {**result, "path": str(target), "cached_path": str(cached), "reused": reused}

    return encoded_video


def _about(chunks: RecordSet) -> dict[str, Any]:
    """What the chain did, in the report's words."""
    upscale = chunks.step("upscale") or {"model": "none", "plan": "none (x1)", "device": "none",
                                         "precision": "none", "backend": "none"}
    return {**upscale, "temporal": chunks.step("cohere").get("method", "none")}


def _metrics_report(last: str):
    @asset(name="metrics_report", partitions_def=videos_partitions, group_name=GROUP, kinds={"python"},
           ins={"chunks": AssetIn(last), "video_probe": AssetIn("video_probe"),
                "encoded_video": AssetIn("encoded_video")})
    @retry_transient_only
    def metrics_report(context: AssetExecutionContext, config: MetricsConfig, workspace: WorkspaceResource,
                       video_probe: dict[str, Any], chunks: RecordSet,
                       encoded_video: dict[str, Any]) -> dict[str, Any]:
        """Per-frame table (Parquet), per-chunk timings (Parquet) and a summary (JSON): frame counts, model,
        device, precision, timings, and the no-reference flicker score and E_warp of the output next to a lanczos
        upscale of the same source (ratio near 1 = no added flicker); PSNR, SSIM and VMAF against a reference
        video when one is given (stages.quality.report)."""
        ws = workspace.workspace()
        source_info = VideoInfo.from_dict(video_probe["info"])
        sources, finals = chunks.sources, chunks.records
        key = content_key("metrics", {
            "sources": [r.key for r in sources], "finals": [r.key for r in finals], "output": encoded_video["sha256"],
            "version": stage_version("metrics"),
            "reference": sha256_file(config.reference_path) if config.reference_path else None, "vmaf": config.vmaf})
        folder = ws.reports / context.partition_key / key
        summary_file = folder / "summary.json"
        if summary_file.exists():
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
            context.log.info("metrics: report already computed; reused")
        else:
            upscale_seconds = chunks.step("upscale").get("chunk_seconds") or [0.0] * len(sources)
            request = ReportRequest(
                partition=context.partition_key, source_path=video_probe["video"]["path"], source_info=source_info,
                output_info=chunks.output_info(source_info), sources=sources, finals=finals, encoded=encoded_video,
                about=_about(chunks), upscale_seconds=upscale_seconds, retimed=chunks.retimed,
                reference_path=config.reference_path, vmaf=config.vmaf)

            def on_chunk(index: int, total: int, frames: int, seconds: float) -> None:
                report_progress(context, "report", index, total, frames, False, seconds)

            summary = measure_video(request, folder, on_chunk)
        atomic_write_text(ws.reports / context.partition_key / "latest.json",
                          json.dumps(summary, indent=2, default=str))
        flicker = summary["flicker"]
        grade = (summary.get("quality") or {}).get("grade")
        context.add_output_metadata({
            "report": MetadataValue.path(str(folder)), "frames": summary["frames_measured"],
            "flicker_output": flicker["output"], "flicker_lanczos": flicker["lanczos_baseline"],
            "flicker_ratio": flicker["ratio"], "warp_error_output": summary["warp_error"]["output"],
            "warp_error_lanczos": summary["warp_error"]["lanczos_baseline"],
            "grade": grade.get("grade") if isinstance(grade, dict) else None,
            "summary": MetadataValue.md(summary_markdown(summary)),
            **({"plot": MetadataValue.path(summary["files"]["plots"][0])}
               if summary.get("files", {}).get("plots") else {}),
            "frames_table": MetadataValue.path(summary["files"]["frames_parquet"]),
            "upscale_s": round(summary["timings_s"]["upscale"], 2),
        })
        return summary

    return metrics_report


def enhance_assets(chain: Sequence[str] = ENHANCE_CHAIN) -> list:
    """The enhance graph's assets for ``chain`` (op names, in order): one chunk asset per op, fed by the one
    before (the first by ``frame_chunks``); the encode and the report read the last."""
    assets = [video_probe, chunk_plan, frame_chunks]
    upstream = "frame_chunks"
    for name in chain:
        assets.append(chain_asset(name, upstream, partitions_def=videos_partitions, group=GROUP))
        upstream = name
    return [*assets, _encoded_video(upstream), _metrics_report(upstream)]


ENHANCE_ASSETS = enhance_assets()
