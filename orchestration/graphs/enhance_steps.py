"""The bindings of the enhance chain's ops (orchestration.graphs.chain): upscale, interpolate and cohere, each built from
its run config and the run's resources, with what it reports."""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
from dagster import Config

from orchestration.graphs.chain import (
    ChainStep,
    FrameShape,
    StepInputs,
    StepPlan,
    chain_step,
    register_step,
)
from orchestration.graphs.common import cached_timestamps, download_logger
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    MetricsConfig,
    TemporalConfig,
    UpscaleConfig,
)
from stages.device import host_free_memory
from stages.media.chunkio import read_frames
from stages.media.probe import VideoInfo
from stages.ops.cohere.op import CohereOp
from stages.ops.cohere.temporal import choose_method as choose_temporal
from stages.ops.driver import OpRun
from stages.ops.interpolate.op import InterpolateOp, choose_interpolator, plan_retime
from stages.ops.interpolate.timing import (
    find_duplicates,
    rational_fps,
    timeline_seconds,
)
from stages.ops.records import Retiming
from stages.ops.upscale.content import classify_video
from stages.ops.upscale.engine import NO_UPSCALE, output_size
from stages.ops.upscale.op import build_upscale_op


def _prepare_upscale(s: StepInputs) -> StepPlan:
    config: UpscaleConfig = s.config
    settings = config.to_settings()
    settings.validate()
    output_size(s.info.width, s.info.height, settings.scale)
    if settings.scale == NO_UPSCALE:
        s.context.log.info("upscale: scale 1, no model: the decoded frames pass through")
        return StepPlan(None, {"model": "none", "plan": "none (x1)", "note": None, "device": "none",
                               "precision": "none", "backend": "none", "model_calls": 0, "scale": 1})
    choice = s.device.choose()
    s.context.log.info(f"device: {choice.reason}")
    video_path, duration = s.video["path"], s.info.duration
    store = s.model_store.store()
    store.on_download = download_logger(s.context)
    chosen = build_upscale_op(store, settings, choice, model_path=config.model_path,
                              content=lambda: classify_video(video_path, duration))
    s.context.log.info(f"model: {chosen.decision.reason}")
    if chosen.decision.fallback:
        s.context.log.warning(chosen.decision.fallback)
    if chosen.selection.note:
        s.context.log.warning(chosen.selection.note)
    s.context.log.info(f"backend: {chosen.backend_reason}")
    if chosen.backend == "ncnn" and settings.compile:
        s.context.log.warning("upscale: --compile applies to the torch backend only; ignored for ncnn")
    return StepPlan(chosen.op, finish=lambda _run: chosen.op.describe())


def _upscale_shape(config: UpscaleConfig, shape: FrameShape, _info: VideoInfo) -> FrameShape | None:
    if config.scale == NO_UPSCALE:
        return None
    return FrameShape(shape.frames, *output_size(shape.width, shape.height, config.scale))


def _prepare_interpolate(s: StepInputs) -> StepPlan:
    settings = s.config.to_settings()
    info = s.info
    source_fps = rational_fps(info.avg_fps)
    out_fps = settings.validate(source_fps)
    if not settings.enabled or out_fps == source_fps:
        return StepPlan(None, {"method": "none (pass-through)", "source_fps": float(source_fps)})
    choice = s.device.choose()
    chosen = choose_interpolator(s.model_store.store(), choice, settings.method, flow_preset=settings.flow_preset)
    s.context.log.info(f"interpolate: {source_fps} fps -> {out_fps} fps; {chosen.reason}")
    stamps = cached_timestamps(s.workspace.cache / s.video["sha256"], s.video["path"], info)
    times, end = timeline_seconds(stamps, info.time_base, info.end_pts, nominal_fps=source_fps)
    inputs = s.upstream.records
    duplicates: set[int] = set()
    if settings.dedup:
        duplicates = find_duplicates((f for r in s.upstream.sources for f in read_frames(r.path)),
                                     settings.dedup_threshold)
        s.context.log.info(f"interpolate: {len(duplicates)} duplicate frames dropped before interpolation")
    plan = plan_retime(times, end, out_fps, [r.start_frame for r in inputs], cuts=s.cuts, duplicates=duplicates)
    start_pts = round(Fraction(int(stamps[0])) * info.time_base * out_fps)
    op = InterpolateOp(chosen.interpolator, plan.per_chunk, start_pts,
                       params={"method": chosen.method, "fps": str(out_fps)})

    def finish(run: OpRun) -> dict:
        return {"frames_out": sum(r.frame_count for r in run.records), "frames_synthesized": op.synthesized}

    return StepPlan(op, {"method": chosen.method, "reason": chosen.reason, "source_fps": float(source_fps),
                         "output_fps": float(out_fps), "duplicates_dropped": len(duplicates)},
                    retiming=Retiming(out_fps, start_pts, start_pts + len(plan.frames)), finish=finish)


