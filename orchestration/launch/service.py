"""What the Gradio page needs from the pipeline, with no Gradio in it: accept an upload, describe it, list the
models, compute the output a choice of settings gives, remember the page's settings, submit runs to the Dagster
webserver (GraphQL), and read their progress, logs and results back from the Dagster instance.

Runs go through the webserver, like a click in the Dagster UI, so they appear there with their partition and the
daemon launches them in their own process (no model runs in the page's process). Runs started elsewhere (CLI,
inbox, Dagster UI) show in :meth:`DagsterService.recent_runs` too, since everything is read from the instance.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

import orchestration.graphs.enhance_steps  # noqa: F401 - binds the chain's steps, which run_stages reads
from orchestration.graphs.chain import run_stages
from orchestration.graphs.retries import limit_tags
from orchestration.launch.events import error_line, first_line, progress_events
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import (
    ReframeRequest,
    register_reframe,
)
from orchestration.launch.validate import validate_request
from orchestration.resources.workspace import Workspace, register_video
from orchestration.sensors.inbox import (
    ENHANCE_JOB,
    SCHEMA,
    TAG_LAUNCHED_BY,
    TAG_SOURCE,
    build_request,
    run_config_for,
)
from stages.errors import InputError, SettingsError, StageError
from stages.media.probe import VideoInfo, probe_video
from stages.ops.interpolate.engine import InterpolationSettings, rational_fps
from stages.ops.upscale.engine import MAX_OUTPUT_LONG_SIDE, MAX_OUTPUT_SHORT_SIDE
from stages.store.fsutil import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
MAX_UPLOAD_ENV = "VUP_MAX_UPLOAD_MB"
UHD = (3840, 2160)
PREVIEW_SECONDS = 5.0
TAG_KIND = "vup/kind"
PARTITION_TAG = "dagster/partition"
CONTAINERS = ("mp4", "mkv", "mov")
SETTINGS_FILE = "ui-settings.json"

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
            ("resolution", f"{info.width}x{info.height}" + (f" (rotated {info.rotation}°)" if info.rotation else "")),
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


# ------------------------------------------------------------------------------------------------ choices


@dataclass(frozen=True)
class ModelChoice:
    """One model the page offers; ``reason`` says why it cannot be used (None when it can); ``note`` what
    using it implies (a download on first use)."""

    id: str
    label: str
    description: str
    scale: int
    available: bool
    reason: str | None
    note: str | None = None


def model_choices(store: Any | None = None, memory_bytes: int | None = None) -> list[ModelChoice]:
    """The super-resolution models of the catalog (and imported ones), each available or not with the reason.

    A model is unavailable when its weights are not on this machine and cannot be fetched or converted, or
    when the memory it needs (about 4x its file plus 512 MB for the smallest tile) is above ``memory_bytes``
    (default: free host memory, or free VRAM of the first CUDA device).
    """
    from stages.models.store import ModelStore

    store = store or ModelStore()
    memory = memory_bytes if memory_bytes is not None else _device_memory()
    choices = []
    for status in store.list():
        entry = status.entry
        if entry.task != "super-resolution":
            continue
        reason = None if status.available else (status.reason or "weights are missing")
        size = entry.file.size if entry.file and entry.file.size else 0
        if reason is None and memory is not None:
            need = size * 4 + (512 << 20)
            if need > memory:
                reason = f"needs about {human_size(need)} of memory, {human_size(memory)} free"
        available = reason is None
        note = None
        if available and status.source == "download":
            note = f"downloads {human_size(size)} on first use" if size else "downloads its weights on first use"
        label = f"{entry.id} (x{entry.scale})" + ("" if available else " - unavailable") + (
            " - download" if note else "")
        choices.append(ModelChoice(entry.id, label, entry.description, entry.scale, available, reason, note))
    return choices


def _device_memory() -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            free, _total = torch.cuda.mem_get_info(0)
            return int(free)
    except Exception as exc:  # noqa: BLE001 - no usable CUDA: fall back to host memory
        log.debug("no CUDA memory figure (%s); using host memory", exc)
    from stages.device import host_free_memory

    return host_free_memory()


def interpolation_methods() -> list[tuple[str, str | None]]:
    """(method, reason it is unavailable or None) for the page's interpolation dropdown."""
    from stages.models.store import ModelStore

    store = ModelStore()
    rife = [s for s in store.list() if s.entry.task == "frame-interpolation"]
    rife_reason = None if any(s.available for s in rife) else (
        "no RIFE weights on this machine (`vup models download rife-4.25`); auto uses optical flow")
    return [("auto", None), ("rife", rife_reason), ("flow", None), ("blend", None), ("minterpolate", None)]


