"""The Gradio page: upload a video, choose the settings, submit a Dagster run, follow it, compare the result.

The page is thin: it never runs a model. Everything goes through :mod:`orchestration.launch.service` (checks,
output plan, settings, run submission and read-back from the Dagster instance). The handlers below are plain
functions of the service and plain values; :func:`build_app` wires them to components.

API endpoints (``gradio_client``; positional arguments, a ``gr.State`` is never an argument):

* ``/inspect`` (file) -> (metadata table, message)
* ``/process`` (file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
  temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds) -> (run id, message); a refused
  request gives run id ``""`` and the reason as the message
* ``/preview``: the same arguments and results as ``/process``, for the first seconds of the video
* ``/progress`` (run id) -> (progress HTML, Dagster status word, result video, result file)
* ``/cancel`` (run id) -> message
"""

from __future__ import annotations

import html
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from orchestration.launch.service import (
    DagsterService,
    ModelChoice,
    OutputPlan,
    UploadInfo,
    accept_upload,
    build_ui_request,
    compare_frames,
    first_line,
    interpolation_methods,
    load_settings,
    max_upload_bytes,
    model_choices,
    plan_output,
    preview_upload,
    save_settings,
    system_info,
)
from stages.errors import SettingsError, StageError
from ui.i18n import I18N, label, lang_of, msg
from ui.i18n import field as field_name

log = logging.getLogger(__name__)

UPLOAD_TYPES = [".mp4", ".mov", ".mkv", ".avi", ".webm"]
SCALES = (2, 4, 8)
FACTORS = (2, 4, 8)
MODE_FACTOR = "factor"
MODE_FPS = "target fps"
TEMPORAL_METHODS = ("none", "ema", "flow", "auto")
DEVICES = ("auto", "cuda", "cpu", "mps")
CODECS = ("h264", "h265")
CONTAINERS = ("mp4", "mkv", "mov")
API_NAMES = ("inspect", "process", "preview", "progress", "cancel")
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED", "UNKNOWN"})
WAITING = frozenset({"QUEUED", "NOT_STARTED", "STARTING"})
BROWSER_CODECS = {".mp4": ("h264", "avc1", "av1"), ".webm": ("vp8", "vp9", "av1")}
WARN = "⚠️ "

CSS = """
.vup-progress { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; }
.vup-progress-fill { height: 100%; background: var(--color-accent); transition: width 0.5s ease; }
.vup-progress-fill.vup-failure { background: #d9534f; }
.vup-progress-fill.vup-canceled { background: var(--neutral-400); }
.vup-progress-text { margin: 6px 0 0 0; font-variant-numeric: tabular-nums; }
"""


# ------------------------------------------------------------------------------------------------ small helpers


def format_duration(seconds: float | None) -> str:
    """``m:ss`` below an hour, else ``h:mm:ss`` (``–`` for None)."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_number(value: Any) -> str:
    """A metric figure for a table: 4 significant digits, ``–`` when missing."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def served_folders(workspace: Any) -> list[Path]:
    """The only workspace folders the page serves files from: outputs, uploads and reports."""
    return [workspace.outputs, workspace.uploads, workspace.reports]


def servable(path: str | Path | None, workspace: Any) -> str | None:
    """``path`` when it is an existing file inside :func:`served_folders`, else None."""
    if not path:
        return None
    candidate = Path(path).expanduser()
    if not candidate.is_file():
        return None
    resolved = candidate.resolve()
    for folder in served_folders(workspace):
        if resolved.is_relative_to(Path(folder).expanduser().resolve()):
            return str(candidate)
    return None


def browser_playable(path: str | Path, codec: str | None) -> bool:
    """Whether a browser plays ``path`` as is (container by suffix, codec when known), so the page never makes
    Gradio convert a large result in the web process."""
    accepted = BROWSER_CODECS.get(Path(path).suffix.lower())
    if accepted is None:
        return False
    return codec is None or str(codec).lower() in accepted


def file_argument(value: Any) -> tuple[str | None, str | None]:
    """(path, original name) of a file input: a path, or Gradio's file data (a dict or an object with ``path``
    and ``orig_name``, as events with ``preprocess=False`` receive it)."""
    if not value:
        return None, None
    if isinstance(value, (str, Path)):
        return str(value), None
    if isinstance(value, dict):
        path, name = value.get("path"), value.get("orig_name")
    else:
        path, name = getattr(value, "path", None), getattr(value, "orig_name", None)
    return (str(path) if path else None), (str(name) if name else None)


def received_upload(path: str | None, workspace: Any) -> str | None:
    """``path`` when it is a file the page received: in Gradio's upload folder (``GRADIO_TEMP_DIR``) or the
    workspace's uploads; else None. Gradio already refuses other paths in API calls; the page does not rely on
    it, so a request can never make it read a file elsewhere on the machine."""
    if not path:
        return None
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return None
    folders = [Path(gr.utils.get_upload_folder()), Path(workspace.uploads)]
    if any(resolved.is_relative_to(folder.expanduser().resolve()) for folder in folders) and resolved.is_file():
        return path
    log.warning("ui: refused a file that was not uploaded through the page: %r", path)
    return None


def _unexpected(what: str, exc: BaseException) -> str:
    log.exception("ui: %s failed", what)
    return f"ui: {what} failed ({first_line(exc)}); see the server log"


