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

The assets from the plan to the upscaled scenes are in orchestration.graphs.production_scenes, the step bookkeeping
and report.json in orchestration.graphs.production_steps; the master, the audio, the deliverables and the report
are here, with PRODUCTION_ASSETS, the graph in order.
"""

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MetadataValue, asset

from orchestration.graphs.common import (
    cached_output,
    deliver_file,
    progress_reporter,
    report_progress,
)
from orchestration.graphs.production_scenes import (
    _chunk_frames,
    assembled_scenes,
    interpolated_scenes,
    production_plan,
    upscaled_scenes,
)
from orchestration.graphs.production_steps import (
    ALPHA_KIND,
    FAILED,
    GROUP,
    OK,
    REPORT_NAME,
    StepFailed,
    _file_stamp,
    _plan,
    _records,
    _step,
    plans_partitions,
    production_step,
    write_report,
)
from orchestration.graphs.retries import retry_transient_only
from orchestration.launch.events import first_line
from orchestration.resources.core import WorkspaceResource
from stages.media.audio import mix_audio
from stages.ops.driver import run_op
from stages.ops.edit import EditOp
from stages.production.carrier import output_filename
from stages.production.deliver import encode_deliverable
from stages.production.deliverables import DeliverableSpec
from stages.production.edit import (
    SceneChunk,
    SceneMatte,
    plan_edit,
)
from stages.production.plan import transition_frames
from stages.production.stills import write_contact_sheet, write_thumbnail
from stages.store.chunk_store import ChunkRecord, content_key
from stages.store.versions import stage_version

PRODUCTION_JOB = "production_job"


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
    picture = EditOp(sources, upstream_keys, plan.canvas, depth, names=names)
    run = run_op(store, picture, pieces, on_chunk=progress_reporter(context, "edit"))
    records, computed = list(run.records), run.computed
    mattes = None
    alpha_records: list[ChunkRecord] = []
    if ALPHA_KIND in plan.deliverables and any(s.get("alpha_records") for s in scenes):  # the master's alpha
        mattes = [SceneMatte(tuple(SceneChunk(r["start_frame"], r["frame_count"], r["path"])
                                   for r in s.get("alpha_records") or ()), s["width"], s["height"]) for s in scenes]
        matte_keys = [[r["key"] for r in s.get("alpha_records") or ()] or "opaque" for s in scenes]
        matte = EditOp(sources, matte_keys, plan.canvas, depth, names=names, mattes=mattes)
        alpha_records = list(run_op(store, matte, pieces, on_chunk=progress_reporter(context, "edit alpha")).records)
    fades = [f"{spec.transition.duration:g} s crossfade into {spec.name}" for spec in plan.scenes
             if spec.transition.type == "crossfade"]
    seconds = len(frames) / float(plan.framerate)
    reason = (f"{len(scenes)} scenes, {len(frames)} frames ({seconds:.2f} s) at {plan.canvas[0]}x{plan.canvas[1]}"
              f", {depth}-bit; " + (", ".join(fades) if fades else "cuts only"))
    if mattes is not None:
        reason += "; alpha matte from " + ", ".join(n for n, s in zip(names, scenes, strict=True)
                                                   if s.get("alpha_records")) + " (the other scenes opaque)"
    context.add_output_metadata({"frames": len(frames), "duration_s": round(seconds, 3), "chunks_computed": computed,
                                 "chunks_reused": run.reused, "bit_depth": depth,
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
        target = out_dir / output_filename(plan, kind)
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
        ("thumbnail", output_filename(plan, "thumbnail"),
         lambda path: write_thumbnail(chunk_paths, fps, path, at=plan.thumbnail.at, at_seconds=plan.thumbnail.seconds,
                                      width=plan.thumbnail.width)),
        ("contact_sheet", output_filename(plan, "contact_sheet"),
         lambda path: write_contact_sheet(chunk_paths, fps, path, columns=plan.contact_sheet.columns,
                                          rows=plan.contact_sheet.rows, tile_width=plan.contact_sheet.tile_width)),
    )
    for name, filename, make in stills:
        started = time.perf_counter()
        target = out_dir / filename
        try:
            suffix = target.suffix.lower()  # .jpg, or .png for the carrier layout's thumbnail
            result, _reused = _cached_output(ws, {"master": master_keys, "name": name, "spec": asdict(
                plan.thumbnail if name == "thumbnail" else plan.contact_sheet), "suffix": suffix,
                "version": stage_version("deliver")}, suffix, lambda path, make=make: asdict(make(path)))
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
                         f"{failed[0]['reason']}); report.json lists them", steps, outputs)
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
