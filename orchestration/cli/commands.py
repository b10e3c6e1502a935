"""`vup`: the command line. Runs go through the embedded Dagster instance, so they show in the Dagster UI."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

from stages.errors import SettingsError, StageError

log = logging.getLogger("vup")


def _workspace(args: argparse.Namespace):
    from orchestration.resources.workspace import (
        Workspace,
        default_workspace,
        prepare_dagster_home,
    )

    root = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    workspace = Workspace(root.resolve()).ensure()
    os.environ["VUP_WORKSPACE"] = str(workspace.root)
    prepare_dagster_home(workspace)
    return workspace


class _Progress:
    """One tqdm bar per stage, fed by the run's per-chunk events; a stage's bar opens when the one before it
    is full, so its clock starts when the stage does."""

    LABELS: ClassVar[dict[str, str]] = {"frames": "decode ", "interpolate": "interp ", "cohere": "coherence"}

    def __init__(self, totals: dict[str, int], enabled: bool) -> None:
        """``totals``: frames each stage will report, in stage order (stages that do no work are left out)."""
        self.totals = dict(totals)
        self.stages = tuple(self.totals)
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def _bar(self, stage: str):
        from tqdm import tqdm

        if stage not in self.bars:
            for other in self.bars.values():
                other.close()
            total = self.totals.get(stage, 0) or None
            self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage.ljust(7)), unit="frame", leave=True)
        return self.bars[stage]

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        stage = str(event.get("stage"))
        bar = self._bar(stage)
        bar.update(int(event.get("frames", 0)))
        if event.get("reused"):
            bar.set_postfix_str("cached")
        if stage in self.stages[:-1] and bar.n >= self.totals[stage]:
            self._bar(self.stages[self.stages.index(stage) + 1])

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _run_failed(outcome, workspace) -> int:
    """Say why a run failed and where its logs are; the exit code of a failed run."""
    print(f"error: {outcome.error}", file=sys.stderr)
    print(f"(run {outcome.run_id} in {workspace.dagster_home}; `vup dev` shows its logs)", file=sys.stderr)
    return 1


def cmd_enhance(args: argparse.Namespace) -> int:
    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.launch.validate import validate_request
    from orchestration.resources.config import (
        ChunkPlanConfig,
        EncodeConfig,
        InterpolateConfig,
        MetricsConfig,
        TemporalConfig,
        UpscaleConfig,
    )
    from stages.models.store import ModelStore
    from stages.ops.upscale.selection import select_model

    workspace = _workspace(args)
    request = EnhanceRequest(
        input=Path(args.input).expanduser().absolute(),  # absolute: ffmpeg reads 'e:f.mp4' as a protocol
        output=Path(args.output).expanduser() if args.output else None,
        chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds, scene_detection=not args.no_scene_detection),
        upscale=UpscaleConfig(
            model=args.model, model_path=args.model_path, scale=args.scale, tile=args.tile,
            tile_overlap=args.tile_overlap, batch=args.batch, backend=args.backend, compile=args.compile,
        ),
        encode=EncodeConfig(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt),
        temporal=TemporalConfig(method=args.temporal, strength=args.temporal_strength),
        metrics=MetricsConfig(
            reference_path=str(Path(args.reference).expanduser().resolve()) if args.reference else None,
            vmaf=not args.no_vmaf,
        ),
        interpolate=InterpolateConfig(
            method=args.interp_method if (args.interpolate or args.fps) else "none",
            factor=args.interpolate, fps=args.fps, dedup=args.dedup,
        ),
        device=args.device,
        precision=args.precision,
        max_runtime_hours=args.max_runtime_hours,
    )
    info = validate_request(request)
    out_w, out_h = info.width * args.scale, info.height * args.scale
    if args.scale == 1:
        using = "no upscaling (scale 1)"
    else:
        # Fetch (convert or download) the weights here, with a progress bar, before the run starts.
        selection = select_model(ModelStore(progress=not args.quiet), args.model, args.scale, args.model_path)
        if selection.note and not args.quiet:
            print(selection.note, file=sys.stderr)
        using = f"with {selection.model_id} ({selection.source})"
    if not args.quiet:
        print(
            f"{request.input.name}: {info.width}x{info.height} {info.avg_fps:.3f} fps, {info.frame_count} frames "
            f"-> {out_w}x{out_h} {using}",
            file=sys.stderr,
        )
    interp = request.interpolate.to_settings()
    if interp.enabled:
        from stages.ops.interpolate.engine import rational_fps

        source_fps = rational_fps(info.avg_fps)
        out_fps = interp.output_fps(source_fps)
        if not args.quiet:
            print(f"interpolation: {float(source_fps):.3f} fps -> {float(out_fps):.3f} fps ({interp.method})",
                  file=sys.stderr)
    from orchestration.graphs.chain import plan_shapes
    from orchestration.graphs.enhance_steps import ENHANCE_CHAIN

    shapes = plan_shapes(ENHANCE_CHAIN, request.step_configs(), info)  # one bar per step that does work
    totals = {name: shape.frames for name, shape in shapes.items()}
    totals["encode"] = totals["report"] = list(shapes.values())[-1].frames
    progress = _Progress(totals, enabled=not args.quiet)
    try:
        outcome = run_enhance(workspace, request, on_event=progress, log_level="DEBUG" if args.verbose else "WARNING")
    finally:
        progress.close()
    if not outcome.success:
        return _run_failed(outcome, workspace)
    report = outcome.report or {}
    flicker = report.get("flicker", {})
    files = report.get("files", {})
    print(f"output:   {outcome.output}")
    print(f"          {report['output']['width']}x{report['output']['height']}, {report['output']['frames']} frames, "
          f"{report['output']['duration_s']:.3f} s, {report['output']['codec']}")
    print(f"model:    {report.get('model')} ({report.get('plan')}) on {report.get('device')} {report.get('precision')}"
          f" ({report.get('backend', 'torch')})")
    if flicker.get("output") is not None:
        ratio = flicker.get("ratio")
        print(f"flicker:  {flicker['output']:.4f} (lanczos {flicker['lanczos_baseline']:.4f}, ratio "
              f"{ratio:.3f})" if ratio is not None else f"flicker:  {flicker['output']:.4f}")
    warp = report.get("warp_error") or {}
    if warp.get("output") is not None:
        base = warp.get("lanczos_baseline")
        print(f"E_warp:   {warp['output']:.5f}" + (f" (lanczos {base:.5f})" if base is not None else ""))
    if report.get("temporal") and report.get("temporal") != "none":
        print(f"temporal: {report['temporal']}")
    grade = ((report.get("quality") or {}).get("grade") or {})
    if isinstance(grade, dict) and grade.get("grade"):
        print(f"grade:    {grade['grade']} ({grade.get('grade_en')}; from {', '.join(grade.get('limiting', []))})")
    print(f"report:   {Path(files.get('summary_json', '')).parent}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key}; "
          "`vup dev` opens the UI)")
    print(f"time:     {outcome.seconds:.1f} s")
    return 0


class _ChunkProgress:
    """One tqdm bar per stage counting chunks, fed by the run's per-chunk events (jobs whose frame totals are only
    known once they run: production plans and reframes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        stage = str(event.get("stage"))
        if stage not in self.bars:
            for other in self.bars.values():
                other.close()
            self.bars[stage] = tqdm(total=int(event.get("chunks") or 0) or None, desc=f"{stage:<11}", unit="chunk")
        bar = self.bars[stage]
        bar.update(1)
        if event.get("reused"):
            bar.set_postfix_str("cached")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_produce(args: argparse.Namespace) -> int:
    from orchestration.launch.runner import run_production
    from stages.production.plan import load_plan, write_example_project

    workspace = _workspace(args)
    if args.example:
        plan_path = write_example_project(Path(args.example).expanduser().resolve())
        print(f"example:  {plan_path} (two image-sequence scenes, three audio tracks)", file=sys.stderr)
    elif args.plan:
        plan_path = Path(args.plan).expanduser().resolve()
    else:
        raise SettingsError("produce: give a plan JSON file, or --example FOLDER to write and run an example plan")
    plan = load_plan(plan_path, output_dir=args.out)
    if not args.quiet:
        print(f"{plan_path.name}: {len(plan.scenes)} scenes -> {plan.canvas[0]}x{plan.canvas[1]} at "
              f"{float(plan.framerate):g} fps; deliverables {', '.join(plan.deliverables)}; into {plan.output_dir}",
              file=sys.stderr)
    progress = _ChunkProgress(enabled=not args.quiet)
    try:
        outcome = run_production(workspace, plan, device=args.device, precision=args.precision, on_event=progress,
                                 max_runtime_hours=args.max_runtime_hours,
                                 log_level="DEBUG" if args.verbose else "WARNING")
    finally:
        progress.close()
    if outcome.report_path:
        report = json.loads(Path(outcome.report_path).read_text(encoding="utf-8"))
        for step in report["steps"]:
            print(f"{step['status']:<8} {step['step']:<16} {step['reason']}")
            for warning in step.get("warnings", []):
                print(f"{'':<8} {'':<16} warning: {warning}")
        print(f"report:   {outcome.report_path}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key} of plans; "
          "`vup dev` opens the UI)")
    if not outcome.success:
        print(f"error: {outcome.error}", file=sys.stderr)
        return 1
    for output in outcome.outputs:
        print(f"output:   {output['path']}")
    print(f"time:     {outcome.seconds:.1f} s")
    return 0