def _as_int(name: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"ui: {name} {value!r} is not a number; give a whole number") from None
    if not number.is_integer():
        raise SettingsError(f"ui: {name} {value!r} is not a whole number; e.g. {int(number)}")
    return int(number)


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"ui: {name} {value!r} is not a number") from None


def _fps_value(value: Any) -> int | float | str | None:
    """A target rate as the inbox takes it: None when empty, an int for whole numbers, a string kept as is
    (``"60000/1001"``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return text
    number = _as_float("target fps", value)
    return int(number) if number.is_integer() else number


# ------------------------------------------------------------------------------------------------ choices


@dataclass(frozen=True)
class PageChoices:
    """The page's choices, in the order of the ``/process`` and ``/preview`` arguments after the file."""

    model: str | None
    scale: Any = 4
    interpolation_on: bool = False
    interp_method: str = "auto"
    interp_mode: str = MODE_FACTOR
    factor: Any = 2
    target_fps: Any = None
    temporal: str = "none"
    temporal_strength: Any = 0.6
    device: str = "auto"
    batch: Any = 0
    fp16: bool = False
    codec: str = "h264"
    container: str = "mp4"
    crf: Any = 18
    chunk_seconds: Any = 10.0

    @property
    def by_fps(self) -> bool:
        """Whether interpolation aims at a target rate (mode ``"target fps"``) rather than a factor."""
        return str(self.interp_mode or "").strip().lower() in (MODE_FPS, "fps", "target_fps")

    def plan(self, upload: UploadInfo) -> OutputPlan:
        """The output these choices give for ``upload`` (see :func:`orchestration.launch.service.plan_output`).

        Raises:
            SettingsError: a value is not a number.
        """
        method = "none"
        factor = target = None
        if self.interpolation_on:
            method = self.interp_method or "auto"
            if self.by_fps:
                target = _fps_value(self.target_fps)
            else:
                factor = _as_int("interpolation factor", self.factor)
        return plan_output(upload.info.width, upload.info.height, upload.fps, _as_int("scale", self.scale),
                           method, factor, target)

    def request_choices(self) -> dict[str, Any]:
        """The ``choices`` of :func:`orchestration.launch.service.build_ui_request` (inbox keys plus device, fp16,
        container); ``interpolate`` or ``fps`` only when interpolation is on.

        Raises:
            SettingsError: a value is not a number.
        """
        choices: dict[str, Any] = {
            "model": self.model,
            "scale": _as_int("scale", self.scale),
            "interp_method": self.interp_method or "auto",
            "temporal": self.temporal or "none",
            "temporal_strength": _as_float("temporal strength", self.temporal_strength),
            "device": self.device or "auto",
            "batch": _as_int("batch", self.batch or 0),
            "fp16": bool(self.fp16),
            "codec": self.codec or "h264",
            "container": self.container or "mp4",
            "crf": _as_int("CRF", self.crf),
            "chunk_seconds": _as_float("chunk length", self.chunk_seconds),
        }
        if self.interpolation_on:
            if self.by_fps:
                choices["fps"] = _fps_value(self.target_fps)
            else:
                choices["interpolate"] = _as_int("interpolation factor", self.factor)
        return choices


def model_label(choice: ModelChoice, lang: str = "en") -> str:
    """The dropdown label of a model: id and scale, and whether it is unavailable."""
    text = f"{choice.id} (x{choice.scale})"
    return text if choice.available else f"{text} – {msg(lang, 'unavailable_word')}"


def model_markdown(model_id: str | None, models: list[ModelChoice], lang: str = "en") -> str:
    """The one-line description of a model, and for an unavailable one ``unavailable: <reason>``."""
    chosen = next((m for m in models if m.id == model_id), None)
    if chosen is None:
        return ""
    if chosen.available:
        return chosen.description
    return f"{chosen.description}\n\n{WARN}**{msg(lang, 'unavailable', reason=chosen.reason)}**"


def method_label(method: str, reason: str | None, lang: str = "en") -> str:
    """The dropdown label of an interpolation method."""
    return method if reason is None else f"{method} – {msg(lang, 'unavailable_word')}"


def method_markdown(method: str | None, methods: list[tuple[str, str | None]], lang: str = "en") -> str:
    """Why an interpolation method is unavailable (empty when it is available)."""
    reason = dict(methods).get(method or "")
    return f"{WARN}{msg(lang, 'unavailable', reason=reason)}" if reason else ""


def default_model(models: list[ModelChoice], remembered: str | None) -> str | None:
    """The remembered model when it is still offered and available, else the first available one."""
    available = [m.id for m in models if m.available]
    if remembered in available:
        return remembered
    if available:
        return available[0]
    return models[0].id if models else None


# ------------------------------------------------------------------------------------------------ upload


@dataclass(frozen=True)
class Inspection:
    """What the page shows for an upload: the accepted upload (None when refused or empty), the metadata rows
    and a message."""

    upload: UploadInfo | None
    rows: list[list[str]]
    message: str


