"""The scene assets of the production graph: the plan, then the assembled, interpolated and upscaled scenes.

The plan comes with each scene's image sequence found; the sequences are read into lossless chunks, each scene is
retimed to the plan's frame rate and upscaled toward the canvas. The rest of the graph, from the edited master to
the report, is in orchestration.graphs.production.
"""

import os
import time
from contextlib import nullcontext
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, MetadataValue, asset

from orchestration.graphs.common import progress_reporter, report_progress
from orchestration.graphs.production_steps import (
    ALPHA_KIND,
    GROUP,
    OK,
    SKIPPED,
    _file_stamp,
    _plan,
    _records,
    _step,
    plans_partitions,
    production_step,
)
from orchestration.graphs.retries import retry_transient_only
from orchestration.launch.events import first_line
from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.resources.workspace import lookup_job
from stages.errors import ModelError
from stages.media.chunkio import ChunkWriter
from stages.models.catalog import DEFAULT_UPSCALE_MODEL
from stages.ops.driver import run_op
from stages.ops.interpolate.op import (
    InterpolateOp,
    choose_interpolator,
    plan_retime,
)
from stages.ops.upscale.engine import SUPPORTED_SCALES, UpscaleSettings, describe_plan
from stages.ops.upscale.op import build_upscale_op
from stages.production.edit import plan_edit
from stages.production.plan import plan_from_dict, transition_frames
from stages.production.sequence import (
    SequenceTimeline,
    find_sequence,
    plan_timeline,
)
from stages.production.sequence_chunk import write_sequence_chunk
from stages.store.chunk_store import ChunkContent, ChunkRecord, ChunkStore, content_key
from stages.store.versions import stage_version

