"""`vup produce` and `vup reframe`: run a production plan (image sequences to deliverables), and reframe a video
with crop keyframes (jobs whose progress is counted in chunks)."""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

from orchestration.cli.common import _ChunkProgress, _run_failed, _workspace
from stages.errors import SettingsError


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
