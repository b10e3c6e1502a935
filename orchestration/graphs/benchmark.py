"""The quality benchmark as assets (group ``benchmark``, not partitioned): cases, results, report.

``benchmark_job`` materialises the three; ``benchmark_schedule`` runs it weekly (stopped until turned on in the
UI). The logic lives in :mod:`stages.quality.benchmark_cases`, :mod:`stages.quality.benchmark` (the suite) and
:mod:`stages.quality.benchmark_report`; these assets cache the degraded inputs under ``<workspace>/benchmarks/``
and write each report under ``<workspace>/benchmarks/reports/<timestamp>/``.
"""

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)
from pydantic import Field

from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from stages.quality.benchmark import (
    COHERENCE_METHODS,
    DEFAULT_MODELS,
    INTERPOLATORS,
    MAX_MODELS,
    present_models,
    run_suite,
)
from stages.quality.benchmark_cases import DEGRADATIONS, Case, make_cases
from stages.quality.benchmark_report import (
    compute_targets,
    machine_header,
    markdown_table,
    target_figures,
    targets_markdown,
    write_suite_report,
)

BENCHMARK_GROUP = "benchmark"
REPO = Path(__file__).resolve().parents[2]


def default_shared_dir() -> str | None:
    """``VUP_SHARED_DIR`` if set, else ``../shared`` next to the repository when it exists, else None."""
    env = os.environ.get("VUP_SHARED_DIR")
    if env:
        return env
    candidate = REPO.parent / "shared"
    return str(candidate) if candidate.is_dir() else None


class BenchmarkConfig(Config):
    """Settings of the quality benchmark (give the same to ``benchmark_cases`` and ``benchmark_results``:
    :func:`benchmark_run_config`)."""

    shared_dir: str | None = None
    """Folder holding ``testdata/vid4/GT``; None: ``VUP_SHARED_DIR`` or ``../shared`` next to the repo."""
    max_frames: int = 10
    use_shared: bool = True
    """False: the generated sequence only."""
    generated_width: int = 256
    generated_height: int = 192
    degradations: list[str] = Field(default_factory=lambda: list(DEGRADATIONS))
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    """Catalog super-resolution models to run when their weights are present (never downloaded; at most 2)."""
    coherence: list[str] = Field(default_factory=lambda: list(COHERENCE_METHODS))
    interpolators: list[str] = Field(default_factory=lambda: list(INTERPOLATORS))
    include_vmaf: bool = True

    def resolved_shared_dir(self) -> Path | None:
        if not self.use_shared:
            return None
        folder = self.shared_dir or default_shared_dir()
        return Path(folder) if folder else None


def benchmark_run_config(config: BenchmarkConfig) -> dict[str, Any]:
    """Run config giving ``config`` to every benchmark asset that takes it."""
    values = config.model_dump()
    return {"ops": {"benchmark_cases": {"config": values}, "benchmark_results": {"config": values}}}


@asset(group_name=BENCHMARK_GROUP, kinds={"python"})
def benchmark_cases(context: AssetExecutionContext, config: BenchmarkConfig, workspace: WorkspaceResource
                    ) -> list[Case]:
    """Ground-truth sequences (Vid4 calendar and city when present, a generated camera-motion clip) under each
    x4 degradation (bicubic, Gaussian blur + subsampling, bicubic + x264); GT and degraded frames cached
    under ``<workspace>/benchmarks/cases``."""
    cache = workspace.workspace().root / "benchmarks" / "cases"
    shared = config.resolved_shared_dir()
    cases = make_cases(shared, True, config.max_frames, degradations=config.degradations,
                       generated_size=(config.generated_width, config.generated_height))
    cached, reused = [], 0
    for case in cases:
        stored, was_reused = case.cached(cache)
        cached.append(stored)
        reused += was_reused
    context.log.info(f"benchmark: {len(cached)} cases ({reused} reused from {cache}); shared dir: {shared}")
    context.add_output_metadata({"cases": MetadataValue.json([c.name for c in cached]), "reused": reused,
                                 "shared_dir": str(shared) if shared else "none", "cache": MetadataValue.path(
                                     str(cache))})
    return cached


@asset(group_name=BENCHMARK_GROUP, kinds={"pytorch"}, pool="gpu")
def benchmark_results(
    context: AssetExecutionContext,
    config: BenchmarkConfig,
    model_store: ModelStoreResource,
    device: DeviceResource,
    benchmark_cases: list[Case],
) -> list[dict[str, Any]]:
    """One row per case x method: bicubic, lanczos and each present super-resolution model with coherence
    none/flow/ema (PSNR/SSIM on Y and RGB, E_warp on the source pair's flow, flicker, VMAF), and the
    interpolators on held-out frames."""
    started = time.perf_counter()
    models, notes = present_models(model_store.store(), config.models, MAX_MODELS)
    for note in notes:
        context.log.warning(f"benchmark: {note}")
    choice = device.choose() if models else None
    if choice is not None:
        context.log.info(f"device: {choice.reason}")

    def progress(event: dict[str, Any]) -> None:
        context.log_event(AssetObservation(asset_key=context.asset_key, metadata={"stage": "benchmark", **event}))
        context.log.info(f"benchmark: case {event['index'] + 1}/{event['cases']} {event['case']} done in "
                         f"{event['seconds']:.1f} s")

    rows = run_suite(benchmark_cases, models, coherence=config.coherence, interpolators=config.interpolators,
                     include_vmaf=config.include_vmaf, device=choice, progress=progress)
    context.add_output_metadata({"rows": len(rows), "models": MetadataValue.json(list(models)),
                                 "seconds": round(time.perf_counter() - started, 1)})
    return rows


@asset(group_name=BENCHMARK_GROUP, kinds={"python"})
def benchmark_report(context: AssetExecutionContext, workspace: WorkspaceResource,
                     benchmark_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Parquet (one row per case x method), Markdown and PNG under
    ``<workspace>/benchmarks/reports/<timestamp>/``, with both targets computed and stated."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = workspace.workspace().root / "benchmarks" / "reports" / stamp
    header = {"date": stamp, "run_id": context.run.run_id, **machine_header()}
    paths = write_suite_report(benchmark_results, out, header)
    targets = compute_targets(benchmark_results)
    figures = target_figures(targets)
    context.add_output_metadata({
        "report": MetadataValue.md("## Targets\n\n" + targets_markdown(targets) + "\n\n"
                                   + markdown_table(benchmark_results)),
        **{f"{name}_path": MetadataValue.path(str(path)) for name, path in paths.items()},
        **figures,
    })
    return {"folder": str(out), "paths": {k: str(v) for k, v in paths.items()}, "targets": targets,
            "figures": figures}


BENCHMARK_ASSETS = [benchmark_cases, benchmark_results, benchmark_report]

benchmark_job = define_asset_job(
    "benchmark_job",
    selection=AssetSelection.groups(BENCHMARK_GROUP),
    description="Quality benchmark: degrade GT sequences, upscale/cohere/interpolate, measure, report.",
)

benchmark_schedule = ScheduleDefinition(
    job=benchmark_job,
    cron_schedule="0 3 * * 1",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Weekly quality benchmark (Mondays 03:00); turn it on in the UI.",
)