def _read_keyframes(value: str):
    """``--keyframes``: a JSON file's path, or the JSON text itself."""
    text = value.strip()
    if text.startswith("["):
        return text
    path = Path(value).expanduser()
    if not path.is_file():
        raise SettingsError(f"reframe: --keyframes {value} is neither a JSON list nor a file; give a file such as "
                            "keyframes.json or the JSON text '[{\"time\": 0, \"x\": 0, ...}]'")
    return path.read_text(encoding="utf-8")


def cmd_reframe(args: argparse.Namespace) -> int:
    from orchestration.launch.runner import (
        ReframeRequest,
        run_reframe,
        validate_reframe,
    )
    from stages.ops.reframe.crops import describe_target, parse_size

    workspace = _workspace(args)
    request = ReframeRequest(
        input=Path(args.input).expanduser().absolute(), keyframes=_read_keyframes(args.keyframes),
        target_fps=args.target_fps, target=parse_size(args.size), easing=args.easing,
        output=Path(args.output).expanduser() if args.output else None, model=args.model, device=args.device,
        precision=args.precision, max_runtime_hours=args.max_runtime_hours,
    )
    info, keyframes, target, fps = validate_reframe(request)
    if not args.quiet:
        print(f"{request.input.name}: {info.width}x{info.height} {info.avg_fps:.3f} fps, {len(keyframes)} crop "
              f"keyframes ({describe_target(keyframes[0].aspect, request.target)}) -> {target[0]}x{target[1]} at "
              f"{float(fps):g} fps", file=sys.stderr)
    progress = _ChunkProgress(enabled=not args.quiet)
    try:
        outcome = run_reframe(workspace, request, on_event=progress, log_level="DEBUG" if args.verbose else "WARNING",
                              info=info)
    finally:
        progress.close()
    if not outcome.success:
        return _run_failed(outcome, workspace)
    result = outcome.result or {}
    for warning in result.get("warnings", []):
        print(f"warning:  {warning}", file=sys.stderr)
    print(f"output:   {outcome.output}")
    print(f"          {result['width']}x{result['height']}, {result['frame_count']} frames, "
          f"{result['duration']:.3f} s at {float(Fraction(result['fps'])):g} fps, model {result['model']}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key} of reframes)")
    print(f"time:     {outcome.seconds:.1f} s")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from stages.media.probe import probe_video

    info = probe_video(Path(args.input).expanduser().absolute())
    data = info.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for name, value in data.items():
        if name in ("audio_streams", "subtitle_streams"):
            print(f"{name}:")
            for stream in value:
                print("  " + ", ".join(f"{k}={v}" for k, v in stream.items()))
        else:
            print(f"{name}: {value}")
    return 0


