"""The "assemble and deliver" asset graph: a production plan (stages.production.plan) is one partition of ``plans``.

    production_plan -> assembled_scenes -> interpolated_scenes -> upscaled_scenes -> edited_master
                    -> mixed_audio -> deliverables -> production_report

Every step records a status (OK, SKIPPED or FAILED, with the reason and its warnings) that travels down the chain;
``production_report`` writes them to ``report.json`` beside the deliverables. When a step fails, its wrapper
writes ``report.json`` at once, with that step FAILED and every later step SKIPPED ("not run"), before the run
ends. Frames live in the chunk store like the enhance graph's, so a rerun reuses every chunk already made.

Alpha: when the plan asks for ProRes 4444, each scene whose frames carry alpha keeps it as alpha chunks beside its
picture chunks; they are retimed by the same interpolator, left at the scene's native size by the AI upscaler,
and the edit builds the master's matte from them (stages.production.edit.render_matte_chunk: resized with Lanczos to the
picture, opaque for scenes without alpha, transparent bars), which ProRes 4444 encodes as its alpha channel.

Fallbacks are warnings, never failures: no RIFE weights -> the optical-flow interpolator; no upscaling weights
-> Lanczos (in the edit step's fit to the canvas); no GPU -> the CPU.
"""

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from dagster import (
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    Failure,
    MetadataValue,
    RetryRequested,
    asset,
)

