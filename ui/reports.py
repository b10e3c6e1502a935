"""What the Compare and System tabs show: a finished run's report (metrics, definitions, the before/after
frames), the system information, the recent runs and a run's logs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.launch.events import first_line
from orchestration.launch.service import system_info
from orchestration.launch.uploads import compare_frames
from stages.errors import StageError
from ui.common import WARN, _unexpected, browser_playable, format_number, servable
from ui.i18n import field as field_name
from ui.i18n import msg

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ compare


@dataclass(frozen=True)
class CompareView:
    """A finished run for the Compare tab: its source and output (paths for the frame slider; the videos only
    where the page may serve them), output duration, metrics rows, per-frame plot, summary and definitions."""

    source: str | None = None
    output: str | None = None
    source_video: str | None = None
    output_video: str | None = None
    duration: float = 0.0
    rows: list[list[str]] = field(default_factory=list)
    plot: str | None = None
    summary: str = ""
    definitions: str = ""
    message: str = ""


def _run_time(started: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "–"


def finished_runs(service: Any, limit: int = 50) -> list[tuple[str, str]]:
    """(label, run id) of the SUCCESS runs among ``service.recent_runs``, newest first."""
    try:
        rows = service.recent_runs(limit)
    except Exception as exc:  # noqa: BLE001 - an empty list, logged
        log.warning("ui: cannot list runs: %s", first_line(exc))
        return []
    return [(" · ".join((row.source or row.partition or "?", row.kind or "run", row.run_id[:8],
                         _run_time(row.started))), row.run_id)
            for row in rows if row.status == "SUCCESS"]


def metrics_rows(report: dict[str, Any], lang: str = "en") -> list[list[str]]:
    """(metric, output, lanczos baseline, ratio) rows of a run's summary: flicker, E_warp, the quality figures,
    the grade when present, then the timings."""
    rows: list[list[str]] = []
    for key, name in (("flicker", "flicker"), ("warp_error", "E_warp")):
        block = report.get(key) or {}
        if block:
            rows.append([name, format_number(block.get("output")), format_number(block.get("lanczos_baseline")),
                         format_number(block.get("ratio"))])
    quality = report.get("quality") or {}
    for key in ("psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb", "vmaf"):
        if key in quality:
            rows.append([key, format_number(quality[key]), "", ""])
    grade = quality.get("grade")
    if isinstance(grade, dict):
        label = str(grade.get("grade_en") if lang == "en" else grade.get("grade") or grade.get("grade_en") or "–")
        scope = msg(lang, "grade_stability_only") if str(grade.get("scope", "")).startswith("stability only") else ""
        rows.append([msg(lang, "grade"), label, scope, ""])
    for stage, seconds in (report.get("timings_s") or {}).items():
        rows.append([f"{stage} (s)", format_number(seconds), "", ""])
    return rows


def definitions_markdown(report: dict[str, Any]) -> str:
    """Each reported metric's exact definition, as a Markdown list."""
    items = []
    for key, name in (("flicker", "flicker"), ("warp_error", "E_warp")):
        definition = (report.get(key) or {}).get("definition")
        if definition:
            items.append(f"- **{name}**: {definition}")
    for name, definition in ((report.get("quality") or {}).get("definitions") or {}).items():
        if definition and not str(name).startswith("warp_error"):
            items.append(f"- **{name}**: {definition}")
    return "\n".join(items)