_TASK_SHORT = {"super-resolution": "sr", "frame-interpolation": "vfi"}


def _human_size(size: int | None) -> str:
    from stages.store.diskspace import human_bytes

    return "-" if size is None else human_bytes(size)


def _models_store(args: argparse.Namespace, *, allow_download: bool = True):
    from stages.models.store import ModelStore

    return ModelStore(allow_download=allow_download, progress=not getattr(args, "quiet", False))


def _where(status) -> tuple[bool, str]:
    """(present on this machine, where its weights come or would come from) for `models list`."""
    if status.available and status.source != "download":
        return True, status.source
    if status.available:
        return False, "download"
    file = status.entry.file
    return False, "manual" if file is not None and file.manual_urls else "-"


def cmd_models_list(args: argparse.Namespace) -> int:
    rows = _models_store(args).list()
    if args.json:
        out = []
        for s in rows:
            present, where = _where(s)
            entry = s.entry
            out.append({
                "id": entry.id, "task": entry.task, "scale": entry.scale, "architecture": entry.architecture,
                "spandrel_arch": entry.spandrel_arch, "license": entry.license,
                "size": entry.file.size if entry.file else None, "sha256": entry.file.sha256 if entry.file else None,
                "present": present, "from": where, "user": entry.is_user, "available": s.available,
                "source": s.source, "path": str(s.path) if s.path else None, "reason": s.reason,
                "description": entry.description, "tags": list(entry.tags),
            })
        print(json.dumps(out, indent=2))
        return 0
    print(f"  {'id':26} {'task':4} {'scale':>5} {'architecture':15} {'licence':12} {'size':>8} {'present':7} "
          f"{'from':8} description")
    for s in rows:
        present, where = _where(s)
        entry = s.entry
        size = _human_size(entry.file.size if entry.file else None)
        print(f"{'*' if entry.is_user else ' '} {entry.id:26} {_TASK_SHORT.get(entry.task, entry.task):4} "
              f"{'x' + str(entry.scale):>5} {entry.architecture[:15]:15} {entry.license[:12]:12} {size:>8} "
              f"{'yes' if present else 'no':7} {where:8} {entry.description}")
    if any(s.entry.is_user for s in rows):
        print("* imported by you (`vup models import`); `vup models info ID` shows details")
    return 0


