"""The quality report of one enhanced video: per-frame flicker and warping error (E_warp) of the output next to a
lanczos upscale of the same source, full-reference figures against a reference video when one is given, a summary
with a grade, and the files (stages.quality.summary.write_report). Orchestration calls :func:`measure_video` and
attaches what it returns; nothing here knows about Dagster."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stages.errors import StageError
from stages.media.aspect import format_ratio
from stages.media.chunking import decode_video_rgb
from stages.media.chunkio import read_frames
from stages.media.deinterlace import describe_deinterlace
from stages.media.probe import VideoInfo, probe_video
from stages.quality.metrics import (
    FLICKER_DEFINITION,
    FlickerMeter,
    VmafUnavailableError,
    WarpErrorMeter,
    flow_with_mask,
    lanczos_luma,
    psnr,
    ssim,
    vmaf,
)
from stages.quality.summary import mean_ignoring_nan, quality_summary, write_report
from stages.store.chunk_store import ChunkRecord

log = logging.getLogger(__name__)

WARP_ERROR_REPORT_DEFINITION = (
    "E_warp(t) = mean over pixels visible in both frames of the squared RGB error (values in [0,1]) between frame t "
    "and frame t-1 warped onto it; flow (DIS) and visibility mask from the low-resolution source pair, scaled up; "
    "frames area-downscaled to a long side of at most 960 px first; for an interpolated output the flow comes "
    "from its own frames. Video score = mean over pairs. Lower = more temporally consistent (blur also lowers it)."
)
_ANALYSIS_LONG_SIDE = 960

# (chunk index, chunks, frames measured in it, seconds): one call per output chunk
OnChunk = Callable[[int, int, int, float], None]


@dataclass(frozen=True)
class ReportRequest:
    """What the report measures: the source chunks and the final chunks (one list each, in order), the source's
    and the output's timing, the encoded file, and what the run did (``about``: model, plan, device, precision,
    backend, temporal method, interpolation, timings)."""

    partition: str
    source_path: str
    source_info: VideoInfo
    output_info: VideoInfo
    sources: Sequence[ChunkRecord]
    finals: Sequence[ChunkRecord]
    encoded: Mapping[str, Any]
    about: Mapping[str, Any]
    upscale_seconds: Sequence[float]
    retimed: bool = False
    reference_path: str | None = None
    vmaf: bool = True


def _analysis_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, _ANALYSIS_LONG_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def measure_video(request: ReportRequest, folder: Path, on_chunk: OnChunk | None = None) -> dict[str, Any]:
    """Measure ``request`` frame by frame, write the report files into ``folder`` and return the summary."""
    info, sources, finals = request.output_info, request.sources, request.finals
    tb = info.time_base
    frame_cols: dict[str, list] = {k: [] for k in ("frame", "chunk", "time_s", "flicker_output", "flicker_lanczos",
                                                     "mean_luma_output", "warp_error_output", "warp_error_lanczos")}
    out_meter, lz_meter = FlickerMeter(), FlickerMeter()
    ew_out, ew_lz = WarpErrorMeter(), WarpErrorMeter()
    lz_values: list[float] = []
    ew_lz_values: list[float] = []
    previous_source: np.ndarray | None = None
    index = 0
    interpolated = request.retimed
    for src, fin in zip(sources, finals, strict=True):
        chunk_started = time.perf_counter()
        frames_before = index
        size = _analysis_size(fin.width, fin.height)

        def baseline(src_frame: np.ndarray, flow_mask: tuple | None = None, fin: ChunkRecord = fin,
                     size: tuple[int, int] = size) -> tuple[float, float]:
            """Flicker and E_warp of the lanczos upscale of one source frame (both meters advance); with
            ``flow_mask`` the E_warp reuses the flow already computed on the source pair."""
            flicker = lz_meter.add_luma(next(lanczos_luma([src_frame], fin.width, fin.height)))
            small = cv2.resize(src_frame, size, interpolation=cv2.INTER_LANCZOS4)
            warp = ew_lz.add(small, source=src_frame) if flow_mask is None else ew_lz.add_with_flow(small, *flow_mask)
            lz_values.append(flicker)
            ew_lz_values.append(warp)
            return flicker, warp

        if interpolated:
            # the output has more frames than the source: the baseline runs over the source frames alone, and the
            # output's E_warp takes its flow from its own frames
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
        if on_chunk is not None:
            on_chunk(fin.index, len(finals), index - frames_before, time.perf_counter() - chunk_started)
    chunk_cols = {
        "chunk": [r.index for r in finals],
        "frames": [r.frame_count for r in finals],
        "extract_s": [r.seconds for r in sources],
        "upscale_s": list(request.upscale_seconds),
    }
    reference_note = _full_reference(request, frame_cols) if request.reference_path else None
    flicker_out = mean_ignoring_nan(frame_cols["flicker_output"])
    flicker_lz = mean_ignoring_nan(lz_values)
    ratio = (flicker_out / flicker_lz) if flicker_out is not None and flicker_lz and not interpolated else None
    ew_output, ew_lanczos = mean_ignoring_nan(frame_cols["warp_error_output"]), mean_ignoring_nan(ew_lz_values)
    source_info, encoded, about = request.source_info, request.encoded, request.about
    summary = {
        "partition": request.partition,
        "source": request.source_path,
        "input": {"width": source_info.width, "height": source_info.height, "frames": source_info.frame_count,
                  "fps": source_info.avg_fps, "duration_s": source_info.duration, "vfr": source_info.is_vfr,
                  "sample_aspect": format_ratio(source_info.sample_aspect),
                  "display_aspect": format_ratio(source_info.display_aspect), "interlaced": source_info.interlaced},
        "geometry": geometry_summary(source_info, finals[0].width, finals[0].height, encoded),
        "deinterlace": {"mode": info.deinterlace, "note": describe_deinterlace(info)},
        "source_warnings": list(source_info.warnings),
        "interpolation": {"method": "yes" if interpolated else "none",
                          "output_fps": info.avg_fps if interpolated else None},
        "temporal": about.get("temporal", "none"),
        "output": {"path": encoded["path"], "width": encoded["width"], "height": encoded["height"],
                   "frames": encoded["frame_count"], "duration_s": encoded["duration"], "codec": encoded["codec"],
                   "sample_aspect": encoded.get("sample_aspect", "1:1")},
        "model": about["model"],
        "plan": about["plan"],
        "model_note": about.get("note"),
        "model_choice": about.get("model_choice"),
        "model_fallback": about.get("model_fallback"),
        "content": about.get("content"),
        "device": about["device"],
        "precision": about["precision"],
        "backend": about.get("backend", "torch"),
        "timings_s": {"extract": sum(chunk_cols["extract_s"]), "upscale": sum(chunk_cols["upscale_s"]),
                      "encode": encoded.get("seconds", 0.0)},
        "flicker": {"output": flicker_out, "lanczos_baseline": flicker_lz, "ratio": ratio,
                    "note": ("output and baseline have different frame rates (interpolated): their flicker "
                             "scores are not comparable, so no ratio") if interpolated else None,
                    "definition": FLICKER_DEFINITION},
        "warp_error": {"output": ew_output, "lanczos_baseline": ew_lanczos,
                       "ratio": (ew_output / ew_lanczos) if ew_output is not None and ew_lanczos else None,
                       "definition": WARP_ERROR_REPORT_DEFINITION},
        "quality": quality_summary({k: v for k, v in frame_cols.items() if k.startswith(("psnr", "ssim", "vmaf"))},
                                   ratio),
        "reference": {"path": request.reference_path, "note": reference_note} if request.reference_path else None,
        "frames_measured": index,
    }
    summary["files"] = asdict(write_report(folder, frame_cols, chunk_cols, summary,
                                           plot_title=f"{Path(request.source_path).name}: per frame"))
    return summary


def geometry_summary(source: VideoInfo, width: int, height: int, encoded: Mapping[str, Any]) -> dict[str, Any]:
    """The pixel geometry of the run, for the report: the source's sample (pixel) aspect ratio, what the encode did
    with it (``carried``: the output stream has the pixel aspect that keeps the source's display aspect;
    ``square pixels``: the frames were resampled; ``none``: square pixels all along), the output's pixel and
    display aspect, and where the figures are measured (the final chunks' grid, before any resampling, which the
    lanczos baseline shares)."""
    out_sar = Fraction(str(encoded.get("sample_aspect", "1:1")).replace(":", "/"))
    out_w, out_h = int(encoded["width"]), int(encoded["height"])
    shown = Fraction(out_w, out_h) * out_sar
    if source.sample_aspect == 1:
        handling = "none"
        note = "square pixels: nothing to carry"
    elif (out_w, out_h) != (width, height):
        handling = "square pixels"
        note = (f"the source's {format_ratio(source.sample_aspect)} pixels were resampled to square pixels: "
                f"{width}x{height} -> {out_w}x{out_h} (display aspect {format_ratio(shown)}); the figures are "
                f"measured on the {width}x{height} grid before the resampling, as is the lanczos baseline")
    else:
        handling = "carried"
        note = (f"the source's pixel aspect {format_ratio(source.sample_aspect)} was carried: {out_w}x{out_h} at "
                f"SAR {format_ratio(out_sar)}, shown as {format_ratio(shown)} like the source; the figures are "
                "measured on that pixel grid, as is the lanczos baseline")
    return {"source_sample_aspect": format_ratio(source.sample_aspect),
            "source_display_aspect": format_ratio(source.display_aspect), "handling": handling,
            "output_sample_aspect": format_ratio(out_sar), "output_display_aspect": format_ratio(shown),
            "measured_at": f"{width}x{height}", "note": note}


def _full_reference(request: ReportRequest, frame_cols: dict[str, list]) -> str | None:
    """PSNR/SSIM (Y and RGB) of every output frame against the matching frame of the user's reference video,
    and VMAF of the encoded output against it; adds per-frame columns; returns a note on what was adjusted."""
    notes = []
    finals = request.finals
    reference = decode_video_rgb(request.reference_path, bit_depth=finals[0].bit_depth)
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
    notes.extend(_reference_geometry(request, width, height))
    if measured < count:
        notes.append(f"the reference has {measured} frames, the output {count}: the last {count - measured} "
                     "output frames have no reference")
    for name, values in columns.items():
        frame_cols[name] = values + [math.nan] * (count - measured)
    if request.vmaf:
        try:
            result = vmaf(request.reference_path, request.encoded["cached_path"])
            frame_cols["vmaf"] = (result.per_frame + [math.nan] * count)[:count]
        except VmafUnavailableError as exc:
            notes.append(str(exc))
    log.info("metrics: full-reference figures against %s (%d frames)", request.reference_path, measured)
    return "; ".join(notes) or None


def _reference_geometry(request: ReportRequest, width: int, height: int) -> list[str]:
    """A note when the reference is not shown with the output's display aspect: compared on the output's pixel grid
    (its frames resized to the final chunks' size), one of them is stretched. A reference of the same display
    aspect, square pixels or not, maps exactly onto that grid."""
    try:
        ref = probe_video(request.reference_path)
    except StageError:
        return []
    output_aspect = request.source_info.display_aspect
    ref_aspect = ref.display_aspect
    if abs(float(ref_aspect / output_aspect) - 1) <= 0.01:
        return []  # same picture shape: resizing it onto the output's grid is exact geometry
    return [f"the reference is shown as {format_ratio(ref_aspect)} ({ref.width}x{ref.height}, SAR "
            f"{format_ratio(ref.sample_aspect)}), the output as {format_ratio(output_aspect)}: compared on the "
            f"output's {width}x{height} grid, one of them is stretched; give a reference of the same display aspect"]


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary's headline figures as a Markdown table."""
    flicker, warp = summary["flicker"], summary["warp_error"]

    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [("frames", summary["frames_measured"]),
            ("flicker output / lanczos / ratio",
             f"{fmt(flicker['output'])} / {fmt(flicker['lanczos_baseline'])} / {fmt(flicker['ratio'])}"),
            ("E_warp output / lanczos / ratio",
             f"{fmt(warp['output'])} / {fmt(warp['lanczos_baseline'])} / {fmt(warp['ratio'])}"),
            ("model", f"{summary['model']} ({summary['plan']})"),
            ("model choice", summary.get("model_choice") or "requested"),
            ("temporal", summary.get("temporal")),
            ("interpolation", summary.get("interpolation")),
            ("pixel aspect", (summary.get("geometry") or {}).get("note", "square pixels")),
            ("deinterlace", (summary.get("deinterlace") or {}).get("note", "not deinterlaced"))]
    return "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
