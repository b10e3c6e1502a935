"""Helpers the whole page uses: figures formatted for a table, the files the page may serve or receive, and the
one-line message of an unexpected error."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import gradio as gr

from orchestration.launch.events import first_line

log = logging.getLogger(__name__)

BROWSER_CODECS = {".mp4": ("h264", "avc1", "av1"), ".webm": ("vp8", "vp9", "av1")}
WARN = "⚠️ "


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


def table(rows: list[list[Any]], headers: list[str]) -> dict[str, Any]:
    """A Dataframe value with its headers."""
    return {"headers": headers, "data": rows}
