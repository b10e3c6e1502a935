"""The carrier spec's conventions: the drive-root folders, the output file names and ``carrier_report.json``.

A carrier drive root (``vup produce --drive-root DIR``) holds::

    DIR/PRODUCTION_PLAN.JSON          the plan (or IN_COMPONENTS/PRODUCTION_PLAN.JSON; the drive root's wins)
    DIR/IN_COMPONENTS/                the image sequences and audio tracks; the plan's relative paths start here
    DIR/OUT_FINAL/                    what the run writes:
        FINAL_OUTPUT_<project>.mp4    (h265/h264/av1; .mov for ProRes, .mkv for FFV1)
        thumbnail_<project>.png, contact_sheet_<project>.jpg, report.json, carrier_report.json

A plan laid out this way has ``layout == "carrier"`` (:func:`carrier_plan`); the run names its files with
:func:`output_filename` and writes :func:`carrier_report` beside ``report.json`` each time it writes that, on
success and on failure alike.

``carrier_report.json``::

    {"version": 1, "project": "trailer", "status": "done" | "failed",
     "failed_step": null | "encode", "error": null | "encode: ...",
     "pipeline": {"validate": "done", "sequences": "done", "interpolate": "done", "upscale": "skipped",
                  "edit": "done", "audio": "done", "encode": "done", "thumbnail": "done",
                  "contact_sheet": "done", "report": "done"},
     "outputs": [{"kind": "video", "file": "FINAL_OUTPUT_trailer.mp4", "path": "...", "codec": "hevc", ...},
                 {"kind": "thumbnail", "file": "thumbnail_trailer.png", ...}, ...],
     "run_id": "...", "written_at": "2025-...Z", "report": "report.json"}
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stages.errors import InputError, SettingsError
from stages.production.deliverables import DELIVERABLES, default_filename
from stages.production.plan import ProductionPlan
from stages.store.fsutil import atomic_write_text

CARRIER_REPORT = "carrier_report.json"
CARRIER_REPORT_VERSION = 1
PLAN_FILE = "PRODUCTION_PLAN.JSON"
COMPONENTS_DIR = "IN_COMPONENTS"
OUTPUT_DIR = "OUT_FINAL"
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
PIPELINE = ("validate", "sequences", "interpolate", "upscale", "edit", "audio", "encode", "thumbnail",
            "contact_sheet", "report")
"""The carrier report's steps, in order; each maps onto steps of ``report.json`` (:data:`STEP_OF`)."""
STEP_OF = {"plan": "validate", "assemble": "sequences", "interpolate": "interpolate", "upscale": "upscale",
           "edit": "edit", "audio": "audio", "thumbnail": "thumbnail", "contact_sheet": "contact_sheet",
           "report": "report"}  # and every "deliver:<kind>" -> "encode"
_STATUS = {"OK": DONE, "SKIPPED": SKIPPED, "FAILED": FAILED}
_NAME = re.compile(r"[\w][\w .-]{0,99}")


@dataclass(frozen=True)
class DriveLayout:
    """Where a drive root's plan, components and outputs are (absolute), and what was noticed finding them."""

    drive_root: Path
    components_dir: Path
    output_dir: Path
    plan_path: Path
    notes: tuple[str, ...] = ()


def project_name(value: str, where: str = "--project-name") -> str:
    """``value`` checked as a project name (it names the output files).

    Raises:
        SettingsError: empty, too long, or holding characters other than letters, digits, space, '.', '-', '_'.
    """
    name = value.strip() if isinstance(value, str) else value
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(f"produce: {where} {value!r} must be 1-100 letters, digits, spaces, '.', '-' or '_' "
                            "(it names FINAL_OUTPUT_<project>); e.g. \"trailer_v2\"")
    return name


def default_project(folder: Path) -> str:
    """A project name from a folder's name (characters a name may not hold become ``_``)."""
    name = re.sub(r"[^\w .-]", "_", folder.name).strip().lstrip(".-") or "project"
    return name[:100]


def drive_layout(drive_root: str | os.PathLike[str], *, components_dir: str | None = None,
                 output_dir: str | None = None, plan: str | None = None) -> DriveLayout:
    """The folders and the plan of a drive root; relative ``components_dir``, ``output_dir`` and ``plan`` are
    taken under the drive root. Without ``plan``, ``PRODUCTION_PLAN.JSON`` (any letter case) in the drive root,
    else in the components folder.

    Raises:
        InputError: the drive root or the components folder is missing, or no plan is found.
    """
    root = Path(drive_root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"produce: the drive root {root} is not a folder; give the folder that holds "
                         f"{PLAN_FILE} and {COMPONENTS_DIR}/")
    components = _under(root, components_dir or COMPONENTS_DIR)
    if not components.is_dir():
        raise InputError(f"produce: the components folder {components} does not exist; put the image sequences and "
                         f"audio tracks in {root / COMPONENTS_DIR} or pass --components-dir")
    out = _under(root, output_dir or OUTPUT_DIR)
    notes: list[str] = []
    if plan is not None:
        plan_path = _under(root, plan)
        if not plan_path.is_file():
            raise InputError(f"produce: the plan {plan_path} does not exist; check --production-plan (a relative "
                             "path is taken under the drive root)")
    else:
        found = [p for p in (_find_plan(root), _find_plan(components)) if p is not None]
        if not found:
            raise InputError(f"produce: no {PLAN_FILE} in {root} or {components}; write the plan there or pass "
                             "--production-plan FILE")
        plan_path = found[0]
        if len(found) > 1:
            notes.append(f"two plans found: using {plan_path}, not {found[1]} (pass --production-plan to choose)")
    return DriveLayout(root, components, out, plan_path, tuple(notes))


