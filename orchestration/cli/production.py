"""`vup produce` and `vup reframe`: run a production plan (image sequences to deliverables; a plan file, or a
carrier drive root with ``--drive-root``; ``--dry-run`` checks without writing), and reframe a video with crop
keyframes (jobs whose progress is counted in chunks)."""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.cli.common import _ChunkProgress, _run_failed, _workspace
from stages.errors import SettingsError, StageError

if TYPE_CHECKING:
    from stages.production.plan import ProductionPlan


def cmd_produce(args: argparse.Namespace) -> int:
    """`vup produce PLAN.json`, `vup produce --example DIR` or `vup produce --drive-root DIR` (the carrier
    layout: stages.production.carrier); ``--dry-run`` checks everything and writes nothing."""
    if args.drive_root:
        return _produce_drive_root(args)
    for flag, value in (("--project-name", args.project_name), ("--components-dir", args.components_dir),
                        ("--output-dir", args.output_dir), ("--production-plan", args.production_plan)):
        if value is not None:
            raise SettingsError(f"produce: {flag} belongs to the carrier layout; add --drive-root DIR (or give the "
                                "plan file and --out instead)")
    from stages.production.plan import load_plan, write_example_project

    if args.example and args.dry_run:
        raise SettingsError("produce: --example writes a project; run it without --dry-run")
    if args.example:
        workspace = _workspace(args)
        plan_path = write_example_project(Path(args.example).expanduser().resolve())
        print(f"example:  {plan_path} (two image-sequence scenes, three audio tracks)", file=sys.stderr)
    elif args.plan:
        plan_path = Path(args.plan).expanduser().resolve()
    else:
        raise SettingsError("produce: give a plan JSON file, --example FOLDER to write and run an example plan, or "
                            "--drive-root DIR for a carrier drive root")
    plan = _switches(load_plan(plan_path, output_dir=args.out), args)
    device = _device(args)
    if not args.quiet or args.dry_run:
        print(f"{plan_path.name}: {len(plan.scenes)} scenes -> {plan.canvas[0]}x{plan.canvas[1]} at "
              f"{float(plan.framerate):g} fps; deliverables {', '.join(plan.deliverables)}; into {plan.output_dir}",
              file=sys.stderr)
        for warning in plan.warnings:
            print(f"warning:  {warning}", file=sys.stderr)
    if args.dry_run:
        return _dry_run(plan, args)
    if not args.example:
        workspace = _workspace(args)
    outcome = _run_plan(workspace, plan, device, args)
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key} of plans; "
          "`vup dev` opens the UI)")
    return _finish(outcome)


def _switches(plan: ProductionPlan, args: argparse.Namespace) -> ProductionPlan:
    """``plan`` with --no-upscale (the edit's Lanczos fit only) and --no-rife (the optical-flow interpolator)."""
    import dataclasses

    changes: dict[str, Any] = {}
    if args.no_upscale:
        changes["upscale_enabled"] = False
    if args.no_rife and plan.interpolation_method in ("auto", "rife"):
        changes["interpolation_method"] = "flow"
    return dataclasses.replace(plan, **changes) if changes else plan


def _device(args: argparse.Namespace) -> str:
    """--device, or cpu with --cpu-only (which a GPU --device contradicts)."""
    if not args.cpu_only:
        return args.device
    if args.device not in ("auto", "cpu"):
        raise SettingsError(f"produce: --cpu-only contradicts --device {args.device}; give one of them")
    return "cpu"


def _print_steps(report_path: str | None) -> None:
    if not report_path:
        return
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    for step in report["steps"]:
        print(f"{step['status']:<8} {step['step']:<16} {step['reason']}")
        for warning in step.get("warnings", []):
            print(f"{'':<8} {'':<16} warning: {warning}")
    print(f"report:   {report_path}")


def _dry_run(plan: ProductionPlan, args: argparse.Namespace) -> int:
    """Print every preflight check of ``plan``; 0 when none failed, else SettingsError (exit 2). Writes nothing."""
    from orchestration.resources.workspace import default_workspace
    from stages.production.preflight import preflight

    workspace = Path(args.workspace).expanduser().resolve() if args.workspace else default_workspace()
    checks = preflight(plan, workspace)
    for check in checks.checks:
        print(f"{check.status:<8} {check.name:<24} {check.message}")
    if not checks.ok:
        failed = checks.failures
        raise SettingsError(f"produce: dry run: {len(failed)} check(s) failed ({failed[0].name}: "
                            f"{failed[0].message}); nothing was written")
    print("dry run:  every check passed; nothing was written")
    return 0