def inspect_file(workspace: Any, file: str | Path | None, *, original_name: str | None = None,
                 max_upload: int | None = None, lang: str = "en") -> Inspection:
    """Accept an uploaded file (``accept_upload``) and describe it; a refusal is a message, never an exception.

    ``original_name``: the name the file had on the user's machine (default: its current name).
    """
    if not file:
        return Inspection(None, [], "")
    path = Path(str(file))
    try:
        upload = accept_upload(workspace, path, original_name=original_name or path.name, max_bytes=max_upload)
    except StageError as exc:
        return Inspection(None, [], WARN + str(exc))
    except Exception as exc:  # noqa: BLE001 - shown as one line, logged with its traceback
        return Inspection(None, [], WARN + _unexpected("upload", exc))
    return Inspection(upload, metadata_rows(upload, lang), "✅ " + msg(lang, "accepted", name=upload.name))


def metadata_rows(upload: UploadInfo, lang: str = "en") -> list[list[str]]:
    """(field, value) rows of an upload, field names in ``lang``."""
    rows = [[field_name(lang, "file"), upload.name]]
    rows += [[field_name(lang, name), value] for name, value in upload.rows()]
    return rows


def table(rows: list[list[Any]], headers: list[str]) -> dict[str, Any]:
    """A Dataframe value with its headers."""
    return {"headers": headers, "data": rows}


def plan_markdown(upload: UploadInfo | None, choices: PageChoices, lang: str = "en") -> str:
    """``Output: WxH at F fps`` for the upload and choices, with the plan's warning (above 4K) or refusal."""
    if upload is None:
        return msg(lang, "plan_none")
    try:
        plan = choices.plan(upload)
    except StageError as exc:
        return f"{WARN}{msg(lang, 'refused', text=exc)}"
    at = msg(lang, "at_fps", fps=f"{plan.fps:.3f}".rstrip("0").rstrip(".")) if plan.fps else ""
    source = f"{upload.info.width}x{upload.info.height}"
    text = msg(lang, "plan", size=f"{plan.width}x{plan.height}", at=at, source=source)
    if plan.error:
        text += f"\n\n⛔ **{msg(lang, 'refused', text=plan.error)}**"
    elif plan.warning:
        text += f"\n\n{WARN}{msg(lang, 'warning', text=plan.warning)}"
    return text


# ------------------------------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class Submission:
    """A submitted run (``run_id``) or a refusal (``run_id == ""``), with the message to show.

    ``source``: for a preview, the clip of the first seconds the run works on. ``upload``: the accepted upload.
    """

    run_id: str
    message: str
    kind: str
    source: str | None = None
    upload: UploadInfo | None = None


def submit_run(service: Any, file: str | Path | None, choices: PageChoices, *, kind: str = "process",
               original_name: str | None = None, upload: UploadInfo | None = None,
               models: list[ModelChoice] | None = None,
               methods: list[tuple[str, str | None]] | None = None, max_upload: int | None = None,
               lang: str = "en") -> Submission:
    """Check everything, then submit a ``process`` run (the whole upload) or a ``preview`` run (its first
    seconds, ``preview_upload``) through ``service.submit``.

    ``upload``: the upload already accepted for ``file`` (else ``file`` is accepted again). ``models`` /
    ``methods``: the offered models and interpolation methods (default: ``model_choices()`` /
    ``interpolation_methods()``). Refusals (no or bad upload, unavailable model or method, a plan above the
    limits, an impossible setting, Dagster unreachable) come back as ``run_id == ""`` and the reason.
    """

    def refuse(text: str) -> Submission:
        return Submission("", WARN + text, kind, None, upload)

    if upload is None:
        if not file:
            return refuse(msg(lang, "upload_first"))
        inspection = inspect_file(service.workspace, file, original_name=original_name, max_upload=max_upload,
                                  lang=lang)
        if inspection.upload is None:
            return Submission("", inspection.message, kind)
        upload = inspection.upload
    try:
        models = model_choices() if models is None else models
        chosen = next((m for m in models if m.id == choices.model), None)
        if chosen is None:
            return refuse(msg(lang, "model_unknown"))
        if not chosen.available:
            return refuse(msg(lang, "model_unavailable", model=chosen.id, reason=chosen.reason))
        if choices.interpolation_on:
            methods = interpolation_methods() if methods is None else methods
            reason = dict(methods).get(choices.interp_method)
            if reason:
                return refuse(msg(lang, "method_unavailable", method=choices.interp_method, reason=reason))
        plan = choices.plan(upload)
        if plan.error:
            return refuse(plan.error)
        target = preview_upload(service.workspace, upload) if kind == "preview" else upload
        request = build_ui_request(service.workspace, target, choices.request_choices())
        run_id = service.submit(request, kind=kind, sha256=target.sha256)
    except StageError as exc:
        return refuse(str(exc))
    except Exception as exc:  # noqa: BLE001 - shown as one line, logged with its traceback
        return refuse(_unexpected("submitting the run", exc))
    message = msg(lang, "submitted", kind=msg(lang, f"kind_{kind}"), short=run_id[:8], url=service.run_url(run_id))
    return Submission(run_id, message, kind, str(target.path) if kind == "preview" else None, upload)


@dataclass(frozen=True)
class ProgressView:
    """What the page shows of a run: the progress HTML (bar and text), Dagster's status word, the result to
    play (None unless it plays in a browser) and to download, and whether polling can stop."""

    html: str
    text: str
    status: str
    video: str | None = None
    file: str | None = None
    finished: bool = False


