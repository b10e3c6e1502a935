"""Step bookkeeping shared by the production graph's assets: partitions, group, step statuses and report.json.

Every asset of the graph (orchestration.graphs.production and orchestration.graphs.production_scenes) records its
step's status (OK, SKIPPED or FAILED) with :func:`_step` and is wrapped by :func:`production_step`, which writes
``report.json`` at once when the step fails.
"""

import functools
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    Failure,
    RetryRequested,
)

from orchestration.launch.events import first_line
from orchestration.resources.workspace import lookup_job
from stages.errors import StageError
from stages.production.carrier import carrier_report, write_carrier_report
from stages.production.plan import ProductionPlan, plan_from_dict
from stages.store.chunk_store import ChunkRecord
from stages.store.fsutil import atomic_write_text

plans_partitions = DynamicPartitionsDefinition(name="plans")

GROUP = "production"
REPORT_NAME = "report.json"
OK, SKIPPED, FAILED = "OK", "SKIPPED", "FAILED"

ALPHA_KIND = "prores4444"  # the one deliverable that carries an alpha channel


class StepFailed(StageError):
    """A step failed after recording statuses of its own (e.g. one deliverable of several), and what it made."""

    def __init__(self, message: str, steps: list[dict[str, Any]],
                 outputs: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.steps = steps
        self.outputs = outputs or []


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
    """Write ``report.json`` (atomically) into the plan's output folder; returns its path. A plan with the carrier
    layout (stages.production.carrier) gets ``carrier_report.json`` beside it, from the same steps."""
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
    if plan.layout == "carrier":
        write_carrier_report(out, carrier_report(plan.name, steps, deliverables or [], run_id=run_id))
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
        made = exc.outputs if isinstance(exc, StepFailed) else None  # the deliverables that were made
        path = write_report(plan, [*done, *later], run_id=context.run.run_id, partition=context.partition_key,
                            deliverables=made)
        context.log.error(f"{name}: failed; {path} lists every step's status")
    except Exception as report_error:  # noqa: BLE001 - the step's own error matters more
        context.log.warning(f"report: could not write {REPORT_NAME} ({report_error})")