def _produce_drive_root(args: argparse.Namespace) -> int:
    """`vup produce --drive-root DIR`: the plan and components under DIR, the outputs in DIR/OUT_FINAL named
    FINAL_OUTPUT_<project>.*, and carrier_report.json beside report.json (also when the run is refused)."""
    from stages.production.carrier import (
        CARRIER_REPORT,
        OUTPUT_DIR,
        carrier_plan,
        default_project,
        drive_layout,
        failed_validation,
        output_filename,
        project_name,
        write_carrier_report,
    )
    from stages.production.plan import load_plan
    from stages.production.preflight import preflight

    if args.plan or args.example or args.out:
        raise SettingsError("produce: with --drive-root the plan is found in the drive root (or give "
                            "--production-plan FILE) and the outputs go to --output-dir; leave out the plan "
                            "argument, --example and --out")
    root = Path(args.drive_root).expanduser().resolve()
    project = project_name(args.project_name) if args.project_name is not None else None
    try:
        layout = drive_layout(root, components_dir=args.components_dir, output_dir=args.output_dir,
                              plan=args.production_plan)
        project = project or _named_in_plan(layout.plan_path) or default_project(root)
        plan = load_plan(layout.plan_path, output_dir=layout.output_dir, base_dir=layout.components_dir)
        plan = carrier_plan(plan, project, output_dir=layout.output_dir, upscale=not args.no_upscale,
                            rife=not args.no_rife)
        device = _device(args)
        print(f"{layout.plan_path}: {len(plan.scenes)} scenes from {layout.components_dir} -> "
              f"{plan.canvas[0]}x{plan.canvas[1]} at {float(plan.framerate):g} fps; "
              f"{', '.join(output_filename(plan, k) for k in plan.deliverables)} into {plan.output_dir}",
              file=sys.stderr)
        for note in (*layout.notes, *plan.warnings):
            print(f"warning:  {note}", file=sys.stderr)
        from orchestration.resources.workspace import default_workspace

        workspace_root = Path(args.workspace).expanduser().resolve() if args.workspace else default_workspace()
        checks = preflight(plan, workspace_root)
        for check in checks.checks:
            if args.dry_run or args.verbose or check.status != "ok":
                print(f"{check.status:<8} {check.name:<24} {check.message}",
                      file=sys.stdout if args.dry_run else sys.stderr)
        if not checks.ok:
            failed = checks.failures
            raise SettingsError(f"produce: {len(failed)} check(s) failed before the run ({failed[0].name}: "
                                f"{failed[0].message})" + ("; nothing was written" if args.dry_run else ""))
    except StageError as exc:
        if not args.dry_run and root.is_dir():
            out = Path(args.output_dir).expanduser() if args.output_dir else Path(OUTPUT_DIR)
            folder = out if out.is_absolute() else root / out
            try:
                path = write_carrier_report(folder, failed_validation(project or default_project(root), str(exc)))
            except OSError as write_error:  # the refusal matters more
                print(f"warning:  could not write {CARRIER_REPORT} in {folder} ({write_error})", file=sys.stderr)
            else:
                print(f"carrier:  {path} (status failed, step validate)", file=sys.stderr)
        raise
    if args.dry_run:
        print("dry run:  every check passed; nothing was written")
        return 0
    workspace = _workspace(args)
    outcome = _run_plan(workspace, plan, device, args)
    carrier = Path(plan.output_dir) / CARRIER_REPORT
    if not outcome.success and _report_run(carrier) != outcome.run_id:  # stopped before any step could say so
        write_carrier_report(plan.output_dir, failed_validation(plan.name, outcome.error or "the run failed") | {
            "failed_step": "run", "run_id": outcome.run_id})
    print(f"carrier:  {carrier}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key} of plans)")
    return _finish(outcome)


def _named_in_plan(path: Path) -> str | None:
    """The project name the plan file gives (``project`` or ``name``), if any."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_plan says what is wrong with it
    name = data.get("project", data.get("name")) if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def _report_run(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


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
    from stages.ops.reframe.crops import describe_target, display_aspect, parse_size

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
              f"keyframes ({describe_target(display_aspect(keyframes[0], info.sample_aspect), request.target)}) -> "
              f"{target[0]}x{target[1]} at "
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


def _run_plan(workspace: Any, plan: Any, device: str, args: argparse.Namespace) -> Any:
    """Run ``production_job`` on ``plan`` with a progress bar per stage, print its steps, return the outcome."""
    from orchestration.launch.runner import run_production

    progress = _ChunkProgress(enabled=not args.quiet)
    try:
        outcome = run_production(workspace, plan, device=device, precision=args.precision, on_event=progress,
                                 max_runtime_hours=args.max_runtime_hours,
                                 log_level="DEBUG" if args.verbose else "WARNING")
    finally:
        progress.close()
    _print_steps(outcome.report_path)
    return outcome


def _finish(outcome: Any) -> int:
    """Print the run's error, or its outputs and time; the exit code (1: the run failed)."""
    if not outcome.success:
        print(f"error: {outcome.error}", file=sys.stderr)
        return 1
    for output in outcome.outputs:
        print(f"output:   {output['path']}")
    print(f"time:     {outcome.seconds:.1f} s")
    return 0