def progress_html(fraction: float, text: str, status: str = "") -> str:
    """A progress bar and its line of text (escaped)."""
    percent = max(0.0, min(1.0, float(fraction or 0.0))) * 100
    state = {"FAILURE": "vup-failure", "CANCELED": "vup-canceled"}.get(status, "")
    return (
        f'<div class="vup-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{percent:.0f}"><div class="vup-progress-fill {state}" style="width: {percent:.1f}%">'
        f'</div></div><p class="vup-progress-text">{html.escape(text)}</p>'
    )


def progress_text(progress: Any, lang: str = "en") -> str:
    """``42% · upscale · elapsed 0:31 · about 0:45 left`` (``estimating…`` while there is no ETA), or the
    outcome of a finished run."""
    status = progress.status
    if status == "UNKNOWN":
        return msg(lang, "unknown_run", error=progress.error or progress.run_id)
    if status == "SUCCESS":
        return msg(lang, "done", elapsed=format_duration(progress.elapsed_s))
    if status == "FAILURE":
        return msg(lang, "failed", error=progress.error or "see the run's logs")
    if status == "CANCELED":
        return msg(lang, "cancelled")
    if status == "CANCELING":
        return msg(lang, "cancelling")
    if status in WAITING:
        return msg(lang, "queued")
    eta = msg(lang, "estimating") if progress.eta_s is None else msg(lang, "eta", left=format_duration(progress.eta_s))
    return msg(lang, "progress", percent=int(max(0.0, min(1.0, progress.fraction)) * 100),
               stage=progress.stage or "…", elapsed=format_duration(progress.elapsed_s), eta=eta)


def progress_view(service: Any, run_id: str | None, lang: str = "en") -> ProgressView:
    """Read a run's progress (``service.progress``) and turn it into what the page shows; on SUCCESS the result
    video (when a browser plays it) and the file to download."""
    if not run_id:
        text = msg(lang, "no_run")
        return ProgressView(progress_html(0.0, text), text, "", finished=True)
    try:
        progress = service.progress(run_id.strip())
    except Exception as exc:  # noqa: BLE001 - polling shows the problem and stops
        text = WARN + (str(exc) if isinstance(exc, StageError) else _unexpected("reading the run", exc))
        return ProgressView(progress_html(0.0, text), text, "UNKNOWN", finished=True)
    text = progress_text(progress, lang)
    video = file = None
    if progress.status == "SUCCESS":
        file = servable(progress.output, service.workspace)
        if file is None and progress.output:
            text += " · " + msg(lang, "outside", name=Path(progress.output).name)
        codec = ((progress.report or {}).get("output") or {}).get("codec")
        if file is not None:
            if browser_playable(file, codec):
                video = file
            else:
                text += " · " + msg(lang, "not_playable", codec=codec or "?", suffix=Path(file).suffix)
    finished = progress.status in FINISHED
    return ProgressView(progress_html(progress.fraction, text, progress.status), text, progress.status, video, file,
                        finished)


def cancel_run(service: Any, run_id: str | None, lang: str = "en") -> str:
    """Ask Dagster to stop a run (``service.cancel``); returns the message to show."""
    if not run_id:
        return msg(lang, "no_run")
    try:
        return service.cancel(run_id.strip())
    except Exception as exc:  # noqa: BLE001 - shown as one line
        return WARN + (str(exc) if isinstance(exc, StageError) else _unexpected("cancelling the run", exc))