@dataclass(frozen=True)
class OutputPlan:
    """The output a choice gives: size, rate, and a warning or the reason it is refused."""

    width: int
    height: int
    fps: float | None
    warning: str | None = None
    error: str | None = None

    def describe(self) -> str:
        fps = f" at {self.fps:.3f}".rstrip("0").rstrip(".") + " fps" if self.fps else ""
        return f"{self.width}x{self.height}{fps}"


def plan_output(width: int, height: int, fps: float, scale: int, interpolation: str = "none",
                factor: int | None = None, target_fps: str | float | None = None) -> OutputPlan:
    """Output size and rate for a source and settings: a warning above 4K, an error above 8K or 120 fps."""
    out_w, out_h = width * scale, height * scale
    error = warning = None
    if max(out_w, out_h) > MAX_OUTPUT_LONG_SIDE or min(out_w, out_h) > MAX_OUTPUT_SHORT_SIDE:
        error = f"{out_w}x{out_h} is above the 8K limit (7680x4320); choose a smaller scale"
    elif max(out_w, out_h) > UHD[0] or min(out_w, out_h) > UHD[1]:
        warning = f"{out_w}x{out_h} is above 4K: large files and a long run"
    out_fps: float | None = fps
    if interpolation != "none":
        try:
            settings = InterpolationSettings(
                method=interpolation, factor=factor if target_fps in (None, "") else None,
                target_fps=rational_fps(target_fps) if target_fps not in (None, "") else None)
            out_fps = float(settings.validate(rational_fps(fps)))
        except SettingsError as exc:
            # the stage speaks in CLI flags; the page has a factor and a target-fps field
            error = error or (str(exc).removeprefix("interpolate: ").replace("--interpolate ", "factor ")
                              .replace("--fps ", "target fps "))
            out_fps = None
    return OutputPlan(out_w, out_h, out_fps, warning, error)


# ------------------------------------------------------------------------------------------------ settings

DEFAULT_SETTINGS: dict[str, Any] = {
    "model": None,
    "scale": 4,
    "temporal": "none",
    "temporal_strength": 0.6,
    "device": "auto",
    "batch": 0,
    "fp16": False,
    "codec": "h264",
    "container": "mp4",
    "crf": 18,
    "chunk_seconds": 10.0,
    "interp_method": "auto",
}


def load_settings(workspace: Workspace) -> dict[str, Any]:
    """The page's remembered settings (defaults for anything missing or unreadable)."""
    path = workspace.root / SETTINGS_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    return {key: stored.get(key, default) if _same_kind(stored.get(key), default) else default
            for key, default in DEFAULT_SETTINGS.items()}


def _same_kind(value: Any, default: Any) -> bool:
    if value is None:
        return default is None
    if default is None:
        return isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def save_settings(workspace: Workspace, settings: dict[str, Any]) -> dict[str, Any]:
    """Remember the known keys of ``settings`` (atomically); returns what was stored."""
    current = load_settings(workspace)
    current.update({k: v for k, v in settings.items() if k in DEFAULT_SETTINGS and _same_kind(v, DEFAULT_SETTINGS[k])})
    workspace.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(workspace.root / SETTINGS_FILE, json.dumps(current, indent=2))
    return current