CHUNK_SECONDS = 10.0


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"})
@production_step("plan")
@retry_transient_only
def production_plan(context: AssetExecutionContext, workspace: WorkspaceResource) -> dict[str, Any]:
    """The validated plan (stages.production.plan) with each scene's image sequence found: its frames, size, bit
    depth and missing frames. Fails before any work when a sequence is missing or a crossfade is longer than
    the scenes it joins."""
    started = time.perf_counter()
    ws = workspace.workspace()
    plan = plan_from_dict(lookup_job(ws.plans, context.partition_key, "plan"))
    scenes = []
    for scene in plan.scenes:
        sequence = find_sequence(scene.pattern)
        timeline = plan_timeline(sequence, scene.missing_frames, fps=float(scene.fps))
        scenes.append({"name": scene.name, "sequence": asdict(sequence), "timeline": asdict(timeline)})
    # frame counts at the output rate decide whether the crossfades fit
    counts = [max(1, round(len(s["timeline"]["paths"]) / scene.fps * plan.framerate))
              for s, scene in zip(scenes, plan.scenes, strict=True)]
    plan_edit(counts, [transition_frames(s.transition, plan.framerate) for s in plan.scenes],
              [s.name for s in plan.scenes])
    Path(plan.output_dir).mkdir(parents=True, exist_ok=True)
    context.add_output_metadata({
        "plan": MetadataValue.path(plan.plan_path), "scenes": len(plan.scenes),
        "output": f"{plan.canvas[0]}x{plan.canvas[1]} at {float(plan.framerate):g} fps",
        "deliverables": ", ".join(plan.deliverables), "output_dir": MetadataValue.path(plan.output_dir),
    })
    rates = "; ".join(f"{s.name} at {float(s.fps):g} fps" + (" (from its frames' metadata)"
                                                             if s.fps_source == "metadata" else " (assumed)"
                                                             if s.fps_source == "assumed" else "")
                      for s in plan.scenes)
    step = _step("plan", OK, f"{len(plan.scenes)} scenes, {plan.canvas[0]}x{plan.canvas[1]} at "
                 f"{float(plan.framerate):g} fps, deliverables {', '.join(plan.deliverables)}; {rates}",
                 warnings=list(plan.warnings), seconds=time.perf_counter() - started)
    for warning in plan.warnings:
        context.log.warning(f"plan: {warning}")
    return {"plan": plan.to_dict(), "scenes": scenes, "steps": [step]}


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"})
@production_step("assemble")
@retry_transient_only
def assembled_scenes(context: AssetExecutionContext, workspace: WorkspaceResource,
                     production_plan: dict[str, Any]) -> dict[str, Any]:
    """Each scene's image sequence read into lossless chunks (16-bit for EXR, DPX and 16-bit PNG/TIFF; linear
    EXR converted for display), missing frames skipped or held as the plan says. Chunks are keyed by the files'
    paths, sizes and modification times: re-exporting a frame redoes its chunk."""
    started = time.perf_counter()
    plan = _plan(production_plan)
    store = workspace.workspace().chunk_store()
    want_alpha = ALPHA_KIND in plan.deliverables
    scenes_out, warnings = [], []
    total_chunks = sum(max(1, -(-len(s["timeline"]["paths"]) // _chunk_frames(scene.fps)))
                       for s, scene in zip(production_plan["scenes"], plan.scenes, strict=True))
    done = computed = 0
    for found, scene in zip(production_plan["scenes"], plan.scenes, strict=True):
        sequence, timeline = found["sequence"], found["timeline"]
        paths = timeline["paths"]
        step = _chunk_frames(scene.fps)
        depth = sequence["storage_depth"]
        keep_alpha = want_alpha and sequence["has_alpha"]
        records, alpha_records = [], []
        for index, start in enumerate(range(0, len(paths), step)):
            count = min(step, len(paths) - start)
            parts = {"files": [_file_stamp(p) for p in paths[start:start + count]], "depth": depth,
                     "size": [sequence["width"], sequence["height"]], "version": stage_version("sequence")}
            key = content_key("sequence", parts)
            alpha_key = content_key("sequence-alpha", parts)
            chunk_started = time.perf_counter()
            with store.lock("sequence", key), store.lock("sequence-alpha", alpha_key) if keep_alpha else nullcontext():
                record = store.get("sequence", key)
                alpha_record = store.get("sequence-alpha", alpha_key) if keep_alpha else None
                reused = record is not None and (alpha_record is not None or not keep_alpha)
                if not reused:  # decode the frames once for both chunks
                    record, alpha_record = _assemble_chunk(
                        store, key, alpha_key if keep_alpha else None, _timeline(timeline), start, count, index,
                        sequence, scene.name)
                    computed += 1
            records.append(record)
            if alpha_record is not None:
                alpha_records.append(alpha_record)
            report_progress(context, "assemble", done, total_chunks, record.frame_count, reused,
                            time.perf_counter() - chunk_started)
            done += 1
        if timeline.get("warning"):
            warnings.append(f"{scene.name}: {timeline['warning']}")
        if sequence["has_alpha"] and not want_alpha:
            context.log.info(f"assemble: {scene.name} has alpha; only {ALPHA_KIND} carries it, which the plan "
                             "does not ask for")
        scenes_out.append({"name": scene.name, "fps": str(scene.fps), "records": [r.to_dict() for r in records],
                           "frames": len(paths), "width": sequence["width"], "height": sequence["height"],
                           "bit_depth": depth, "source_bits": sequence["bit_depth"],
                           "transfer": sequence["transfer"], "alpha": sequence["has_alpha"],
                           "alpha_records": [r.to_dict() for r in alpha_records] if keep_alpha else None})
    notes = [f"{s['name']}: {s['frames']} frames {s['width']}x{s['height']} at {s['source_bits']} bits"
             f"{' (linear EXR, shown through the sRGB transfer)' if s['transfer'] == 'linear' else ''}"
             f"{_alpha_note(s['alpha'], want_alpha)}"
             for s in scenes_out]
    context.add_output_metadata({"scenes": len(scenes_out), "chunks_computed": computed,
                                 "chunks_reused": done - computed, "frames": sum(s["frames"] for s in scenes_out)})
    own = _step("assemble", OK, "; ".join(notes), warnings=warnings, seconds=time.perf_counter() - started)
    return {**production_plan, "scenes_out": scenes_out, "steps": [*production_plan["steps"], own]}


def _alpha_note(has_alpha: bool, want_alpha: bool) -> str:
    if not has_alpha:
        return ""
    return f", alpha kept for {ALPHA_KIND}" if want_alpha else f", alpha dropped (only {ALPHA_KIND} carries it)"


def _assemble_chunk(store: ChunkStore, key: str, alpha_key: str | None, timeline: SequenceTimeline, start: int,
                    count: int, index: int, sequence: dict[str, Any], scene: str
                    ) -> tuple[ChunkRecord, ChunkRecord | None]:
    """Read frames ``[start, start + count)`` of a scene into its picture chunk and, with ``alpha_key``, its alpha
    chunk (fully opaque where no frame of the range has alpha). The caller holds both chunks' locks."""
    width, height, depth = sequence["width"], sequence["height"], sequence["storage_depth"]
    side = None
    if alpha_key is not None:  # where write_sequence_chunk puts the alpha until the store takes it
        folder = store.paths("sequence-alpha", alpha_key)[0].parent
        side = folder / f".{alpha_key}.{os.getpid()}.{os.urandom(4).hex()}.alpha.nut"
    try:
        alpha_seen = False

        def produce(tmp: Path) -> ChunkContent:
            nonlocal alpha_seen
            written = write_sequence_chunk(timeline, start, count, tmp, width=width, height=height,
                                           storage_depth=depth, alpha_out=side)
            alpha_seen = written.alpha_path is not None
            return ChunkContent(written.frame_count, tuple(range(start, start + count)), written.width,
                                written.height, written.bit_depth)

        record = store.put("sequence", key, produce, index=index, start_frame=start, params={"scene": scene})
        if alpha_key is None or side is None:
            return record, None

        def produce_alpha(tmp: Path) -> ChunkContent:
            if alpha_seen:
                os.replace(side, tmp)
            else:  # the first frame had alpha, none of this range does: opaque
                with ChunkWriter(tmp, width, height, depth) as writer:
                    opaque = np.full((height, width, 3), (1 << depth) - 1, dtype=np.uint8 if depth == 8 else np.uint16)
                    for _ in range(record.frame_count):
                        writer.write(opaque)
            return ChunkContent(record.frame_count, record.pts, width, height, depth)

        alpha_record = store.put("sequence-alpha", alpha_key, produce_alpha, index=index, start_frame=start,
                                 params={"scene": scene, "alpha": True})
        return record, alpha_record
    finally:
        if side is not None:
            side.unlink(missing_ok=True)


def _chunk_frames(fps: Fraction) -> int:
    return max(1, round(CHUNK_SECONDS * fps))


def _timeline(data: dict[str, Any]) -> SequenceTimeline:
    return SequenceTimeline(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"}, pool="gpu")
@production_step("interpolate")
@retry_transient_only
def interpolated_scenes(context: AssetExecutionContext, workspace: WorkspaceResource,
                        model_store: ModelStoreResource, device: DeviceResource,
                        assembled_scenes: dict[str, Any]) -> dict[str, Any]:
    """Each scene brought from its own frame rate to the plan's (RIFE when its weights are present, else the
    optical-flow interpolator, with a warning); a scene already at the plan's rate passes through."""
    started = time.perf_counter()
    plan = _plan(assembled_scenes)
    store = workspace.workspace().chunk_store()
    out_fps = plan.framerate
    scenes, notes, warnings = [], [], []
    chosen = None
    for scene in assembled_scenes["scenes_out"]:
        fps = Fraction(scene["fps"])
        inputs = _records(scene["records"])
        if fps == out_fps:
            scenes.append(scene)
            notes.append(f"{scene['name']}: already {float(fps):g} fps")
            continue
        if chosen is None:
            choice = device.choose()
            chosen = choose_interpolator(model_store.store(), choice, plan.interpolation_method,
                                         flow_preset=plan.flow_preset, rife_fallback=True)
            if chosen.fallback:
                warnings.append(f"interpolate: {chosen.fallback}")
            if chosen.method != "rife" and plan.interpolation_method == "auto":
                warnings.append(f"interpolate: {chosen.reason}")
            context.log.info(f"interpolate: {chosen.reason}")
        count = scene["frames"]
        times = np.arange(count, dtype=np.float64) / float(fps)
        retime = plan_retime(times, count / float(fps), out_fps, [r.start_frame for r in inputs])
        params = {"method": chosen.method, "fps": str(out_fps)}
        op = InterpolateOp(chosen.interpolator, retime.per_chunk, params=params)
        records = run_op(store, op, inputs, on_chunk=progress_reporter(context, "interpolate")).records
        alpha_records = scene.get("alpha_records")
        if alpha_records:  # the matte is retimed by the same interpolator, frame for frame
            matte = InterpolateOp(chosen.interpolator, retime.per_chunk, params={**params, "alpha": True},
                                  extra={"alpha": True})
            retimed = run_op(store, matte, _records(alpha_records),
                             on_chunk=progress_reporter(context, "interpolate alpha")).records
            alpha_records = [r.to_dict() for r in retimed]
        scenes.append({**scene, "fps": str(out_fps), "records": [r.to_dict() for r in records],
                       "frames": sum(r.frame_count for r in records), "alpha_records": alpha_records})
        notes.append(f"{scene['name']}: {float(fps):g} -> {float(out_fps):g} fps with {chosen.method} "
                     f"({op.synthesized} frames made)")
    method = chosen.method if chosen is not None else None
    status = OK if method is not None else SKIPPED
    reason = "; ".join(notes) if method is not None else f"every scene is already at {float(out_fps):g} fps"
    context.add_output_metadata({"method": method or "none", "output_fps": float(out_fps)})
    own = _step("interpolate", status, reason, warnings=warnings, seconds=time.perf_counter() - started)
    return {**assembled_scenes, "scenes_out": scenes, "steps": [*assembled_scenes["steps"], own]}


def _needed_scale(width: int, height: int, canvas: tuple[int, int]) -> float:
    return min(canvas[0] / width, canvas[1] / height)


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"pytorch"}, pool="gpu")
@production_step("upscale")
@retry_transient_only
def upscaled_scenes(context: AssetExecutionContext, workspace: WorkspaceResource, model_store: ModelStoreResource,
                    device: DeviceResource, interpolated_scenes: dict[str, Any]) -> dict[str, Any]:
    """Each scene smaller than the output canvas upscaled by the AI model (the smallest of x2/x4/x8 that
    reaches the canvas; the edit step fits the result exactly). Without the model's weights the scene is left
    for the edit step's Lanczos resize, with a warning; without a GPU the model runs on the CPU."""
    started = time.perf_counter()
    plan = _plan(interpolated_scenes)
    ws = workspace.workspace()
    store = ws.chunk_store()
    scenes, notes, warnings = [], [], []
    used_model = False
    models = model_store.store()
    choice = device.choose()
    chosen: dict[int, Any] = {}  # scale -> the upscale op (or the ModelError), made once for every scene at that scale
    for scene in interpolated_scenes["scenes_out"]:
        needed = _needed_scale(scene["width"], scene["height"], plan.canvas)
        if needed <= 1.0 or not plan.upscale_enabled:
            scenes.append(scene)
            why = "upscaling is off in the plan" if not plan.upscale_enabled else "already fills the canvas"
            notes.append(f"{scene['name']}: {why}; resized to fit")
            continue
        scale = next((s for s in SUPPORTED_SCALES if s >= needed), SUPPORTED_SCALES[-1])
        if scale not in chosen:
            settings = UpscaleSettings(model=plan.upscale_model or DEFAULT_UPSCALE_MODEL, scale=scale,
                                       tile=plan.upscale_tile)
            try:
                chosen[scale] = build_upscale_op(models, settings, choice, model_path=plan.upscale_model_path)
            except ModelError as exc:
                chosen[scale] = exc
            else:
                context.log.info(f"upscale: {chosen[scale].decision.reason}")
                if chosen[scale].decision.fallback:
                    warnings.append(chosen[scale].decision.fallback)
                if chosen[scale].selection.note:
                    context.log.info(chosen[scale].selection.note)
        upscale = chosen[scale]
        if isinstance(upscale, ModelError):
            warnings.append(f"upscale: {scene['name']}: no AI upscaling weights ({first_line(upscale)}); "
                            "falling back to Lanczos")
            scenes.append(scene)
            notes.append(f"{scene['name']}: Lanczos (no weights)")
            continue
        if choice.kind == "cpu":
            message = "upscale: no GPU; the model runs on the CPU (slow)"
            if message not in warnings:
                warnings.append(message)
        model_id = upscale.selection.model_id
        context.log.info(f"upscale: {scene['name']}: x{scale} with {model_id}; {upscale.backend_reason}")
        records = run_op(store, upscale.op, _records(scene["records"]),
                         on_chunk=progress_reporter(context, "upscale")).records
        first = records[0]
        scenes.append({**scene, "records": [r.to_dict() for r in records], "width": first.width,
                       "height": first.height})
        notes.append(f"{scene['name']}: x{scale} with {model_id} ({describe_plan(upscale.op.steps)}) on "
                     f"{choice.device}, {scene['width']}x{scene['height']} -> {first.width}x{first.height}")
        used_model = True
    status = OK if used_model or warnings else SKIPPED
    context.add_output_metadata({"canvas": f"{plan.canvas[0]}x{plan.canvas[1]}", "model_used": used_model})
    own = _step("upscale", status, "; ".join(notes), warnings=warnings, seconds=time.perf_counter() - started)
    return {**interpolated_scenes, "scenes_out": scenes, "steps": [*interpolated_scenes["steps"], own]}