def compare_view(service: Any, run_id: str | None, lang: str = "en") -> CompareView:
    """Read a finished run's report (``service.progress(run_id).report``) for the Compare tab."""
    if not run_id:
        return CompareView(message=msg(lang, "pick_run"))
    try:
        progress = service.progress(run_id)
    except Exception as exc:  # noqa: BLE001 - shown as one line
        return CompareView(message=WARN + (str(exc) if isinstance(exc, StageError) else _unexpected("report", exc)))
    report = progress.report
    if not report:
        return CompareView(output=progress.output, message=msg(lang, "no_report"))
    output_info = report.get("output") or {}
    source, output = report.get("source"), output_info.get("path") or progress.output
    notes = []
    source_video = servable(source, service.workspace)
    if source and source_video is None:
        notes.append(msg(lang, "outside", name=Path(source).name))
    output_video = servable(output, service.workspace)
    if output and output_video is None:
        notes.append(msg(lang, "outside", name=Path(output).name))
    elif output_video and not browser_playable(output_video, output_info.get("codec")):
        notes.append(msg(lang, "not_playable", codec=output_info.get("codec") or "?",
                         suffix=Path(output_video).suffix))
        output_video = None
    plot = None
    if progress.report_dir:
        plot = servable(Path(progress.report_dir) / "per_frame.png", service.workspace)
    sar, geometry = output_info.get("sample_aspect", "1:1"), report.get("geometry") or {}
    shape = f" (pixels {sar}, shown {geometry.get('output_display_aspect', '?')})" if sar != "1:1" else ""
    summary = msg(lang, "report_summary", model=report.get("model", "?"), device=report.get("device", "?"),
                  precision=report.get("precision", "?"), width=output_info.get("width", "?"),
                  height=f"{output_info.get('height', '?')}{shape}", frames=output_info.get("frames", "?"),
                  duration=format_number(output_info.get("duration_s")), codec=output_info.get("codec", "?"))
    duration = output_info.get("duration_s")
    return CompareView(source, output, source_video, output_video,
                       float(duration) if isinstance(duration, (int, float)) else 0.0,
                       metrics_rows(report, lang), plot, summary, definitions_markdown(report),
                       "\n\n".join(WARN + note for note in notes))


def compare_images(source: str | None, output: str | None, seconds: float) -> tuple[Any, Any] | None:
    """(source frame upscaled with lanczos, output frame) at ``seconds`` for the before/after slider; None when
    either file cannot be read (logged)."""
    if not source or not output:
        return None
    try:
        return compare_frames(source, output, float(seconds or 0.0))
    except Exception as exc:  # noqa: BLE001 - the slider stays empty
        log.warning("ui: no frames to compare at %ss: %s", seconds, first_line(exc))
        return None


# ------------------------------------------------------------------------------------------------ system


def system_rows(service: Any, lang: str = "en") -> list[list[str]]:
    """(field, value) rows of ``system_info``, field names in ``lang``."""
    try:
        rows = system_info(service.workspace, service.webserver_url)
    except Exception as exc:  # noqa: BLE001 - shown as one row
        rows = [("error", _unexpected("system information", exc))]
    return [[field_name(lang, name), value] for name, value in rows]


RUN_HEADERS = ("col_run", "col_status", "col_source", "col_launched_by", "col_kind", "col_started", "col_seconds",
               "col_link")


def runs_rows(service: Any, lang: str = "en", limit: int = 20) -> list[list[str]]:
    """Recent runs (``service.recent_runs``): short id, status, source, launched by, kind, start, seconds, and a
    Markdown link to the run in the Dagster UI."""
    try:
        runs = service.recent_runs(limit)
    except Exception as exc:  # noqa: BLE001 - shown as one row
        return [["–", "UNKNOWN", _unexpected("listing runs", exc), "", "", "", "", ""]]
    return [[row.run_id[:8], row.status, row.source or row.partition or "", row.launched_by or "", row.kind or "",
             _run_time(row.started), format_number(round(row.seconds, 1)) if row.seconds is not None else "–",
             f"[{msg(lang, 'open_link')}]({row.url})"] for row in runs]


def run_logs(service: Any, run_id: str | None, lang: str = "en") -> str:
    """The run's logs (``service.logs``), or a line saying there are none."""
    if not run_id:
        return msg(lang, "pick_run")
    try:
        return service.logs(run_id.strip()) or msg(lang, "no_logs")
    except Exception as exc:  # noqa: BLE001 - shown as one line
        return str(exc) if isinstance(exc, StageError) else _unexpected("reading the logs", exc)
