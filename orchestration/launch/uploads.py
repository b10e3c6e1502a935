"""Uploads for the page and the export endpoint: the size limit, safe file names, accepting a video into the
workspace (checked by extension and by probing it), its first seconds as a preview, and before/after frames.

An accepted upload is kept under ``<workspace>/uploads/<key>/`` (``key``: the start of its sha256), so the same
file uploaded twice is stored once.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.resources.workspace import Workspace
from stages.errors import InputError, SettingsError, StageError
from stages.media.aspect import format_ratio
from stages.media.probe import VideoInfo, probe_video
from stages.store.fsutil import sha256_file

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ENV",
    "PREVIEW_SECONDS",
    "UPLOAD_SUFFIXES",
    "UploadError",
    "UploadInfo",
    "accept_upload",
    "compare_frames",
    "human_size",
    "max_upload_bytes",
    "preview_upload",
    "safe_name",
]

UPLOAD_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
MAX_UPLOAD_ENV = "VUP_MAX_UPLOAD_MB"
PREVIEW_SECONDS = 5.0


class UploadError(InputError):
    """An upload the page refuses: the message says what is wrong and what to do."""


# ------------------------------------------------------------------------------------------------ uploads


def max_upload_bytes() -> int:
    """The upload limit: ``VUP_MAX_UPLOAD_MB`` (megabytes) if set, else 2 GB."""
    raw = os.environ.get(MAX_UPLOAD_ENV)
    if not raw:
        return DEFAULT_MAX_UPLOAD_BYTES
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"ui: {MAX_UPLOAD_ENV}={raw!r} is not a number of megabytes; e.g. 2048") from None
    if value <= 0:
        raise SettingsError(f"ui: {MAX_UPLOAD_ENV}={raw} must be above 0; e.g. 2048")
    return int(value * (1 << 20))


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                              *(f"LPT{i}" for i in range(10))})


def safe_name(name: str, default: str = "video") -> str:
    """A file name with no folder part and only letters, digits, ``.``, ``-``, ``_`` (others become ``_``);
    never hidden, never empty, at most 120 characters (the extension kept)."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    clean_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100].rstrip("._-") or default
    if clean_stem.split(".")[0].upper() in _WINDOWS_DEVICES:  # CON.mp4, nul.mkv: devices, not files, on Windows
        clean_stem = f"_{clean_stem}"
    clean_suffix = re.sub(r"[^A-Za-z0-9]+", "", suffix)[:10].lower()
    return f"{clean_stem}.{clean_suffix}" if clean_suffix else clean_stem


@dataclass(frozen=True)
class UploadInfo:
    """An accepted upload: its copy under ``<workspace>/uploads/<key>/`` and what it contains."""

    path: Path
    name: str
    key: str
    sha256: str
    info: VideoInfo

    @property
    def fps(self) -> float:
        return float(self.info.avg_fps)

    def rows(self) -> list[tuple[str, str]]:
        """(field, value) rows for a metadata table (English field names; the page translates them)."""
        info = self.info
        audio = ", ".join(f"{a.codec} {a.channels} ch {a.sample_rate} Hz" for a in info.audio_streams) or "none"
        return [
            ("resolution", f"{info.width}x{info.height}" + (f" (rotated {info.rotation}°)" if info.rotation else "")
             + (f" (pixels {format_ratio(info.sample_aspect)}, shown {format_ratio(info.display_aspect)})"
                if info.sample_aspect != 1 else "") + (" interlaced" if info.interlaced else "")),
            ("fps", f"{info.avg_fps:.3f}".rstrip("0").rstrip(".") + (" (variable)" if info.is_vfr else "")),
            ("duration", f"{info.duration:.2f} s ({info.frame_count} frames)"),
            ("video codec", f"{info.codec}, {info.pix_fmt}, {info.bit_depth}-bit"),
            ("audio", audio),
            ("size", human_size(info.size_bytes)),
        ]


def accept_upload(workspace: Workspace, path: str | Path, *, original_name: str | None = None,
                  max_bytes: int | None = None, move: bool = False) -> UploadInfo:
    """Check an uploaded file and keep a copy under the workspace; returns what it contains.

    The type is checked by extension (MP4, MOV, MKV, AVI, WEBM) and by content (it must probe as a video with
    frames); the size against ``max_bytes`` (default :func:`max_upload_bytes`). The copy is named after the
    sanitised original name, in a folder named after the content hash, so two uploads never collide and the
    same file uploaded twice is stored once. ``move``: the file is a temporary copy on the workspace's disk (the
    export endpoint's), renamed into place instead of copied again.

    Raises:
        UploadError: wrong type, empty, too large, or not a readable video (the message says what to do).
    """
    source = Path(path)
    name = safe_name(original_name or source.name)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        kinds = ", ".join(s[1:].upper() for s in UPLOAD_SUFFIXES)
        raise UploadError(f"upload: {name} is not a video file the page takes ({kinds}); convert it or pick another")
    if not source.is_file():
        raise UploadError(f"upload: {name} did not arrive; upload it again")
    size = source.stat().st_size
    if size == 0:
        raise UploadError(f"upload: {name} is empty (0 bytes); upload the file again")
    if size > limit:
        raise UploadError(
            f"upload: {name} is {human_size(size)}, above the {human_size(limit)} limit; trim it, or raise the limit "
            f"(vup serve --max-upload-mb, or {MAX_UPLOAD_ENV})"
        )
    try:
        info = probe_video(source)
    except StageError as exc:
        raise UploadError(f"upload: {name} is not a video the pipeline can read ({exc}); check the file") from exc
    if info.frame_count < 1:
        raise UploadError(f"upload: {name} has no video frames; pick a file with a video stream")
    digest = sha256_file(source)
    key = digest[:16]
    folder = workspace.uploads / key
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / name
    if not (stored.is_file() and stored.stat().st_size == size):
        if move:
            os.replace(source, stored)
        else:
            partial = folder / f".{name}.partial"
            shutil.copyfile(source, partial)
            os.replace(partial, stored)
    return UploadInfo(path=stored, name=name, key=key, sha256=digest,
                      info=dataclasses.replace(info, path=str(stored)))


def preview_upload(workspace: Workspace, upload: UploadInfo, seconds: float = PREVIEW_SECONDS) -> UploadInfo:
    """The first ``seconds`` of an upload as an upload of its own (its own partition), for the Preview button.

    A clip no longer than ``seconds`` is its own preview.
    """
    from stages.media.preview import cut_head

    if upload.info.duration <= seconds:
        return upload
    folder = workspace.uploads / upload.key
    target = folder / f"{Path(upload.name).stem}_first{seconds:g}s.mp4"
    if not target.is_file():
        cut_head(upload.path, target, seconds)
    return accept_upload(workspace, target, max_bytes=max(upload.info.size_bytes, target.stat().st_size) + 1)


def compare_frames(source: str | Path, output: str | Path, seconds: float) -> tuple[Any, Any]:
    """(source frame resized to the output's size with Lanczos, output frame) at ``seconds`` (RGB arrays),
    for a before/after slider; both sides have the same size so they line up."""
    from stages.media.preview import frame_at, resize_to

    after = frame_at(output, seconds)
    before = resize_to(frame_at(source, seconds), after.shape[1], after.shape[0])
    return before, after