def build_ui_request(workspace: Workspace, upload: UploadInfo, choices: dict[str, Any]) -> EnhanceRequest:
    """The request for an upload and the page's choices, checked like the CLI's (``validate_request``).

    ``choices`` takes the inbox's keys (see orchestration/sensors/inbox.py: model, scale, interpolate, fps,
    interp_method, temporal, codec, crf, chunk_seconds...) plus ``device``, ``fp16`` and ``container``.
    The output goes to ``<workspace>/outputs/<partition>/<name>_enhanced.<container>``.

    Raises:
        SettingsError / InputError: a setting is impossible (message says which and what to use).
    """
    unknown = sorted(set(choices) - set(SCHEMA) - {"device", "fp16", "container"})
    if unknown:
        raise SettingsError(f"ui: unknown setting(s) {', '.join(unknown)}")
    settings = {k: v for k, v in choices.items() if k in SCHEMA and v is not None and v != ""}
    if "output" in settings:
        raise SettingsError("ui: the page chooses the output name; set the container instead")
    container = choices.get("container") or "mp4"
    if container not in CONTAINERS:
        raise SettingsError(f"ui: container {container!r} is not one of {', '.join(CONTAINERS)}")
    record = register_video(workspace, upload.path, sha256=upload.sha256)
    request = build_request(workspace, upload.path, settings, record.key)
    request = dataclasses.replace(
        request,
        output=workspace.outputs / record.key / f"{Path(upload.name).stem}_enhanced.{container}",
        device=choices.get("device") or "auto",
        precision="fp16" if choices.get("fp16") else "auto",
    )
    validate_request(request)
    return request


# ------------------------------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: Dagster's status, the share of work done, the stage, times, and its results."""

    run_id: str
    status: str
    fraction: float
    stage: str
    elapsed_s: float
    eta_s: float | None
    output: str | None = None
    report: dict[str, Any] | None = None
    report_dir: str | None = None
    error: str | None = None
    partition: str | None = None
    events: int = 0
    kind: str | None = None
    source: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    partition: str | None
    source: str | None
    launched_by: str | None
    kind: str | None
    started: float | None
    seconds: float | None
    url: str


# Seconds of one chunk of each stage per second of one upscale chunk, for stages not yet measured (CPU, 2 cores,
# animevideov3 x4, 320x180 input; `python -m benchmarks.eta`). Per output frame: stages after interpolation scale
# with the interpolation factor.
STAGE_PRIORS = {"frames": 0.02, "upscale": 1.0, "interpolate": 0.6, "cohere": 0.4, "encode": 0.28, "report": 0.36}


@dataclass
class _StageTally:
    chunks: int | None = None
    done: int = 0
    measured: list[float] = field(default_factory=list)


def _chunk_mean(values: Sequence[float]) -> float | None:
    """Typical seconds per chunk: the mean, leaving out the first chunk (model load, warm-up) once there are
    others."""
    if not values:
        return None
    steady = values[1:] if len(values) > 1 else values
    return sum(steady) / len(steady)


