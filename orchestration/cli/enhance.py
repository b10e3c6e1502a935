"""`vup enhance`, `vup probe` and `vup demo`: upscale (and interpolate) one video, show what a video contains,
make a sample clip and enhance it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestration.cli.common import _Progress, _run_failed, _workspace


def cmd_enhance(args: argparse.Namespace) -> int:
    from orchestration.launch.request import EnhanceRequest, crf_for_codec, output_for_codec
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
    from stages.ops.upscale.selection import decide_model, select_model

    workspace = _workspace(args)
    request = EnhanceRequest(
        input=Path(args.input).expanduser().absolute(),  # absolute: ffmpeg reads 'e:f.mp4' as a protocol
        output=output_for_codec(Path(args.output).expanduser() if args.output else None, args.codec),
        chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds, scene_detection=not args.no_scene_detection,
                              deinterlace=args.deinterlace),
        upscale=UpscaleConfig(
            model=args.model, model_path=args.model_path, scale=args.scale, tile=args.tile,
            tile_overlap=args.tile_overlap, batch=args.batch, backend=args.backend, compile=args.compile,
        ),
        encode=EncodeConfig(codec=args.codec, crf=crf_for_codec(args.codec, args.crf), preset=args.preset,
                            pix_fmt=args.pix_fmt,
                            square_pixels=args.square_pixels),
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
    from stages.media.aspect import format_ratio
    from stages.media.deinterlace import decoded_view, describe_deinterlace
    from stages.media.encode import output_geometry

    view = decoded_view(info, request.chunk.deinterlace)  # field-rate deinterlacing doubles the frames and the rate
    out_w, out_h, out_sar = output_geometry(info, info.width * args.scale, info.height * args.scale,
                                            args.square_pixels)
    geometry = (f" (pixels {format_ratio(out_sar)}, shown {format_ratio(info.display_aspect)})" if out_sar != 1
                else f" (square pixels, shown {format_ratio(info.display_aspect)})" if info.sample_aspect != 1 else "")
    if args.scale == 1:
        using = "no upscaling (scale 1)"
    else:
        # Fetch (convert or download) the weights here, with a progress bar, before the run starts.
        store = ModelStore(progress=not args.quiet)
        if args.model_path:
            decision = None
            model_id = args.model
        else:
            from stages.device import choose_device
            from stages.ops.upscale.content import classify_video

            kind = choose_device(args.device, args.precision).kind
            decision = decide_model(store, args.model, device_kind=kind,
                                    content=lambda: classify_video(request.input, info.duration))
            model_id = decision.model_id
        selection = select_model(store, model_id, args.scale, args.model_path)
        if not args.quiet:
            if decision is not None and decision.reason != "requested":
                print(f"model: {decision.reason}", file=sys.stderr)
            if decision is not None and decision.fallback:
                print(decision.fallback, file=sys.stderr)
            if selection.note:
                print(selection.note, file=sys.stderr)
        using = f"with {selection.model_id} ({selection.source})"
    if not args.quiet:
        print(
            f"{request.input.name}: {info.width}x{info.height} {info.avg_fps:.3f} fps, {info.frame_count} frames "
            f"-> {out_w}x{out_h}{geometry} {using}",
            file=sys.stderr,
        )
        if info.interlaced or view.deinterlace != "off":
            print(f"deinterlace: {describe_deinterlace(view)}", file=sys.stderr)
    interp = request.interpolate.to_settings()
    if interp.enabled:
        from stages.ops.interpolate.timing import rational_fps

        source_fps = rational_fps(view.avg_fps)
        out_fps = interp.output_fps(source_fps)
        if not args.quiet:
            print(f"interpolation: {float(source_fps):.3f} fps -> {float(out_fps):.3f} fps ({interp.method})",
                  file=sys.stderr)
    if not args.quiet and args.codec not in ("h264", "h265"):
        from stages.media.codecs import describe_output

        print(f"encode: {describe_output(args.codec)}", file=sys.stderr)
    from orchestration.graphs.chain import plan_shapes
    from orchestration.graphs.enhance_steps import ENHANCE_CHAIN

    shapes = plan_shapes(ENHANCE_CHAIN, request.step_configs(), view)  # one bar per step that does work
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
          f"{report['output']['duration_s']:.3f} s, {report['output']['codec']}"
          + (f", pixels {report['output']['sample_aspect']}" if report["output"].get("sample_aspect", "1:1") != "1:1"
             else ""))
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
        if str(grade.get("scope", "")).startswith("stability only"):
            print(f"          {grade['scope']}")
    print(f"report:   {Path(files.get('summary_json', '')).parent}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key}; "
          "`vup dev` opens the UI)")
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