def preview_pair(service: Any, source: str | None, run_id: str) -> tuple[str | None, str | None]:
    """(the clip the preview ran on, the preview's result) for the two players side by side; None for a side
    the browser cannot be given."""
    try:
        progress = service.progress(run_id)
    except Exception as exc:  # noqa: BLE001 - the pair stays empty
        log.warning("ui: cannot read preview run %s: %s", run_id, first_line(exc))
        return None, None
    codec = ((progress.report or {}).get("output") or {}).get("codec")
    output = servable(progress.output, service.workspace)
    if output is not None and not browser_playable(output, codec):
        output = None
    return servable(source, service.workspace), output


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
        rows.append([msg(lang, "grade"), str(grade.get("grade_en") or grade.get("grade") or "–"), "", ""])
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
    summary = msg(lang, "report_summary", model=report.get("model", "?"), device=report.get("device", "?"),
                  precision=report.get("precision", "?"), width=output_info.get("width", "?"),
                  height=output_info.get("height", "?"), frames=output_info.get("frames", "?"),
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


# ------------------------------------------------------------------------------------------------ settings

SETTING_KEYS = ("model", "scale", "interp_method", "temporal", "temporal_strength", "device", "batch", "fp16",
                "codec", "container", "crf", "chunk_seconds")


def page_settings(workspace: Any, models: list[ModelChoice],
                  methods: list[tuple[str, str | None]] | None = None) -> dict[str, Any]:
    """The remembered settings (``load_settings``) made valid for the page's controls: the model falls back
    to the first available one, values outside a control's choices to the default."""
    stored = load_settings(workspace)
    method_names = [name for name, _ in methods] if methods else None

    def pick(key: str, allowed: tuple | list | None, default: Any) -> Any:
        value = stored.get(key, default)
        return value if allowed is None or value in allowed else default

    return {
        "model": default_model(models, stored.get("model")),
        "scale": int(pick("scale", SCALES, 4)),
        "interp_method": pick("interp_method", method_names, "auto"),
        "temporal": pick("temporal", TEMPORAL_METHODS, "none"),
        "temporal_strength": float(stored.get("temporal_strength", 0.6)),
        "device": pick("device", DEVICES, "auto"),
        "batch": max(0, int(stored.get("batch", 0))),
        "fp16": bool(stored.get("fp16", False)),
        "codec": pick("codec", CODECS, "h264"),
        "container": pick("container", CONTAINERS, "mp4"),
        "crf": min(51, max(0, int(stored.get("crf", 18)))),
        "chunk_seconds": float(stored.get("chunk_seconds", 10.0)),
    }


def remember(workspace: Any, key: str, value: Any) -> dict[str, Any]:
    """Store one setting of the page (``save_settings``), with the type the settings file keeps; an empty or
    malformed value is not stored. Returns the stored settings."""
    if key not in SETTING_KEYS or value is None or value == "":
        return load_settings(workspace)
    try:
        if key in ("scale", "batch", "crf"):
            value = _as_int(key, value)
        elif key in ("temporal_strength", "chunk_seconds"):
            value = _as_float(key, value)
        elif key == "fp16":
            value = bool(value)
        else:
            value = str(value)
        return save_settings(workspace, {key: value})
    except (StageError, OSError) as exc:
        log.warning("ui: setting %s=%r not saved: %s", key, value, first_line(exc))
        return load_settings(workspace)


# ------------------------------------------------------------------------------------------------ the page


def launch_options(service: DagsterService, *, max_upload: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: the translations, the only folders the page may serve
    (outputs, uploads, reports), the upload limit (``max_upload`` or ``max_upload_bytes()``), theme and CSS.

    Raises:
        SettingsError: ``VUP_MAX_UPLOAD_MB`` is malformed.
    """
    workspace = service.workspace
    limit = max_upload if max_upload is not None else max_upload_bytes()
    return {
        "i18n": I18N,
        "allowed_paths": [str(folder) for folder in served_folders(workspace)],
        "max_file_size": limit,
        "theme": gr.themes.Soft(),
        "css": CSS,
    }


def _choice_list(values: tuple[str, ...], translated: dict[str, str]) -> list[tuple[Any, str]]:
    return [(I18N(translated[v]) if v in translated else v, v) for v in values]


def build_app(service: DagsterService, *, max_upload: int | None = None) -> gr.Blocks:
    """The page's Blocks (tabs Process, Compare, Settings, System) wired to ``service``; see the module
    docstring for its API endpoints. Launch it with ``**launch_options(service)``."""
    workspace = service.workspace
    models = model_choices()
    methods = interpolation_methods()
    initial = page_settings(workspace, models, methods)

    with gr.Blocks(title="Video Upscaler Pro", delete_cache=(3600, 6 * 3600)) as app:
        upload_state = gr.State(None)
        run_state = gr.State({})
        shown_state = gr.State("")
        compare_state = gr.State({})
        gr.Markdown(I18N("heading"), elem_id="heading")
        # filled by the load event once the remembered settings are in place (browser automation waits for it)
        ready = gr.HTML("", visible="hidden", elem_id="page-ready")

        with gr.Tabs(elem_id="tabs"):
            with gr.Tab(I18N("tab_process"), id="process"):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = gr.File(label=I18N("upload"), file_types=UPLOAD_TYPES, type="filepath",
                                         elem_id="upload")
                        upload_message = gr.Markdown(elem_id="upload-message")
                        metadata = gr.Dataframe(headers=["field", "value"], label=I18N("metadata"),
                                                interactive=False, wrap=True, elem_id="metadata")
                    with gr.Column(scale=1):
                        model = gr.Dropdown([(model_label(m), m.id) for m in models], value=initial["model"],
                                            label=I18N("model"), elem_id="model")
                        model_info = gr.Markdown(model_markdown(initial["model"], models), elem_id="model-info")
                        scale = gr.Radio([(f"×{s}", s) for s in SCALES], value=initial["scale"],
                                         label=I18N("scale"), elem_id="scale")
                        plan = gr.Markdown(I18N("plan_none"), elem_id="output-plan")
                        interp_on = gr.Checkbox(False, label=I18N("interpolation"), elem_id="interpolation")
                        with gr.Column(visible=False) as interp_box:
                            interp_method = gr.Dropdown([(method_label(n, r), n) for n, r in methods],
                                                        value=initial["interp_method"], label=I18N("interp_method"),
                                                        elem_id="interp-method")
                            interp_info = gr.Markdown(method_markdown(initial["interp_method"], methods),
                                                      elem_id="interp-info")
                            interp_mode = gr.Radio([(I18N("mode_factor"), MODE_FACTOR), (I18N("mode_fps"), MODE_FPS)],
                                                   value=MODE_FACTOR, label=I18N("interp_mode"),
                                                   elem_id="interp-mode")
                            factor = gr.Radio([(f"×{f}", f) for f in FACTORS], value=2, label=I18N("factor"),
                                              elem_id="factor")
                            target_fps = gr.Number(60, label=I18N("target_fps"), minimum=1, visible=False,
                                                   elem_id="target-fps")
                with gr.Row():
                    preview_button = gr.Button(I18N("preview"), elem_id="preview-button")
                    process_button = gr.Button(I18N("process"), variant="primary", elem_id="process-button")
                    cancel_button = gr.Button(I18N("cancel"), variant="stop", elem_id="cancel-button")
                with gr.Row():
                    run_id = gr.Textbox(label=I18N("run_id"), interactive=False, elem_id="run-id")
                    run_status = gr.Textbox(label=I18N("run_status"), interactive=False, elem_id="run-status")
                process_message = gr.Markdown(elem_id="process-message")
                cancel_message = gr.Markdown(elem_id="cancel-message")
                progress = gr.HTML(progress_html(0.0, ""), elem_id="progress")
                with gr.Row():
                    result_video = gr.Video(label=I18N("result_video"), interactive=False, elem_id="result-video")
                    result_file = gr.File(label=I18N("result_file"), interactive=False, elem_id="result-file")
                with gr.Row(visible=False) as preview_row:
                    preview_source = gr.Video(label=I18N("preview_source"), interactive=False,
                                              elem_id="preview-source")
                    preview_result = gr.Video(label=I18N("preview_result"), interactive=False,
                                              elem_id="preview-result")
                timer = gr.Timer(1.0, active=False)

            with gr.Tab(I18N("tab_compare"), id="compare"):
                with gr.Row():
                    compare_run = gr.Dropdown([], label=I18N("finished_run"), scale=4, elem_id="compare-run")
                    compare_refresh = gr.Button(I18N("refresh"), scale=1, elem_id="compare-refresh")
                compare_message = gr.Markdown(elem_id="compare-message")
                compare_summary = gr.Markdown(elem_id="compare-summary")
                compare_time = gr.Slider(0, 1, value=0, step=0.1, label=I18N("time"), elem_id="compare-time")
                compare_slider = gr.ImageSlider(label=I18N("before_after"), interactive=False,
                                                elem_id="compare-slider")
                with gr.Row():
                    compare_source = gr.Video(label=I18N("source_video"), interactive=False, elem_id="compare-source")
                    compare_output = gr.Video(label=I18N("output_video"), interactive=False, elem_id="compare-output")
                metrics = gr.Dataframe(headers=["metric", "output", "lanczos baseline", "ratio"],
                                       label=I18N("metrics"), interactive=False, elem_id="metrics")
                per_frame = gr.Image(label=I18N("per_frame"), type="filepath", interactive=False, visible=False,
                                     elem_id="per-frame")
                with gr.Accordion(I18N("definitions"), open=False):
                    definitions = gr.Markdown(elem_id="definitions")

            with gr.Tab(I18N("tab_settings"), id="settings"):
                gr.Markdown(I18N("settings_note"))
                temporal = gr.Dropdown(_choice_list(TEMPORAL_METHODS, {"none": "opt_none", "auto": "opt_auto"}),
                                       value=initial["temporal"], label=I18N("temporal"), elem_id="temporal")
                temporal_strength = gr.Slider(0, 0.95, value=initial["temporal_strength"], step=0.05,
                                              label=I18N("temporal_strength"), elem_id="temporal-strength")
                device = gr.Dropdown(_choice_list(DEVICES, {"auto": "opt_auto"}), value=initial["device"],
                                     label=I18N("device"), elem_id="device")
                batch = gr.Number(initial["batch"], precision=0, minimum=0, label=I18N("batch"), elem_id="batch")
                fp16 = gr.Checkbox(initial["fp16"], label=I18N("fp16"), elem_id="fp16")
                codec = gr.Dropdown(list(CODECS), value=initial["codec"], label=I18N("codec"), elem_id="codec")
                container = gr.Dropdown(list(CONTAINERS), value=initial["container"], label=I18N("container"),
                                        elem_id="container")
                crf = gr.Slider(0, 51, value=initial["crf"], step=1, label=I18N("crf"), elem_id="crf")
                chunk_seconds = gr.Number(initial["chunk_seconds"], minimum=0.5, label=I18N("chunk_seconds"),
                                          elem_id="chunk-seconds")

            with gr.Tab(I18N("tab_system"), id="system") as system_tab:
                system_refresh = gr.Button(I18N("refresh"), elem_id="system-refresh")
                system_table = gr.Dataframe(headers=["field", "value"], label=I18N("system_info"), interactive=False,
                                            wrap=True, elem_id="system-info")
                runs_table = gr.Dataframe(headers=list(RUN_HEADERS), label=I18N("recent_runs"), interactive=False,
                                          datatype=["str"] * 7 + ["markdown"], wrap=True, elem_id="recent-runs")
                with gr.Row():
                    log_run = gr.Dropdown([], label=I18N("log_run"), allow_custom_value=True, scale=4,
                                          elem_id="log-run")
                    show_logs = gr.Button(I18N("show_logs"), scale=1, elem_id="show-logs")
                logs = gr.Code(label=I18N("logs"), interactive=False, lines=20, elem_id="logs")

        settings_inputs = [temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds]
        run_inputs = [upload, model, scale, interp_on, interp_method, interp_mode, factor, target_fps,
                      *settings_inputs]
        plan_inputs = [upload_state, scale, interp_on, interp_method, interp_mode, factor, target_fps]

        # -- Process tab

        def on_plan(state, scale_value, on, method, mode, factor_value, fps, request: gr.Request):
            upload_info = (state or {}).get("upload")
            choices = PageChoices(None, scale_value, on, method, mode, factor_value, fps)
            return plan_markdown(upload_info, choices, lang_of(request))

        # Events that take the file run with preprocess=False: Gradio's own file-type check would answer an API
        # call with an exception, where accept_upload's refusal says what to do.

        def on_inspect(file, request: gr.Request):
            """(file) -> (metadata table, message)."""
            lang = lang_of(request)
            path, name = file_argument(file)
            path = received_upload(path, workspace)
            inspection = inspect_file(workspace, path, original_name=name, max_upload=max_upload, lang=lang)
            state = {"file": path, "upload": inspection.upload} if inspection.upload else None
            headers = [label(lang, "col_field"), label(lang, "col_value")]
            return table(inspection.rows, headers), inspection.message, state

        upload.change(on_inspect, [upload], [metadata, upload_message, upload_state], api_name="inspect",
                      preprocess=False, concurrency_id="uploads", concurrency_limit=1).then(
            on_plan, plan_inputs, [plan], api_visibility="private", show_progress="hidden")

        gr.on([scale.change, interp_on.change, interp_method.change, interp_mode.change, factor.change,
               target_fps.change], on_plan, plan_inputs, [plan], api_visibility="private", show_progress="hidden",
              concurrency_limit=None)

        interp_on.change(lambda on: gr.Column(visible=bool(on)), [interp_on], [interp_box], api_visibility="private",
                         show_progress="hidden", queue=False)
        interp_mode.change(lambda mode: (gr.Radio(visible=mode != MODE_FPS), gr.Number(visible=mode == MODE_FPS)),
                           [interp_mode], [factor, target_fps], api_visibility="private", show_progress="hidden",
                           queue=False)

        def on_model(model_id, request: gr.Request):
            return model_markdown(model_id, models, lang_of(request))

        model.change(on_model, [model], [model_info], api_visibility="private", show_progress="hidden")

        def on_method(method, request: gr.Request):
            return method_markdown(method, methods, lang_of(request))

        interp_method.change(on_method, [interp_method], [interp_info], api_visibility="private",
                             show_progress="hidden")

        def _submit(kind, file, values, state, request):
            lang = lang_of(request)
            path, name = file_argument(file)
            path = received_upload(path, workspace)
            cached = (state or {}).get("upload") if path and (state or {}).get("file") == path else None
            submission = submit_run(service, path, PageChoices(*values), kind=kind, original_name=name,
                                    upload=cached, models=models, methods=methods, max_upload=max_upload, lang=lang)
            if not submission.run_id:
                gr.Warning(submission.message.removeprefix(WARN))
                return "", submission.message, {}
            for key, value in (("model", values[0]), ("scale", values[1]), ("interp_method", values[3])):
                remember(workspace, key, value)
            return submission.run_id, submission.message, {"run_id": submission.run_id, "kind": kind,
                                                           "source": submission.source}

        def on_process(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps,
                       temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds, state,
                       request: gr.Request):
            """(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
            temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds) -> (run_id, message);
            a refusal gives run_id "" and the reason."""
            values = (model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
                      temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds)
            return _submit("process", file, values, state, request)

        def on_preview(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps,
                       temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds, state,
                       request: gr.Request):
            """Same arguments and results as ``process``, for the first seconds of the video (a preview run)."""
            values = (model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
                      temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds)
            return _submit("preview", file, values, state, request)

        def start_polling(state, request: gr.Request):
            if not (state or {}).get("run_id"):
                return (gr.skip(),) * 9
            text = msg(lang_of(request), "queued")
            return (gr.Timer(active=True), progress_html(0.0, text), "", None, None, "", gr.Row(visible=False),
                    None, None)

        polling_outputs = [timer, progress, run_status, result_video, result_file, shown_state, preview_row,
                           preview_source, preview_result]
        for button, handler, name in ((process_button, on_process, "process"), (preview_button, on_preview, "preview")):
            button.click(handler, [*run_inputs, upload_state], [run_id, process_message, run_state], api_name=name,
                         preprocess=False, concurrency_id="uploads", concurrency_limit=1).then(
                start_polling, [run_state], polling_outputs, api_visibility="private", show_progress="hidden")

        def on_progress(run_id, shown, request: gr.Request):
            """(run_id) -> (progress HTML, Dagster status word, result video, result file); a result already
            sent to this page is not sent again."""
            view = progress_view(service, run_id, lang_of(request))
            if view.file and shown and shown == run_id:
                return view.html, view.status, gr.skip(), gr.skip(), shown
            return view.html, view.status, view.video, view.file, run_id if view.file else shown

        timer.tick(on_progress, [run_id, shown_state], [progress, run_status, result_video, result_file, shown_state],
                   api_name="progress", show_progress="hidden", concurrency_limit=None)

        def on_status(status, state):
            if status not in FINISHED:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            state = state or {}
            if status == "SUCCESS" and state.get("kind") == "preview" and state.get("run_id"):
                source, output = preview_pair(service, state.get("source"), state["run_id"])
                return gr.Timer(active=False), gr.Row(visible=True), source, output
            return gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip()

        run_id.change(lambda value: gr.skip() if value else gr.Timer(active=False), [run_id], [timer],
                      api_visibility="private", show_progress="hidden", queue=False)
        run_status.change(on_status, [run_status, run_state], [timer, preview_row, preview_source, preview_result],
                          api_visibility="private", show_progress="hidden")

        def on_cancel(run_id, request: gr.Request):
            """(run_id) -> message."""
            return cancel_run(service, run_id, lang_of(request))

        cancel_button.click(on_cancel, [run_id], [cancel_message], api_name="cancel")

        # -- Settings: every change is remembered

        def saver(key: str):
            def save(value):
                remember(workspace, key, value)

            return save

        remembered = {"model": model, "scale": scale, "interp_method": interp_method, "temporal": temporal,
                      "temporal_strength": temporal_strength, "device": device, "batch": batch, "fp16": fp16,
                      "codec": codec, "container": container, "crf": crf, "chunk_seconds": chunk_seconds}
        for key, component in remembered.items():
            component.input(saver(key), [component], None, api_visibility="private", show_progress="hidden",
                            concurrency_limit=None)

        # -- Compare tab

        def on_refresh_runs(current):
            # keep the chosen run; else pick the newest, so one click shows something
            choices = finished_runs(service)
            ids = [run for _label, run in choices]
            return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))

        compare_refresh.click(on_refresh_runs, [compare_run], [compare_run], api_visibility="private")

        def on_compare(run_id_value, request: gr.Request):
            lang = lang_of(request)
            view = compare_view(service, run_id_value, lang)
            headers = [label(lang, k) for k in ("col_metric", "col_output", "col_baseline", "col_ratio")]
            return (view.message, view.summary, gr.Slider(maximum=max(view.duration, 0.1), value=0),
                    view.source_video, view.output_video, table(view.rows, headers),
                    gr.Image(value=view.plot, visible=view.plot is not None), view.definitions,
                    {"source": view.source, "output": view.output})

        def on_frames(state, seconds):
            state = state or {}
            return compare_images(state.get("source"), state.get("output"), seconds)

        compare_run.change(on_compare, [compare_run], [compare_message, compare_summary, compare_time,
                                                       compare_source, compare_output, metrics, per_frame,
                                                       definitions, compare_state],
                           api_visibility="private").then(
            on_frames, [compare_state, compare_time], [compare_slider], api_visibility="private")
        compare_time.release(on_frames, [compare_state, compare_time], [compare_slider], api_visibility="private",
                             show_progress="minimal")

        # -- System tab

        def on_system(request: gr.Request):
            lang = lang_of(request)
            runs = runs_rows(service, lang)
            choices = []
            try:
                choices = [(f"{r.run_id[:8]} · {r.source or r.partition or '?'} · {r.status}", r.run_id)
                           for r in service.recent_runs(20)]
            except Exception as exc:  # noqa: BLE001 - the dropdown stays empty
                log.warning("ui: cannot list runs: %s", first_line(exc))
            return (table(system_rows(service, lang), [label(lang, "col_field"), label(lang, "col_value")]),
                    table(runs, [label(lang, k) for k in RUN_HEADERS]), gr.Dropdown(choices=choices))

        system_outputs = [system_table, runs_table, log_run]
        system_refresh.click(on_system, None, system_outputs, api_visibility="private")
        system_tab.select(on_system, None, system_outputs, api_visibility="private")

        def on_logs(run_id_value, request: gr.Request):
            return run_logs(service, run_id_value, lang_of(request))

        show_logs.click(on_logs, [log_run], [logs], api_visibility="private")
        log_run.change(on_logs, [log_run], [logs], api_visibility="private")

        # -- page load: remembered settings, fresh model list, finished runs

        def on_load(request: gr.Request):
            nonlocal models, methods
            lang = lang_of(request)
            try:
                models = model_choices()
                methods = interpolation_methods()
            except Exception as exc:  # noqa: BLE001 - keep the lists read at start
                log.warning("ui: cannot refresh the model list: %s", first_line(exc))
            values = page_settings(workspace, models, methods)
            return (
                gr.Dropdown(choices=[(model_label(m, lang), m.id) for m in models], value=values["model"]),
                model_markdown(values["model"], models, lang),
                values["scale"],
                gr.Dropdown(choices=[(method_label(n, r, lang), n) for n, r in methods],
                            value=values["interp_method"]),
                method_markdown(values["interp_method"], methods, lang),
                values["temporal"], values["temporal_strength"], values["device"], values["batch"], values["fp16"],
                values["codec"], values["container"], values["crf"], values["chunk_seconds"],
                msg(lang, "plan_none"),
                gr.Dropdown(choices=finished_runs(service)),
                '<span data-ready="1"></span>',
            )

        app.load(on_load, None, [model, model_info, scale, interp_method, interp_info, *settings_inputs, plan,
                                 compare_run, ready], api_visibility="private")
    return app


__all__ = [
    "API_NAMES",
    "CompareView",
    "Inspection",
    "PageChoices",
    "ProgressView",
    "Submission",
    "build_app",
    "cancel_run",
    "compare_images",
    "compare_view",
    "finished_runs",
    "format_duration",
    "inspect_file",
    "launch_options",
    "metrics_rows",
    "page_settings",
    "plan_markdown",
    "progress_view",
    "remember",
    "run_logs",
    "runs_rows",
    "submit_run",
    "system_rows",
]