def learn_priors(runs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[str], float]]) -> dict[str, float]:
    """Stage costs relative to the upscale stage, from finished runs on this machine: for each stage, the median
    over ``runs`` (each: its events, its stages, its frame ratio) of its mean chunk seconds over the upscale
    stage's (divided by the frame ratio after interpolation). Stages never measured keep :data:`STAGE_PRIORS`."""
    ratios: dict[str, list[float]] = {}
    for events, stages, frame_ratio in runs:
        per_stage: dict[str, list[float]] = {}
        for event in events:
            if not event.get("reused"):
                per_stage.setdefault(str(event.get("stage")), []).append(float(event.get("seconds") or 0.0))
        upscale = _chunk_mean(per_stage.get("upscale", []))
        if not upscale:
            continue
        after_interp = False
        for stage in stages:
            after_interp = after_interp or stage == "interpolate"
            mean = _chunk_mean(per_stage.get(stage, []))
            if mean is not None and stage != "upscale":
                ratios.setdefault(stage, []).append(mean / upscale / (frame_ratio if after_interp else 1.0))
    learned = dict(STAGE_PRIORS)
    for stage, values in ratios.items():
        values.sort()
        learned[stage] = values[len(values) // 2]
    return learned


def estimate_progress(observations: Sequence[dict[str, Any]], stages: Sequence[str],
                      frame_ratio: float = 1.0, priors: dict[str, float] | None = None,
                      ) -> tuple[float, str, float | None]:
    """(fraction done, current stage, seconds left or None) from the per-chunk progress events of a run.

    Each event has ``stage``, ``chunk``, ``chunks``, ``frames``, ``reused``, ``seconds`` (see
    orchestration/graphs/enhance.py). A stage's remaining chunks cost its measured chunk mean (reused chunks and, once
    there are others, the first chunk left out); a stage not yet measured costs its prior (``priors``, default
    :data:`STAGE_PRIORS`; :func:`learn_priors` makes them from earlier runs) times the upscale stage's mean,
    times ``frame_ratio`` for stages after interpolation. Until one upscale chunk (or the current stage) is
    measured there is no ETA.
    """
    priors = priors or STAGE_PRIORS
    tallies = {stage: _StageTally() for stage in stages}
    current = stages[0] if stages else ""
    chunk_count = None
    for event in observations:
        stage = str(event.get("stage", ""))
        if stage not in tallies:
            continue
        tally = tallies[stage]
        tally.chunks = int(event.get("chunks") or 0) or tally.chunks
        chunk_count = chunk_count or tally.chunks
        tally.done += 1
        if not event.get("reused"):
            tally.measured.append(float(event.get("seconds") or 0.0))
        current = stage
    if chunk_count is None:
        return 0.0, current, None
    for tally in tallies.values():
        tally.chunks = tally.chunks or chunk_count
        tally.done = min(tally.done, tally.chunks)

    # the unit the priors multiply: the upscale stage's mean, else the latest measured stage's (priors undone)
    upscale = _chunk_mean(tallies["upscale"].measured) if "upscale" in tallies else None
    if upscale is None:
        for stage in reversed(stages):
            measured = _chunk_mean(tallies[stage].measured)
            if measured is not None and stage != "frames":
                upscale = measured / priors.get(stage, 0.3)
                break
    after_interp = False
    spent = left = 0.0
    unknown = False
    total_chunks = sum(t.chunks or 0 for t in tallies.values())
    done_chunks = sum(t.done for t in tallies.values())
    for stage in stages:
        tally = tallies[stage]
        measured = _chunk_mean(tally.measured)
        if stage == "interpolate":
            after_interp = True
        if measured is not None:
            per_chunk = measured
        elif upscale is not None:
            per_chunk = priors.get(stage, 0.3) * upscale * (frame_ratio if after_interp else 1.0)
        else:
            per_chunk = None
        remaining = (tally.chunks or 0) - tally.done
        spent += sum(tally.measured)
        if remaining > 0:
            if per_chunk is None:
                unknown = True
            else:
                left += remaining * per_chunk
    if unknown:
        fraction = done_chunks / total_chunks if total_chunks else 0.0
        return min(fraction, 0.99), current, None
    fraction = spent / (spent + left) if spent + left > 0 else done_chunks / max(total_chunks, 1)
    if done_chunks < total_chunks:
        fraction = min(fraction, 0.99)
    return fraction, current, left


def _stages_of(run_config: dict[str, Any]) -> tuple[list[str], float, str]:
    """Expected progress stages of a run from its config (derived from its chain), the output/input frame ratio,
    and the output path."""
    ops = (run_config or {}).get("ops", {})
    stages, ratio = run_stages(ops)
    output = ops.get("encoded_video", {}).get("config", {}).get("output_path")
    return stages, ratio, output


class DagsterService:
    """Submits runs to a Dagster webserver and reads runs from the instance both use.

    ``webserver_url``: e.g. ``http://127.0.0.1:3000`` (the Dagster UI; also where GraphQL is). ``instance``:
    defaults to ``DagsterInstance.get()`` (``DAGSTER_HOME``), the instance the webserver serves.
    """

    def __init__(self, workspace: Workspace, webserver_url: str, instance: DagsterInstance | None = None) -> None:
        self.workspace = workspace
        self.webserver_url = webserver_url.rstrip("/")
        self._instance = instance
        self._priors: tuple[float, dict[str, float]] | None = None  # (when learned, priors)

    @property
    def instance(self) -> DagsterInstance:
        if self._instance is None:
            self._instance = DagsterInstance.get()
        return self._instance

    def _client(self):
        from dagster_graphql import DagsterGraphQLClient

        url = urlparse(self.webserver_url)
        return DagsterGraphQLClient(url.hostname or "127.0.0.1", port_number=url.port,
                                    use_https=url.scheme == "https", timeout=60, path_prefix=url.path or "")

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url}/runs/{run_id}"

    # -- submit and cancel

    def submit(self, request: EnhanceRequest, *, kind: str = "process", sha256: str | None = None) -> str:
        """Register the input as a ``videos`` partition and submit ``enhance_job`` for it; returns the run id.

        ``sha256``: the input's digest when known (an accepted upload), so a large file is not hashed again.

        Raises:
            StageError: the webserver cannot be reached or refused the run (message says what to do).
        """
        record = register_video(self.workspace, request.input, sha256=sha256)
        run_config = run_config_for(request)
        run_config["resources"] = {"device": {"config": {"device": request.device, "precision": request.precision}}}
        tags = {TAG_SOURCE: record.name, TAG_LAUNCHED_BY: "ui", TAG_KIND: kind, **limit_tags(request.max_runtime_hours)}
        return self._submit(ENHANCE_JOB, "videos", record.key, run_config, tags, "ui")

    def _submit(self, job: str, partitions: str, key: str, run_config: dict[str, Any], tags: dict[str, str],
                who: str) -> str:
        """Add ``key`` to the dynamic partitions ``partitions`` and submit ``job`` for it through the webserver.

        Raises:
            StageError: the webserver cannot be reached or refused the run (``who`` starts the message).
        """
        from dagster_graphql import DagsterGraphQLClientError

        if not self.instance.has_dynamic_partition(partitions, key):
            self.instance.add_dynamic_partitions(partitions, [key])
        try:
            return self._client().submit_job_execution(job, run_config=run_config, tags={PARTITION_TAG: key, **tags})
        except DagsterGraphQLClientError as exc:
            raise StageError(f"{who}: Dagster refused the run ({first_line(exc)}); see the webserver's log") from exc
        except Exception as exc:
            raise StageError(
                f"{who}: cannot reach the Dagster webserver at {self.webserver_url} ({first_line(exc)}); "
                "start everything with `vup serve`"
            ) from exc

    def submit_reframe(self, request: ReframeRequest, *, sha256: str | None = None,
                       info: VideoInfo | None = None) -> tuple[str, Path]:
        """Validate and register ``request`` as a ``reframes`` partition and submit ``reframe_job`` for it;
        returns the run id and the path its video will have. ``sha256`` and ``info``: the accepted upload's
        digest and probe, so the file is not read again for them.

        Raises:
            InputError / SettingsError: the video, a keyframe or a setting cannot be used (before any run).
            StageError: the webserver cannot be reached or refused the run.
        """
        from orchestration.graphs.reframe import REFRAME_JOB, default_output

        key = register_reframe(self.workspace, request, sha256=sha256, info=info)
        output = request.output.expanduser().resolve() if request.output else default_output(
            self.workspace, key, request.input.name)
        run_config = {"resources": {"device": {"config": {"device": request.device, "precision": request.precision}}}}
        tags = {TAG_SOURCE: request.input.name, TAG_LAUNCHED_BY: "api", TAG_KIND: "reframe",
                **limit_tags(request.max_runtime_hours)}
        return self._submit(REFRAME_JOB, "reframes", key, run_config, tags, "api"), output

    def known_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is a run of this instance. Anything that is not a plain run id (letters, digits,
        ``-``, ``_``) is refused before it reaches the instance: SQLite event-log storage keeps one database per
        run at ``history/runs/<run_id>.db``, so a run id such as ``../../x`` would open (and create) a file
        outside the instance's folder."""
        return bool(isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id)) and self.instance.has_run(run_id)

    def cancel(self, run_id: str) -> str:
        """Ask Dagster to stop a run (a queued run is dropped, a started one is terminated); returns a message."""
        if not self.known_run(run_id):
            return f"no run {run_id}"
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return f"no run {run_id}"
        if run.status.value in TERMINAL:
            return f"run {run_id[:8]} already ended ({run.status.value.lower()})"
        try:
            self._client().terminate_run(run_id)
        except Exception as exc:  # noqa: BLE001 - reported to the user
            return f"could not cancel run {run_id[:8]}: {first_line(exc)}"
        return f"cancelling run {run_id[:8]}"

    # -- read back

    def progress(self, run_id: str) -> RunProgress:
        """Status, share of work done, stage, elapsed time, ETA and (when finished) the results of a run."""
        record = self.instance.get_run_record_by_id(run_id) if self.known_run(run_id) else None
        if record is None:
            return RunProgress(run_id, "UNKNOWN", 0.0, "", 0.0, None, error=f"no run {run_id}")
        run = record.dagster_run
        status = run.status.value
        stages, ratio, output = _stages_of(run.run_config)
        observations = self._observations(run_id)
        fraction, stage, eta = estimate_progress(observations, stages, ratio, self.priors())
        # elapsed from the submission (queue and start-up included: what the user waited)
        start = record.create_timestamp.timestamp()
        end = record.end_time if status in TERMINAL and record.end_time else time.time()
        elapsed = max(0.0, end - start)
        report = report_dir = error = None
        if status == "SUCCESS":
            fraction, eta, stage = 1.0, 0.0, "done"
            report_dir = self._report_dir(run_id)
            if report_dir:
                try:
                    report = json.loads((Path(report_dir) / "summary.json").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    report = None
            output = (report or {}).get("output", {}).get("path") or output
        elif status == "FAILURE":
            error = self.failure_message(run_id)
            eta = None
        elif status in ("CANCELED", "CANCELING"):
            eta = None
        return RunProgress(run_id, status, fraction, stage, elapsed, eta, output if status == "SUCCESS" else None,
                           report, report_dir, error, run.tags.get(PARTITION_TAG), len(observations),
                           run.tags.get(TAG_KIND), run.tags.get(TAG_SOURCE))

    def priors(self, runs: int = 5, max_age_s: float = 60.0) -> dict[str, float]:
        """Stage cost priors learned from the last ``runs`` successful enhance runs of this instance (this
        machine's own balance of model, encode and report work), refreshed at most every ``max_age_s``."""
        cached = self._priors
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        history = []
        try:
            records = self.instance.get_run_records(
                RunsFilter(job_name=ENHANCE_JOB, statuses=[DagsterRunStatus.SUCCESS]), limit=runs)
            for record in records:
                stages, ratio, _ = _stages_of(record.dagster_run.run_config)
                history.append((self._observations(record.dagster_run.run_id), stages, ratio))
        except Exception as exc:  # noqa: BLE001 - fixed priors then
            log.debug("no run history for the ETA (%s)", exc)
        learned = learn_priors(history)
        self._priors = (time.monotonic(), learned)
        return learned

    def _observations(self, run_id: str) -> list[dict[str, Any]]:
        return [event for event, _logged in progress_events(self.instance, run_id)]

    def _report_dir(self, run_id: str) -> str | None:
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.dagster_event.event_specific_data.materialization
            if materialization.asset_key.path[-1] == "metrics_report" and "report" in materialization.metadata:
                return str(materialization.metadata["report"].value)
        return None

    def failure_message(self, run_id: str) -> str:
        """The first line of the deepest error of the first failed step, else of the run failure."""
        for entry in self.instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE,
                                                              DagsterEventType.RUN_FAILURE}):
            error = getattr(entry.dagster_event.event_specific_data, "error", None)
            if error is not None:
                return error_line(error)
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
            return entry.dagster_event.message or "the run failed"
        return "the run failed; open it in the Dagster UI for its logs"

    def recent_runs(self, limit: int = 20) -> list[RunRow]:
        """The latest ``enhance_job`` runs of the instance, whoever started them."""
        rows = []
        for record in self.instance.get_run_records(RunsFilter(job_name=ENHANCE_JOB), limit=limit):
            run = record.dagster_run
            end = record.end_time
            rows.append(RunRow(
                run.run_id, run.status.value, run.tags.get(PARTITION_TAG), run.tags.get(TAG_SOURCE),
                run.tags.get(TAG_LAUNCHED_BY), run.tags.get(TAG_KIND), record.start_time,
                (end - record.start_time) if end and record.start_time else None, self.run_url(run.run_id)))
        return rows

    def logs(self, run_id: str, limit: int = 400) -> str:
        """The run's log messages (time, level, step, message), oldest first, at most ``limit`` lines; empty for
        an unknown run id."""
        if not self.known_run(run_id):
            return ""
        lines = []
        for entry in self.instance.all_logs(run_id)[-limit:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
            step = entry.step_key or "run"
            message = entry.dagster_event.message if entry.dagster_event else entry.user_message
            level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else str(entry.level)
            lines.append(f"{stamp} {level:7} {step}: {(message or '').strip()}")
        return "\n".join(lines)

    def wait(self, run_id: str, timeout: float = 600.0, poll: float = 1.0) -> RunProgress:
        """Poll until the run ends (or ``timeout`` seconds); returns the last progress."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(run_id)
            if progress.finished or time.monotonic() > deadline:
                return progress
            time.sleep(poll)


# ------------------------------------------------------------------------------------------------ system


def system_info(workspace: Workspace, webserver_url: str) -> list[tuple[str, str]]:
    """(field, value) rows: device, memory, VRAM, CPU, versions, Dagster instance and webserver."""
    from importlib.metadata import PackageNotFoundError, version

    from stages.device import cpu_name, host_free_memory

    rows: list[tuple[str, str]] = []
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info(0)
            rows.append(("device", f"CUDA: {props.name}"))
            rows.append(("VRAM", f"{human_size(free)} free of {human_size(total)}"))
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            rows.append(("device", "Apple MPS"))
        else:
            rows.append(("device", "CPU (no CUDA or MPS GPU found)"))
            rows.append(("VRAM", "none"))
    except Exception as exc:  # noqa: BLE001 - shown, not raised
        rows.append(("device", f"unknown ({first_line(exc)})"))
    total_mem = _total_memory()
    rows.append(("memory", f"{human_size(host_free_memory())} free"
                 + (f" of {human_size(total_mem)}" if total_mem else "")))
    rows.append(("CPU", f"{cpu_name()}, {os.cpu_count()} logical cores"))
    rows.append(("system", f"{platform.system()} {platform.release()}, Python {platform.python_version()}"))
    versions = []
    for package in ("video-upscaler-pro", "torch", "spandrel", "dagster", "gradio", "av"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    rows.append(("versions", ", ".join(versions)))
    rows.append(("workspace", str(workspace.root)))
    rows.append(("Dagster instance", str(workspace.dagster_home)))
    rows.append(("Dagster UI", webserver_url))
    return rows


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


__all__ = [
    "CONTAINERS",
    "DEFAULT_SETTINGS",
    "PREVIEW_SECONDS",
    "DagsterService",
    "ModelChoice",
    "OutputPlan",
    "RunProgress",
    "RunRow",
    "UploadError",
    "UploadInfo",
    "accept_upload",
    "build_ui_request",
    "estimate_progress",
    "first_line",
    "interpolation_methods",
    "load_settings",
    "max_upload_bytes",
    "model_choices",
    "plan_output",
    "safe_name",
    "save_settings",
    "system_info",
]
