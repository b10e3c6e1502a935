"""Quality benchmark: runs ``benchmark_job`` in this process against the workspace's Dagster instance (so the
run shows in the Dagster UI) and prints the Markdown report and the paths of its files.

    python -m benchmarks.quality [--max-frames 10] [--no-vmaf] [--quick] [--workspace DIR]
                                 [--shared-dir DIR] [--models realesr-animevideov3,...]
    vup bench quality ...

Cases, methods, metrics and targets: see :mod:`stages.quality.benchmark_cases`, :mod:`stages.quality.benchmark`
and :mod:`stages.quality.benchmark_report`. The report lands under ``<workspace>/benchmarks/reports/<timestamp>/``
(quality.parquet, quality.md, quality.png). Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUICK_FRAMES = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vup bench quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-frames", type=int, default=None, help="frames per sequence (default 10; quick 5)")
    parser.add_argument("--no-vmaf", action="store_true", help="leave VMAF out")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run: the generated 64x48 sequence only, 5 frames")
    parser.add_argument("--workspace", help="state folder (default: $VUP_WORKSPACE or the per-user data folder)")
    parser.add_argument("--shared-dir", help="folder with testdata/vid4/GT (default: $VUP_SHARED_DIR or ../shared)")
    parser.add_argument("--models", help="comma-separated catalog model ids (default realesr-animevideov3)")
    return parser


def config_from_args(args: argparse.Namespace):
    """The :class:`orchestration.graphs.benchmark.BenchmarkConfig` the options ask for."""
    from orchestration.graphs.benchmark import BenchmarkConfig

    values: dict = {"include_vmaf": not args.no_vmaf}
    if args.quick:
        values.update(use_shared=False, generated_width=64, generated_height=48, max_frames=QUICK_FRAMES)
    if args.max_frames is not None:
        if args.max_frames < 2:
            raise SystemExit("error: bench quality: --max-frames must be at least 2")
        values["max_frames"] = args.max_frames
    if args.shared_dir:
        values["shared_dir"] = args.shared_dir
    if args.models:
        values["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    return BenchmarkConfig(**values)


def run(args: argparse.Namespace) -> tuple[bool, dict | None, str | None]:
    """Run ``benchmark_job``; returns ``(success, report output, error)``."""
    from dagster import DagsterInstance

    from orchestration.definitions import build_definitions
    from orchestration.graphs.benchmark import benchmark_run_config
    from orchestration.launch.runner import _error_message
    from orchestration.resources.workspace import (
        Workspace,
        default_workspace,
        prepare_dagster_home,
    )

    workspace = Workspace(Path(args.workspace).expanduser() if args.workspace else default_workspace()).ensure()
    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    defs = build_definitions(str(workspace.root))
    job = defs.resolve_job_def("benchmark_job")
    result = job.execute_in_process(
        run_config={**benchmark_run_config(config_from_args(args)),
                    "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        instance=instance,
        raise_on_error=False,
        tags={"vup/launched_by": "bench"},
    )
    if not result.success:
        return False, None, _error_message(result)
    return True, result.output_for_node("benchmark_report"), None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    success, report, error = run(args)
    if not success:
        print(f"error: bench quality: {error}", file=sys.stderr)
        return 1
    print(Path(report["paths"]["markdown"]).read_text(encoding="utf-8"))
    for name, path in report["paths"].items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