from orchestration.graphs.common import (
    cached_output,
    deliver_file,
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
from orchestration.resources.workspace import lookup_job
from stages.errors import ModelError, StageError
from stages.media.audio import mix_audio
from stages.media.chunkio import ChunkWriter
from stages.models.catalog import DEFAULT_UPSCALE_MODEL
from stages.ops.driver import run_op
from stages.ops.interpolate.op import (
    InterpolateOp,
    choose_interpolator,
    plan_retime,
    rife_factory,
)
from stages.ops.upscale.engine import SUPPORTED_SCALES, UpscaleSettings, describe_plan
from stages.ops.upscale.op import build_upscale_op
from stages.production.deliver import (
    DeliverableSpec,
    default_filename,
    encode_deliverable,
    write_contact_sheet,
    write_thumbnail,
)
from stages.production.edit import (
    SceneChunk,
    SceneMatte,
    plan_edit,
    render_edit_chunk,
    render_matte_chunk,
)
from stages.production.plan import ProductionPlan, plan_from_dict, transition_frames
from stages.production.sequence import (
    SequenceTimeline,
    find_sequence,
    plan_timeline,
    write_sequence_chunk,
)
from stages.store.chunk_store import ChunkContent, ChunkRecord, ChunkStore, content_key
from stages.store.fsutil import atomic_write_text
from stages.store.versions import stage_version

plans_partitions = DynamicPartitionsDefinition(name="plans")

GROUP = "production"
PRODUCTION_JOB = "production_job"
CHUNK_SECONDS = 10.0
REPORT_NAME = "report.json"
OK, SKIPPED, FAILED = "OK", "SKIPPED", "FAILED"

ALPHA_KIND = "prores4444"  # the one deliverable that carries an alpha channel


class StepFailed(StageError):
    """A step failed after recording statuses of its own (e.g. one deliverable of several)."""

    def __init__(self, message: str, steps: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.steps = steps


def step_names(plan: ProductionPlan) -> list[str]:
    """Every step of a plan's run, in order (one per deliverable)."""
    return ["plan", "assemble", "interpolate", "upscale", "edit", "audio",
            *(f"deliver:{kind}" for kind in plan.deliverables), "thumbnail", "contact_sheet", "report"]


def _step(name: str, status: str, reason: str = "", *, warnings: list[str] | None = None, seconds: float = 0.0,
          **details: Any) -> dict[str, Any]:
    return {"step": name, "status": status, "reason": reason, "warnings": list(warnings or []),
            "seconds": round(seconds, 2), **details}


def _plan(value: dict[str, Any]) -> ProductionPlan:
    return plan_from_dict(value["plan"])


def _records(items: list[dict[str, Any]]) -> list[ChunkRecord]:
    return [ChunkRecord.from_dict(r) for r in items]


def _file_stamp(path: str) -> list[Any]:
    """What decides an input file's bytes without reading it: its path, size and modification time."""
    stat = Path(path).stat()
    return [path, stat.st_size, stat.st_mtime_ns]


def write_report(plan: ProductionPlan, steps: list[dict[str, Any]], *, run_id: str, partition: str,
                 deliverables: list[dict[str, Any]] | None = None) -> Path:
    """Write ``report.json`` (atomically) into the plan's output folder; returns its path."""
    failed = [s for s in steps if s["status"] == FAILED]
    report = {
        "plan": plan.plan_path,
        "name": plan.name,
        "partition": partition,
        "run_id": run_id,
        "status": FAILED if failed else OK,
        "error": f"{failed[0]['step']}: {failed[0]['reason']}" if failed else None,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output_dir": plan.output_dir,
        "resolution": f"{plan.canvas[0]}x{plan.canvas[1]}",
        "framerate": str(plan.framerate),
        "deliverables": deliverables or [],
        "warnings": [w for s in steps for w in s.get("warnings", [])],
        "steps": steps,
    }
    out = Path(plan.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_NAME
    atomic_write_text(path, json.dumps(report, indent=2))
    return path


def production_step(name: str) -> Callable:
    """Wrap a production asset: when it raises, write report.json with the statuses recorded so far, this step
    FAILED (the first line of the error) and every later step SKIPPED, then let the error fail the run."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(context: AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(context, *args, **kwargs)
            except RetryRequested:
                raise  # a transient error: the step runs again, nothing to report yet
            except Exception as exc:
                cause = exc.__cause__ if isinstance(exc, Failure) and exc.__cause__ is not None else exc
                _report_failure(context, name, cause, kwargs, time.perf_counter() - started)
                raise

        return wrapper

    return decorate


def _report_failure(context: AssetExecutionContext, name: str, exc: Exception, upstream: dict[str, Any],
                    seconds: float) -> None:
    try:
        values = [v for v in upstream.values() if isinstance(v, dict) and "steps" in v]
        previous = max((v["steps"] for v in values), key=len, default=[])
        plan = _plan(values[0]) if values else plan_from_dict(
            lookup_job(context.resources.workspace.workspace().plans, context.partition_key, "plan"))
        reason = first_line(exc)
        own = exc.steps if isinstance(exc, StepFailed) else [_step(name, FAILED, reason, seconds=seconds)]
        done = [*previous, *own]
        recorded = {s["step"] for s in done}
        failed_step = next(s["step"] for s in own if s["status"] == FAILED)
        later = [_step(n, SKIPPED, f"not run: the {failed_step} step failed") for n in step_names(plan)
                 if n not in recorded]
        path = write_report(plan, [*done, *later], run_id=context.run.run_id, partition=context.partition_key)
        context.log.error(f"{name}: failed; {path} lists every step's status")
    except Exception as report_error:  # noqa: BLE001 - the step's own error matters more
        context.log.warning(f"report: could not write {REPORT_NAME} ({report_error})")


# --------------------------------------------------------------------------------------------------- assets


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
    step = _step("plan", OK, f"{len(plan.scenes)} scenes, {plan.canvas[0]}x{plan.canvas[1]} at "
                 f"{float(plan.framerate):g} fps, deliverables {', '.join(plan.deliverables)}",
                 seconds=time.perf_counter() - started)
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
            requested = plan.interpolation_method
            if requested == "rife" and not rife_factory(model_store.store(), choice)[0]:
                warnings.append("interpolate: no RIFE weights on this machine; using the optical-flow "
                                "interpolator instead (`vup models download` gets RIFE)")
                requested = "flow"
            chosen = choose_interpolator(model_store.store(), choice, requested, flow_preset=plan.flow_preset)
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


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"})
@production_step("edit")
@retry_transient_only
def edited_master(context: AssetExecutionContext, workspace: WorkspaceResource,
                  upscaled_scenes: dict[str, Any]) -> dict[str, Any]:
    """The master: every scene fitted to the canvas (aspect kept, letterboxed when it differs) and joined by
    the plan's cuts and crossfades, as lossless chunks at the plan's frame rate (16-bit when any scene is)."""
    started = time.perf_counter()
    plan = _plan(upscaled_scenes)
    store = workspace.workspace().chunk_store()
    scenes = upscaled_scenes["scenes_out"]
    names = [s["name"] for s in scenes]
    overlaps = [transition_frames(spec.transition, plan.framerate) for spec in plan.scenes]
    frames = plan_edit([s["frames"] for s in scenes], overlaps, names)
    depth = 16 if any(s["bit_depth"] > 8 for s in scenes) else 8
    sources = [[SceneChunk(r["start_frame"], r["frame_count"], r["path"]) for r in s["records"]] for s in scenes]
    upstream_keys = [[r["key"] for r in s["records"]] for s in scenes]
    step = _chunk_frames(plan.framerate)
    pieces = [frames[i:i + step] for i in range(0, len(frames), step)]
    records, computed = [], 0
    mattes = matte_keys = None
    alpha_records: list[ChunkRecord] = []
    if ALPHA_KIND in plan.deliverables and any(s.get("alpha_records") for s in scenes):
        mattes = [SceneMatte(tuple(SceneChunk(r["start_frame"], r["frame_count"], r["path"])
                                   for r in s.get("alpha_records") or ()), s["width"], s["height"]) for s in scenes]
        matte_keys = [[r["key"] for r in s.get("alpha_records") or ()] or "opaque" for s in scenes]
    for index, piece in enumerate(pieces):
        digest = hashlib.sha256(json.dumps([asdict(f) for f in piece]).encode()).hexdigest()
        used = sorted({f.a_scene for f in piece} | {f.b_scene for f in piece if f.b_scene is not None})
        key = content_key("master", {"frames": digest, "scenes": {str(k): upstream_keys[k] for k in used},
                                     "canvas": list(plan.canvas), "depth": depth, "version": stage_version("edit")})
        chunk_started = time.perf_counter()

        def produce(tmp: Path, piece=piece) -> ChunkContent:
            count = render_edit_chunk(piece, sources, tmp, plan.canvas, depth, names=names)
            return ChunkContent(count, tuple(f.index for f in piece), plan.canvas[0], plan.canvas[1], depth)

        record, reused = store.get_or_put("master", key, produce, index=index, start_frame=piece[0].index)
        if not reused:
            computed += 1
        records.append(record)
        if mattes is not None:  # the master's alpha for the same frames

            def produce_matte(tmp: Path, piece=piece) -> ChunkContent:
                count = render_matte_chunk(piece, mattes, tmp, plan.canvas, depth, names=names)
                return ChunkContent(count, tuple(f.index for f in piece), plan.canvas[0], plan.canvas[1], depth)

            matte_key = content_key("master-alpha", {
                "frames": digest, "scenes": {str(k): matte_keys[k] for k in used},
                "sizes": {str(k): [mattes[k].width, mattes[k].height] for k in used},
                "canvas": list(plan.canvas), "depth": depth, "version": stage_version("edit")})
            matte, matte_reused = store.get_or_put("master-alpha", matte_key, produce_matte, index=index,
                                                   start_frame=piece[0].index, params={"alpha": True})
            alpha_records.append(matte)
            reused = reused and matte_reused
        report_progress(context, "edit", index, len(pieces), record.frame_count, reused,
                        time.perf_counter() - chunk_started)
    fades = [f"{spec.transition.duration:g} s crossfade into {spec.name}" for spec in plan.scenes
             if spec.transition.type == "crossfade"]
    seconds = len(frames) / float(plan.framerate)
    reason = (f"{len(scenes)} scenes, {len(frames)} frames ({seconds:.2f} s) at {plan.canvas[0]}x{plan.canvas[1]}"
              f", {depth}-bit; " + (", ".join(fades) if fades else "cuts only"))
    if mattes is not None:
        reason += "; alpha matte from " + ", ".join(n for n, s in zip(names, scenes, strict=True)
                                                   if s.get("alpha_records")) + " (the other scenes opaque)"
    context.add_output_metadata({"frames": len(frames), "duration_s": round(seconds, 3), "chunks_computed": computed,
                                 "chunks_reused": len(records) - computed, "bit_depth": depth,
                                 "alpha": mattes is not None})
    own = _step("edit", OK, reason, seconds=time.perf_counter() - started)
    return {**upscaled_scenes, "master": [r.to_dict() for r in records], "master_frames": len(frames),
            "master_depth": depth, "master_alpha": [r.to_dict() for r in alpha_records] if mattes else None,
            "steps": [*upscaled_scenes["steps"], own]}


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"})
@production_step("audio")
@retry_transient_only
def mixed_audio(context: AssetExecutionContext, workspace: WorkspaceResource,
                edited_master: dict[str, Any]) -> dict[str, Any]:
    """The plan's audio tracks mixed with per-type gains (music -6 dB, sfx -3 dB, voice 0 dB unless the plan
    says otherwise), fitted to the master's duration with a fade-out, normalised to the loudness target with
    two-pass loudnorm. Missing or unreadable tracks are warnings; with none left the mix is silence."""
    started = time.perf_counter()
    plan = _plan(edited_master)
    ws = workspace.workspace()
    duration = edited_master["master_frames"] / float(plan.framerate)
    tracks = [{**asdict(t), "stamp": _file_stamp(t.path) if Path(t.path).is_file() else None}
              for t in plan.audio.tracks]
    key = content_key("audio", {"tracks": tracks, "gains": dict(plan.audio.gains), "loudness": plan.audio.loudness,
                                "fade": plan.audio.fade_out, "duration": duration, "version": stage_version("audio")})
    result, reused = cached_output(
        ws.outputs / ".cache" / key, "mix.wav",
        lambda path: asdict(mix_audio(list(plan.audio.tracks), path, duration, target_lufs=plan.audio.loudness,
                                      fade_out=plan.audio.fade_out, gains=dict(plan.audio.gains) or None)))
    warnings = list(result.get("warnings") or [])
    for warning in warnings:
        context.log.warning(warning)
    if result.get("silent"):
        reason = "no usable audio track: the deliverables get a silent track"
    else:
        used = ", ".join(f"{Path(t['path']).name} ({t['kind']}, {t['gain_db']:+g} dB)" for t in result["tracks"])
        measured = result["measured_lufs"]  # None: too short to measure (under one 0.4 s gating block)
        level = f"{measured:.1f} LUFS" if measured is not None else "loudness not measurable"
        reason = (f"mixed {used}; {level} (target {plan.audio.loudness:g}, loudnorm "
                  f"{result['loudnorm_mode']}), {duration:.2f} s with a {plan.audio.fade_out:g} s fade-out")
    context.add_output_metadata({"path": MetadataValue.path(result["path"]), "reused": reused,
                                 "loudness_lufs": result.get("measured_lufs"), "silent": bool(result.get("silent"))})
    own = _step("audio", OK, reason, warnings=warnings, seconds=time.perf_counter() - started,
                loudness_lufs=result.get("measured_lufs"))
    return {**edited_master, "audio": result, "steps": [*edited_master["steps"], own]}


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"python"})
@production_step("deliver")
@retry_transient_only
def deliverables(context: AssetExecutionContext, workspace: WorkspaceResource,
                 mixed_audio: dict[str, Any]) -> dict[str, Any]:
    """Every deliverable of the plan encoded from the master with the mixed audio (H.265 MP4 with AAC 320 kb/s,
    ProRes 422 HQ MOV with 24-bit PCM, and optionally ProRes 4444, H.264, AV1, FFV1), plus the thumbnail and the
    contact sheet. One deliverable failing does not stop the others; the step then fails with all of them
    recorded."""
    plan = _plan(mixed_audio)
    ws = workspace.workspace()
    master = _records(mixed_audio["master"])
    chunk_paths = [r.path for r in master]
    audio = mixed_audio["audio"]["path"]
    out_dir = Path(plan.output_dir)
    steps, outputs = [], []
    master_keys = [r.key for r in master]
    matte = _records(mixed_audio["master_alpha"]) if mixed_audio.get("master_alpha") else None
    for position, kind in enumerate(plan.deliverables):
        started = time.perf_counter()
        spec = DeliverableSpec(kind, codec=plan.codec if kind == "mp4" else None)
        target = out_dir / default_filename(plan.name, kind)
        alpha = [r.path for r in matte] if matte and kind == ALPHA_KIND else None
        try:
            result, reused = _cached_output(
                ws, {"master": master_keys, "audio": mixed_audio["audio"]["sha256"], "spec": asdict(spec),
                     "fps": str(plan.framerate), "alpha": [r.key for r in matte] if alpha else None,
                     "version": stage_version("deliver")}, target.suffix,
                lambda path, spec=spec, alpha=alpha: asdict(encode_deliverable(
                    chunk_paths, plan.framerate, path, spec, audio=audio, alpha_chunks=alpha)))
            deliver_file(Path(result["cached_path"]), target)
        except Exception as exc:  # noqa: BLE001 - recorded; the step fails after the others
            reason = first_line(exc)
            context.log.error(f"deliver: {kind}: {reason}")
            steps.append(_step(f"deliver:{kind}", FAILED, reason, seconds=time.perf_counter() - started))
            continue
        entry = {**{k: v for k, v in result.items() if k not in ("cached_path", "path")}, "path": str(target)}
        outputs.append(entry)
        steps.append(_step(f"deliver:{kind}", OK, f"{target.name}: {entry['codec']} {entry['pix_fmt']} "
                           f"{entry['width']}x{entry['height']} {entry['fps']} fps, audio "
                           f"{entry.get('audio_codec') or 'none'}{' (reused)' if reused else ''}",
                           warnings=list(entry.get("notes") or []), seconds=time.perf_counter() - started))
        report_progress(context, "deliver", position, len(plan.deliverables), entry["frame_count"], reused,
                        time.perf_counter() - started)
    fps = plan.framerate
    stills = (
        ("thumbnail", f"{plan.name}_thumbnail.jpg",
         lambda path: write_thumbnail(chunk_paths, fps, path, at=plan.thumbnail.at, at_seconds=plan.thumbnail.seconds,
                                      width=plan.thumbnail.width)),
        ("contact_sheet", f"{plan.name}_contact_sheet.jpg",
         lambda path: write_contact_sheet(chunk_paths, fps, path, columns=plan.contact_sheet.columns,
                                          rows=plan.contact_sheet.rows, tile_width=plan.contact_sheet.tile_width)),
    )
    for name, filename, make in stills:
        started = time.perf_counter()
        target = out_dir / filename
        try:
            result, _reused = _cached_output(ws, {"master": master_keys, "name": name, "spec": asdict(
                plan.thumbnail if name == "thumbnail" else plan.contact_sheet), "version": stage_version("deliver")},
                ".jpg", lambda path, make=make: asdict(make(path)))
            deliver_file(Path(result["cached_path"]), target)
        except Exception as exc:  # noqa: BLE001 - recorded; the step fails after the others
            reason = first_line(exc)
            steps.append(_step(name, FAILED, reason, seconds=time.perf_counter() - started))
            continue
        outputs.append({"kind": name, "path": str(target), "width": result["width"], "height": result["height"]})
        steps.append(_step(name, OK, f"{filename}: {result['width']}x{result['height']}",
                           seconds=time.perf_counter() - started))
    failed = [s for s in steps if s["status"] == FAILED]
    context.add_output_metadata({"deliverables": len(outputs), "failed": len(failed),
                                 "output_dir": MetadataValue.path(str(out_dir))})
    all_steps = [*mixed_audio["steps"], *steps]
    if failed:
        raise StepFailed(f"deliver: {len(failed)} of {len(steps)} outputs failed ({failed[0]['step']}: "
                         f"{failed[0]['reason']}); report.json lists them", steps)
    return {**mixed_audio, "outputs": outputs, "steps": all_steps}


def _cached_output(ws, key_parts: dict[str, Any], suffix: str,
                   make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """A deliverable or still made once per content key (chunk_steps.cached_output)."""
    return cached_output(ws.outputs / ".cache" / content_key("production-output", key_parts), f"output{suffix}", make)


@asset(partitions_def=plans_partitions, group_name=GROUP, kinds={"json"})
@production_step("report")
@retry_transient_only
def production_report(context: AssetExecutionContext, deliverables: dict[str, Any]) -> dict[str, Any]:
    """``report.json`` beside the deliverables: every step's status (OK / SKIPPED / FAILED with the reason),
    its warnings and seconds, and each deliverable as probed (codec, pixel format, size, frame rate, audio)."""
    plan = _plan(deliverables)
    steps = [*deliverables["steps"], _step("report", OK, REPORT_NAME)]
    path = write_report(plan, steps, run_id=context.run.run_id, partition=context.partition_key,
                        deliverables=deliverables["outputs"])
    context.add_output_metadata({
        "report": MetadataValue.path(str(path)),
        "statuses": MetadataValue.md("\n".join(f"- **{s['step']}**: {s['status']} {s['reason']}" for s in steps)),
        "warnings": sum(len(s["warnings"]) for s in steps),
    })
    return {"report": str(path), "outputs": deliverables["outputs"], "steps": steps}


PRODUCTION_ASSETS = [production_plan, assembled_scenes, interpolated_scenes, upscaled_scenes, edited_master,
                     mixed_audio, deliverables, production_report]
