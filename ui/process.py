"""What the Process tab does: accept and describe an upload, show the output plan, submit a run (or a preview),
follow its progress, cancel it, and give the preview's pair of clips."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.launch.events import first_line
from orchestration.launch.options import (
    ModelChoice,
    build_ui_request,
    interpolation_methods,
    model_choices,
)
from orchestration.launch.uploads import UploadInfo, accept_upload, preview_upload
from stages.errors import StageError
from ui.choices import PageChoices
from ui.common import WARN, _unexpected, browser_playable, format_duration, servable
from ui.i18n import field as field_name
from ui.i18n import msg

log = logging.getLogger(__name__)

FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED", "UNKNOWN"})
WAITING = frozenset({"QUEUED", "NOT_STARTED", "STARTING"})


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
    text = msg(lang, "plan", size=plan.size, at=at, source=source)
    if plan.error:
        text += f"\n\n⛔ **{msg(lang, 'refused', text=plan.error)}**"
    elif plan.warning:
        text += f"\n\n{WARN}{msg(lang, 'warning', text=plan.warning)}"
    scale_note = _scale_note(choices)
    if scale_note:
        text += f"\n\n{scale_note}"
    return text


def _scale_note(choices: PageChoices) -> str | None:
    """What the chosen scale does with the chosen model and what it costs (x2 from a x4 network)."""
    from stages.models.store import ModelStore
    from stages.ops.upscale.selection import explain_scale

    try:
        return explain_scale(ModelStore(progress=False), choices.model or "auto", int(choices.scale))
    except (StageError, TypeError, ValueError):
        return None


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