def cmd_models_info(args: argparse.Namespace) -> int:
    store = _models_store(args)
    entry = store.entry(args.id)
    status = store.status(entry.id)
    present, where = _where(status)
    record = store.user_record(entry.id)
    ncnn = store.ncnn_files(entry.id)
    file = entry.file
    sha256 = file.sha256 if file is not None else None
    if entry.is_user:
        sha_text = f"{sha256} (recorded at import)"
    elif sha256:
        sha_text = sha256
    else:
        sha_text = "unknown: verified by size + load check"
    data = {
        "id": entry.id, "description": entry.description, "task": entry.task, "architecture": entry.architecture,
        "spandrel_arch": entry.spandrel_arch, "scale": entry.scale, "native_scale": entry.native_scale,
        "family": entry.family, "license": entry.license, "tags": list(entry.tags), "origin": entry.origin,
        "filename": file.filename if file else None, "size": file.size if file else None, "sha256": sha256,
        "urls": list(file.urls) if file else [], "manual_urls": list(file.manual_urls) if file else [],
        "package": ({"pip": entry.package_source.pip_name, "param": entry.package_source.param,
                     "bin": entry.package_source.bin} if entry.package_source else None),
        "present": present, "from": where, "available": status.available, "source": status.source,
        "path": str(status.path) if status.path else None, "reason": status.reason,
        "ncnn": [str(p) for p in ncnn] if ncnn else None,
        "imported": ({"source": record.source, "source_sha256": record.source_sha256, "format": record.format,
                      "imported_at": record.imported_at} if record else None),
        "notes": entry.notes,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    scale = f"x{entry.scale}"
    if entry.native_scale:
        scale += f" (a x{entry.native_scale} network, its output resized to x{entry.scale})"
    lines = [
        ("id", entry.id + ("  (imported by you)" if entry.is_user else "")),
        ("description", entry.description),
        ("task", entry.task),
        ("architecture", f"{entry.architecture} (spandrel: {entry.spandrel_arch})" if entry.spandrel_arch
         else f"{entry.architecture} (the project's own implementation)"),
        ("scale", scale),
        ("family", entry.family),
        ("licence", entry.license),
        ("tags", ", ".join(entry.tags)),
    ]
    if file is not None:
        size = f"{file.size} bytes ({_human_size(file.size)})" if file.size is not None else "unknown"
        lines += [("file", file.filename), ("size", size)]
    lines.append(("sha256", sha_text if file is not None else "- (package files only)"))
    for url in file.urls if file else ():
        lines.append(("url", url))
    for url in file.manual_urls if file else ():
        lines.append(("browser url", (f"{url} (a web page, not a direct download: save the file, then "
                                      "`vup models import FILE`)")))
    if entry.package_source is not None:
        lines.append(("package", (f"{entry.package_source.pip_name}: {entry.package_source.param}, "
                                  f"{entry.package_source.bin} (converted once on first use)")))
    if present:
        lines.append(("status", f"present ({where})"))
    elif status.available:
        lines.append(("status", f"not present; {status.reason}"))
    else:
        lines.append(("status", f"unavailable: {status.reason}"))
    if status.path is not None:
        lines.append(("path", str(status.path)))
    if ncnn:
        lines.append(("ncnn files", f"{ncnn[0]}, {ncnn[1]}"))
    if record is not None:
        lines.append(("imported from", f"{record.source} ({record.format}, {record.imported_at})"))
    lines.append(("notes", entry.notes or "-"))
    for name, value in lines:
        print(f"{name + ':':14} {value}")
    return 0


def cmd_models_download(args: argparse.Namespace) -> int:
    store = _models_store(args)
    if args.all and args.ids:
        raise SettingsError("models download: pass model ids or --all, not both")
    if not args.all and not args.ids:
        raise SettingsError("models download: name the model(s) to fetch, e.g. `vup models download "
                            "realesr-general-x4v3`, or pass --all")
    ids = [model_id for model_id, entry in store.catalog.items() if not entry.is_user] if args.all else args.ids
    for model_id in ids:
        store.entry(model_id)  # unknown ids fail before anything is fetched
    if len(ids) == 1 and not args.all:
        resolved = store.resolve(ids[0])
        print(f"{resolved.model_id}: {resolved.path} ({resolved.source})")
        return 0
    failed = 0
    for model_id in ids:
        entry = store.entry(model_id)
        file = entry.file
        if file is not None and not file.urls and file.manual_urls and not store.present(model_id):
            print(f"skipped {model_id}: no direct download; open {file.manual_urls[0]} in a browser, save the "
                  "file, then `vup models import FILE`")
            continue
        try:
            resolved = store.resolve(model_id)
        except StageError as exc:
            failed += 1
            print(f"FAILED  {model_id}: {exc}")
            continue
        print(f"{resolved.model_id}: {resolved.path} ({resolved.source})")
    return 1 if failed else 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    store = _models_store(args)
    ids = args.ids or [model_id for model_id in store.catalog if store.present(model_id)]
    for model_id in ids:
        store.entry(model_id)
    if not ids:
        print("nothing to verify: no model weights on this machine (`vup models download ID` fetches one)")
        return 0
    failed = total = 0
    for model_id in ids:
        for result in store.verify(model_id):
            total += 1
            failed += not result.ok
            where = f"  [{result.source}: {result.path}]" if result.path is not None else ""
            print(f"{'OK' if result.ok else 'FAILED':6}  {model_id:26}  {result.detail}{where}")
    print(f"{total - failed} OK, {failed} failed")
    return 1 if failed else 0


def cmd_models_import(args: argparse.Namespace) -> int:
    result = _models_store(args).import_model(args.path, model_id=args.id, description=args.description,
                                              license=args.license, force=args.force, bin_path=args.bin)
    entry = result.entry
    if result.builtin:
        print(f"recognised:   the file of the built-in model {entry.id} (checked against the catalog)")
    else:
        print(f"imported:     {entry.id}" + ("  (replaced the earlier import)" if result.replaced else ""))
    print(f"architecture: {result.architecture_name} ({entry.architecture}, spandrel id {entry.spandrel_arch})")
    print(f"scale:        x{entry.scale}" + (f" (a x{entry.native_scale} network resized)" if entry.native_scale
                                             else ""))
    print(f"size:         {result.size} bytes ({_human_size(result.size)})")
    print(f"sha256:       {result.sha256}")
    print(f"stored in:    {result.path}")
    if result.ncnn is not None:
        print(f"ncnn files:   {result.ncnn[0]}, {result.ncnn[1]}")
    print(f"licence:      {entry.license}")
    print(f"use it:       vup enhance VIDEO --model {entry.id} --scale {entry.scale}")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    store = _models_store(args)
    plan = store.plan_removal(args.id)
    for path, why in plan.kept:
        print(f"kept:     {path} ({why})")
    if plan.empty:
        print(f"nothing to delete for {plan.model_id}: none of its files are in the cache ({store.cache_dir})")
        return 0
    count = f"{len(plan.files)} file{'s' if len(plan.files) != 1 else ''}"
    what = f"{plan.folder} ({count}, {_human_size(plan.size)})" if plan.folder else "no files"
    print(f"delete:   {what}" + (" and its entry in the user catalog" if plan.user else ""))
    if not args.yes:
        if not sys.stdin.isatty():
            raise SettingsError(f"models remove: not deleting {plan.model_id} without confirmation; input is not "
                                "a terminal, so pass --yes")
        try:
            answer = input(f"Delete {plan.model_id}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("cancelled: nothing deleted")
            return 0
    store.remove(plan)
    print(f"removed:  {plan.model_id}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from orchestration.launch.serve import run_dev

    return run_dev(_workspace(args), args.host, args.port, public=args.dagster_public)


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestration.launch.serve import run_serve

    return run_serve(_workspace(args), host=args.host, port=args.port, dagster_host=args.dagster_host,
                     dagster_port=args.dagster_port, auth=args.auth, max_upload_mb=args.max_upload_mb,
                     dagster_log=not args.verbose, dagster_public=args.dagster_public)


def cmd_demo(args: argparse.Namespace) -> int:
    from stages.quality.samples import make_sample_clip

    workspace = _workspace(args)
    folder = workspace.root / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "sample.mp4"
    make_sample_clip(clip, width=args.width, height=args.height, seconds=args.seconds, fps=24, audio=True)
    print(f"sample:   {clip} ({args.width}x{args.height}, {args.seconds} s, 24 fps, with audio)")
    args.input = str(clip)
    args.output = str(folder / f"sample_x{args.scale}.mp4")
    return cmd_enhance(args)


BENCHMARKS = {
    "throughput": "benchmarks.throughput",
    "side-by-side": "benchmarks.side_by_side",
    "memory": "benchmarks.memory",
    "quality": "benchmarks.quality",
    "eta": "benchmarks.eta",
    "badinput": "benchmarks.badinput",
    "load": "benchmarks.load",
    "faults": "benchmarks.faults",
}


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    name, *rest = args.bench_args or ["side-by-side"]
    if name not in BENCHMARKS:
        print(f"error: bench: unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    return importlib.import_module(BENCHMARKS[name]).main(rest)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="state folder (default: $VUP_WORKSPACE or the per-user data folder)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where and how long a job runs: --device, --precision, --max-runtime-hours (enhance, produce, reframe)."""
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps, xpu or cpu")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--max-runtime-hours", type=float, default=None, metavar="H",
                        help="stop the run if it takes longer (a hung step); default VUP_MAX_RUNTIME_HOURS or 24, "
                             "0: no limit")


def _add_enhance_options(parser: argparse.ArgumentParser) -> None:
    from stages.models.catalog import DEFAULT_UPSCALE_MODEL

    parser.add_argument("--model", default=DEFAULT_UPSCALE_MODEL, help="catalog id (see `vup models list`)")
    parser.add_argument("--model-path", help="any .pth/.safetensors model spandrel recognises (wins over --model)")
    parser.add_argument("--scale", type=int, default=4, help="2, 4 or 8 (default 4); 1 = no upscaling")
    parser.add_argument("--tile", type=int, default=0, help="input tile size in pixels, 0 = automatic")
    parser.add_argument("--tile-overlap", type=int, default=16, help="tile overlap in input pixels (default 16)")
    parser.add_argument("--batch", type=int, default=0, help="frames per model call, 0 = automatic")
    _add_run_options(parser)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "ncnn"),
                        help="inference engine: PyTorch, or ncnn (CPU, or Vulkan GPUs of any vendor); auto picks "
                             "the faster here and says why")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (off by default: slower on the CPUs measured; try it on GPUs)")
    parser.add_argument("--interpolate", type=int, default=None, metavar="N",
                        help="frame interpolation by a factor of 2, 4 or 8 (output never above 120 fps)")
    parser.add_argument("--fps", default=None, help="frame interpolation to a target rate, e.g. 60 or 59.94 (<= 120)")
    parser.add_argument("--interp-method", default="auto",
                        choices=("auto", "rife", "flow", "blend", "minterpolate"),
                        help="auto: RIFE when its weights are present, else optical flow (default)")
    parser.add_argument("--dedup", action="store_true",
                        help="drop duplicate frames before interpolating (anime on twos, screen recordings)")
    parser.add_argument("--temporal", default="none", choices=("none", "ema", "flow", "auto", "seedvr2"),
                        help="temporal coherence against flicker: flow (optical flow from the source, occlusion-"
                             "aware), ema (motion-gated average), auto, none (default); seedvr2 is not available yet")
    parser.add_argument("--temporal-strength", type=float, default=0.6,
                        help="flow: largest weight of the previous frame (default 0.6)")
    parser.add_argument("--reference", default=None, metavar="VIDEO",
                        help="a reference video at the output size (e.g. the original before degradation): the "
                             "report adds PSNR/SSIM (Y, RGB) per frame, VMAF and a grade")
    parser.add_argument("--no-vmaf", action="store_true", help="with --reference: skip VMAF (faster)")
    parser.add_argument("--codec", default="h264", help="h264 or h265")
    parser.add_argument("--crf", type=int, default=18, help="quality, 0 (lossless) to 51 (default 18)")
    parser.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    parser.add_argument("--pix-fmt", default=None, help="output pixel format (default yuv420p, 10-bit for 10-bit input)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length in seconds (default 10)")
    parser.add_argument("--no-scene-detection", action="store_true", help="do not move chunk cuts to scene changes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vup", description="Video Upscaler Pro: AI video enhancement on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)

    enhance = sub.add_parser("enhance", help="upscale a video")
    enhance.add_argument("input", help="source video")
    enhance.add_argument("-o", "--output", help="output file (.mp4, .mkv, .mov); default under the workspace")
    _add_enhance_options(enhance)
    _add_common(enhance)
    enhance.set_defaults(func=cmd_enhance)

    probe = sub.add_parser("probe", help="show what a video contains")
    probe.add_argument("input")
    probe.add_argument("--json", action="store_true")
    _add_common(probe)
    probe.set_defaults(func=cmd_probe)

    models = sub.add_parser("models", help="model catalog: list, info, download, verify, import, remove")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_list = models_sub.add_parser("list", help="list the catalog and where each model's weights are")
    models_list.add_argument("--json", action="store_true")
    _add_common(models_list)
    models_list.set_defaults(func=cmd_models_list)
    models_info = models_sub.add_parser("info", help="every field of one model, its URLs, checksum and status")
    models_info.add_argument("id", help="model id (see `vup models list`)")
    models_info.add_argument("--json", action="store_true")
    _add_common(models_info)
    models_info.set_defaults(func=cmd_models_info)
    models_download = models_sub.add_parser("download", help="fetch weights now (download, or convert a package)")
    models_download.add_argument("ids", nargs="*", metavar="ID", help="model id(s)")
    models_download.add_argument("--all", action="store_true", help="every built-in model (several GB)")
    _add_common(models_download)
    models_download.set_defaults(func=cmd_models_download)
    models_verify = models_sub.add_parser("verify", help="check the size and sha256 of the weights on this machine")
    models_verify.add_argument("ids", nargs="*", metavar="ID", help="model id(s); default: every present model")
    _add_common(models_verify)
    models_verify.set_defaults(func=cmd_models_verify)
    models_import = models_sub.add_parser(
        "import", help="add a .pth/.safetensors/.pt/.ckpt or ncnn .param model to your catalog")
    models_import.add_argument("path", help="the model file (for ncnn: the .param, with its .bin next to it)")
    models_import.add_argument("--id", help="model id (default: from the file name)")
    models_import.add_argument("--description", "--name", dest="description",
                               help="one line shown in `vup models list`")
    models_import.add_argument("--license", help="the model's licence (default: unknown)")
    models_import.add_argument("--bin", help="the ncnn .bin when it is not next to the .param")
    models_import.add_argument("--force", action="store_true", help="replace an imported model with the same id")
    _add_common(models_import)
    models_import.set_defaults(func=cmd_models_import)
    models_remove = models_sub.add_parser("remove", help="delete a model's files from the cache (and an import)")
    models_remove.add_argument("id", help="model id")
    models_remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _add_common(models_remove)
    models_remove.set_defaults(func=cmd_models_remove)

    dev = sub.add_parser("dev", help="start the Dagster webserver and daemon for this workspace")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--dagster-public", action="store_true",
                     help="allow a non-loopback --host: only behind your own login (the Dagster UI has none)")
    _add_common(dev)
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="start the web page, the Dagster webserver and the daemon (Ctrl-C stops all)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="page bind address (default 127.0.0.1: this machine only; any other needs --auth)")
    serve.add_argument("--port", type=int, default=7860, help="page port (default 7860)")
    serve.add_argument("--dagster-host", default="127.0.0.1",
                       help="Dagster UI bind address (default 127.0.0.1; it has no login: any other needs "
                            "--dagster-public)")
    serve.add_argument("--dagster-public", action="store_true",
                       help="allow a non-loopback --dagster-host: only behind your own login (reverse proxy)")
    serve.add_argument("--dagster-port", type=int, default=3000, help="Dagster UI port (default 3000)")
    serve.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                       help="require this login on the page (several: comma-separated); default $VUP_AUTH")
    serve.add_argument("--max-upload-mb", type=float, default=None,
                       help="largest upload in MB (default 2048, or $VUP_MAX_UPLOAD_MB)")
    _add_common(serve)
    serve.set_defaults(func=cmd_serve)

    produce = sub.add_parser("produce", help="run a production plan: image sequences -> deliverables + report.json")
    produce.add_argument("plan", nargs="?", help="the plan JSON file (see the README, \"Production plans\")")
    produce.add_argument("--out", default=None, help="output folder (default: the plan's output_dir)")
    produce.add_argument("--example", metavar="FOLDER", default=None,
                         help="write an example project (two scenes, three audio tracks, plan.json) into FOLDER and "
                              "run it")
    _add_run_options(produce)
    _add_common(produce)
    produce.set_defaults(func=cmd_produce)

    reframe = sub.add_parser("reframe", help="reframe a video with crop keyframes and upscale the crop")
    reframe.add_argument("input", help="source video")
    reframe.add_argument("--keyframes", required=True,
                         help="crop keyframes: a JSON file or the JSON text, [{\"time\": s, \"x\", \"y\", "
                              "\"width\", \"height\"}, ...] in source pixels")
    reframe.add_argument("-o", "--output", help="output .mp4 (default under the workspace)")
    reframe.add_argument("--target-fps", default="30", help="output frame rate (default 30)")
    reframe.add_argument("--size", default=None, metavar="WxH",
                         help="output size (default from the crop's aspect: 16:9 -> 3840x2160, 9:16 -> 1080x1920)")
    reframe.add_argument("--easing", default="linear", choices=("linear", "ease"),
                         help="how the crop moves between keyframes (default linear)")
    reframe.add_argument("--model", default=None, help="upscaling model id (default the catalog default)")
    _add_run_options(reframe)
    _add_common(reframe)
    reframe.set_defaults(func=cmd_reframe)

    demo = sub.add_parser("demo", help="make a sample clip and enhance it end to end")
    demo.add_argument("--width", type=int, default=320)
    demo.add_argument("--height", type=int, default=180)
    demo.add_argument("--seconds", type=float, default=2.0)
    _add_enhance_options(demo)
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks (print figures)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER,
                       help="side-by-side (default), throughput or memory, then that benchmark's arguments")
    bench.set_defaults(func=cmd_bench, workspace=None, quiet=False, verbose=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("DAGSTER_CLI_LOG_LEVEL", "WARNING")
        logging.getLogger("dagster").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept and reused by the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