def _interpolate_shape(config: InterpolateConfig, shape: FrameShape, info: VideoInfo) -> FrameShape | None:
    settings = config.to_settings()
    source_fps = rational_fps(info.avg_fps)
    if not settings.enabled or settings.output_fps(source_fps) == source_fps:
        return None
    return FrameShape(max(1, round(info.duration * settings.output_fps(source_fps))), shape.width, shape.height)


def _prepare_cohere(s: StepInputs) -> StepPlan:
    settings = s.config.to_settings()
    settings.validate()
    if settings.method == "none":
        return StepPlan(None, {"method": "none"})
    first = s.upstream.records[0]
    method, reason = choose_temporal(settings.method, s.device.choose().kind, first.width, first.height,
                                     host_free_memory())
    s.context.log.info(f"temporal: {reason}")
    # low-resolution analysis frames exist when every output frame is a source frame (no retiming)
    sources = s.upstream.sources if not s.upstream.retimed else None
    op = CohereOp(replace(settings, method=method), sources, s.cuts)

    def finish(_run: OpRun) -> dict:
        return {"blended_fraction": round(float(np.mean(op.blended)), 3) if op.blended else None}

    return StepPlan(op, {"method": method, "reason": reason}, finish=finish)


def _cohere_shape(config: TemporalConfig, shape: FrameShape, _info: VideoInfo) -> FrameShape | None:
    return None if config.method == "none" else shape


UPSCALE = register_step(ChainStep(
    "upscale", UpscaleConfig, _prepare_upscale, _upscale_shape, gpu=True, kinds=frozenset({"pytorch"}),
    active=lambda config: config.scale != NO_UPSCALE,
    description="Every chunk upscaled by the AI model (spandrel), tiled with seamless blending, batched, at the "
    "device's precision, on the PyTorch or the ncnn backend (`--backend`; auto picks the faster here and logs why). "
    "Runs in the `gpu` pool. Decode, inference and writing overlap; the output metadata says how long the model "
    "ran and how long it waited on the writer."))

INTERPOLATE = register_step(ChainStep(
    "interpolate", InterpolateConfig, _prepare_interpolate, _interpolate_shape, gpu=True,
    active=lambda config: config.method != "none", rate=lambda config: float(config.factor or 2),
    description="New frames between pairs (stages.ops.interpolate) at a factor or a target fps (at most 120), on the "
    "source's real timestamps (VFR in, constant rate out), never across a scene cut (the nearer frame is "
    "repeated), with optional duplicate-frame removal. RIFE when its weights are present, else the optical-flow "
    "interpolator; blend and ffmpeg minterpolate are baselines. The last pairs of a chunk use the first frame of "
    "the next chunk, so joined chunks have no missing or doubled frame. Pass-through when interpolation is off."))

COHERE = register_step(ChainStep(
    "cohere", TemporalConfig, _prepare_cohere, _cohere_shape, active=lambda config: config.method != "none",
    description="Temporal-coherence pass against flicker (stages.ops.cohere.temporal): `flow` warps the previous output onto "
    "each frame with optical flow from the low-resolution source and blends it where a confidence mask trusts it; "
    "`ema` is a motion-gated moving average; `none` passes the chunks through. Each chunk starts from the previous "
    "chunk's last output frame within a shot, and fresh at a scene cut, so shots are independent units of work."))

ENHANCE_CHAIN: tuple[str, ...] = ("upscale", "interpolate", "cohere")


def enhance_run_config(
    chunk: ChunkPlanConfig | None = None,
    upscale: UpscaleConfig | None = None,
    encode: EncodeConfig | None = None,
    temporal: TemporalConfig | None = None,
    interpolate: InterpolateConfig | None = None,
    metrics: MetricsConfig | None = None,
    *,
    chain: Sequence[str] | None = None,
    steps: Mapping[str, Config] | None = None,
) -> dict[str, Any]:
    """Run config for ``enhance_job`` from the config objects (defaults where None). ``chain``: the op names of the
    job's chain (default: orchestration.graphs.enhance_steps.ENHANCE_CHAIN); ``steps``: configs of other chain steps by
    name (a step with no entry gets its config's defaults)."""
    given = {"upscale": upscale, "interpolate": interpolate, "cohere": temporal, **(steps or {})}
    ops: dict[str, Any] = {"chunk_plan": {"config": (chunk or ChunkPlanConfig()).model_dump()}}
    for name in chain or ENHANCE_CHAIN:
        ops[name] = {"config": (given.get(name) or chain_step(name).config()).model_dump()}
    ops["encoded_video"] = {"config": (encode or EncodeConfig()).model_dump()}
    ops["metrics_report"] = {"config": (metrics or MetricsConfig()).model_dump()}
    return {"ops": ops}
