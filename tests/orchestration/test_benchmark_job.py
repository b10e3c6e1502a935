"""The quality benchmark as Dagster assets: definitions, schedule, and a quick run of benchmark_job."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterInstance, DefaultScheduleStatus, Definitions

from orchestration.definitions import build_definitions, defs
from orchestration.graphs.benchmark import BenchmarkConfig, benchmark_run_config
from orchestration.resources.workspace import prepare_dagster_home

BENCH_ASSETS = ("benchmark_cases", "benchmark_results", "benchmark_report")


def test_definitions_have_benchmark_job_and_schedule():
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("benchmark_job")
    assert job.partitions_def is None
    assert defs.resolve_job_def("enhance_job").partitions_def is not None
    schedule = defs.resolve_schedule_def("benchmark_job_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    graph = defs.resolve_asset_graph()
    for name in BENCH_ASSETS:
        node = graph.get(AssetKey(name))
        assert node.description and node.partitions_def is None
        assert node.group_name == "benchmark"
    assert AssetKey("benchmark_results") in graph.get(AssetKey("benchmark_report")).parent_keys


def test_quick_benchmark_job_writes_report(workspace):
    prepare_dagster_home(workspace)
    config = BenchmarkConfig(use_shared=False, generated_width=64, generated_height=48, max_frames=4,
                             degradations=["bicubic"], include_vmaf=False, interpolators=["flow", "blend"])
    job = build_definitions(str(workspace.root)).resolve_job_def("benchmark_job")
    result = job.execute_in_process(run_config=benchmark_run_config(config), instance=DagsterInstance.get())
    assert result.success
    report = result.output_for_node("benchmark_report")
    folder = Path(report["folder"])
    assert folder.parent == workspace.root / "benchmarks" / "reports"
    assert {Path(p).name for p in report["paths"].values()} == {"quality.parquet", "quality.md", "quality.png"}
    assert all(Path(p).is_file() for p in report["paths"].values())
    assert list((workspace.root / "benchmarks" / "cases").glob("generated-bicubic-*.npz"))
    rows = result.output_for_node("benchmark_results")
    assert {r["method"] for r in rows if r["task"] == "interpolate"} == {"flow", "blend"}
    materializations = result.asset_materializations_for_node("benchmark_report")
    metadata = materializations[0].metadata
    assert "report" in metadata and "markdown_path" in metadata
    assert "interpolation_target_met" in metadata
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observations