def _under(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def _find_plan(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    exact = folder / PLAN_FILE
    if exact.is_file():
        return exact
    return next((p for p in sorted(folder.iterdir()) if p.name.upper() == PLAN_FILE and p.is_file()), None)


def carrier_plan(plan: ProductionPlan, project: str, *, output_dir: str | os.PathLike[str] | None = None,
                 upscale: bool = True, rife: bool = True) -> ProductionPlan:
    """``plan`` laid out the carrier way: named ``project`` (checked), into ``output_dir`` when given, with the
    AI upscaling off unless ``upscale``, and the optical-flow interpolator instead of RIFE unless ``rife``."""
    changes: dict[str, Any] = {"name": project_name(project), "layout": "carrier"}
    if output_dir is not None:
        changes["output_dir"] = str(Path(output_dir).resolve())
    if not upscale:
        changes["upscale_enabled"] = False
    if not rife and plan.interpolation_method in ("auto", "rife"):
        changes["interpolation_method"] = "flow"
    return dataclasses.replace(plan, **changes)


def output_filename(plan: ProductionPlan, kind: str) -> str:
    """The file name of a deliverable ``kind``, ``"thumbnail"`` or ``"contact_sheet"`` of ``plan``: today's
    (``trailer.mp4``, ``trailer_thumbnail.jpg``) or, for the carrier layout, ``FINAL_OUTPUT_trailer.mp4`` (``.mov``
    for ProRes, ``.mkv`` for FFV1; other kinds keep their tail, e.g. ``FINAL_OUTPUT_trailer_h264.mp4``),
    ``thumbnail_trailer.png`` and ``contact_sheet_trailer.jpg``."""
    carrier = plan.layout == "carrier"
    if kind == "thumbnail":
        return f"thumbnail_{plan.name}.png" if carrier else f"{plan.name}_thumbnail.jpg"
    if kind == "contact_sheet":
        return f"contact_sheet_{plan.name}.jpg" if carrier else f"{plan.name}_contact_sheet.jpg"
    name = default_filename(plan.name, kind)
    return f"FINAL_OUTPUT_{name}" if carrier else name


def pipeline_statuses(steps: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The carrier pipeline's statuses from ``report.json``'s steps: ``done``, ``skipped`` or ``failed``
    (``encode`` fails when any deliverable did, and is done when any was made); steps not run are ``skipped``."""
    found: dict[str, list[str]] = {}
    for step in steps:
        name = "encode" if str(step["step"]).startswith("deliver:") else STEP_OF.get(str(step["step"]))
        if name is not None:
            found.setdefault(name, []).append(_STATUS.get(str(step["status"]), FAILED))
    statuses = {}
    for name in PIPELINE:
        seen = found.get(name, [SKIPPED])
        statuses[name] = FAILED if FAILED in seen else DONE if DONE in seen else SKIPPED
    return statuses


def carrier_report(project: str, steps: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]], *,
                   run_id: str | None = None, error: str | None = None) -> dict[str, Any]:
    """The content of ``carrier_report.json`` (module doc) from ``report.json``'s steps and deliverables."""
    pipeline = pipeline_statuses(steps)
    failed = next((name for name, status in pipeline.items() if status == FAILED), None)
    if error is None and failed is not None:
        step = next(s for s in steps if s["status"] == "FAILED")
        error = f"{step['step']}: {step['reason']}"
    return {
        "version": CARRIER_REPORT_VERSION,
        "project": project,
        "status": FAILED if failed is not None or error is not None else DONE,
        "failed_step": failed,
        "error": error,
        "pipeline": pipeline,
        "outputs": [_output(entry) for entry in outputs],
        "run_id": run_id,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "report": "report.json",
    }


def _output(entry: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(entry.get("kind"))
    out: dict[str, Any] = {"kind": "video" if kind in DELIVERABLES else kind, "file": Path(str(entry["path"])).name,
                           "path": str(entry["path"])}
    if kind in DELIVERABLES:
        out["deliverable"] = kind
    out.update({k: entry[k] for k in ("codec", "profile", "pix_fmt", "width", "height", "fps", "frame_count",
                                      "duration", "audio_codec", "size_bytes", "encoder") if k in entry})
    return out


def write_carrier_report(folder: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    """Write ``report`` as ``carrier_report.json`` into ``folder`` (atomically); returns its path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CARRIER_REPORT
    atomic_write_text(path, json.dumps(report, indent=2))
    return path


def failed_validation(project: str, error: str) -> dict[str, Any]:
    """A carrier report for a run refused before it started: ``validate`` failed, every other step skipped."""
    return carrier_report(project, [{"step": "plan", "status": "FAILED", "reason": error}], [], error=error)
