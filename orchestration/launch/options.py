"""What the page offers and remembers: the models and interpolation methods it can use, the output a choice of
settings gives, the page's remembered settings, and the enhance request built from an upload and its choices.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from orchestration.launch.request import EnhanceRequest
from orchestration.launch.uploads import UploadInfo, human_size
from orchestration.launch.validate import validate_request
from orchestration.resources.workspace import Workspace, register_video
from orchestration.sensors.inbox import SCHEMA, build_request
from stages.errors import SettingsError
from stages.media.aspect import format_ratio
from stages.media.codecs import OUTPUT_CODECS
from stages.ops.interpolate.timing import InterpolationSettings, rational_fps
from stages.ops.upscale.engine import MAX_OUTPUT_LONG_SIDE, MAX_OUTPUT_SHORT_SIDE
from stages.store.fsutil import atomic_write_text

__all__ = [
    "CONTAINERS",
    "DEFAULT_SETTINGS",
    "SETTINGS_FILE",
    "ModelChoice",
    "OutputPlan",
    "build_ui_request",
    "interpolation_methods",
    "load_settings",
    "model_choices",
    "plan_output",
    "save_settings",
]

log = logging.getLogger(__name__)

UHD = (3840, 2160)
CONTAINERS = ("mp4", "mkv", "mov")
SETTINGS_FILE = "ui-settings.json"


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
    from stages.models.catalog import ANIMATION_MODEL, AUTO_MODEL, LIVE_ACTION_MODEL
    from stages.models.store import ModelStore

    store = store or ModelStore()
    memory = memory_bytes if memory_bytes is not None else _device_memory()
    choices: list[ModelChoice] = []
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
    usable = [c for c in choices if c.available]
    auto = ModelChoice(
        AUTO_MODEL, f"{AUTO_MODEL} (x4)" + ("" if usable else " - unavailable"),
        f"Automatic (recommended): a look at the video picks {LIVE_ACTION_MODEL} for real camera footage "
        f"(downloaded on first use) or {ANIMATION_MODEL} for animation; without a connection, the best model "
        "on this machine, and the run log says which and why.", 4, bool(usable),
        None if usable else (choices[0].reason if choices else "no upscaling model"))
    return [auto, *choices]


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
    """The output a choice gives: size, rate, and a warning or the reason it is refused. ``sample_aspect`` is the
    output's pixel aspect (``"8:9"`` for DV carried as it is; ``"1:1"`` square pixels) and ``display_aspect`` how it
    is shown."""

    width: int
    height: int
    fps: float | None
    warning: str | None = None
    error: str | None = None
    sample_aspect: str = "1:1"
    display_aspect: str | None = None

    @property
    def size(self) -> str:
        """``2880x1920`` for square pixels; ``2880x1920 (pixels 8:9, shown 4:3)`` for non-square ones."""
        if self.sample_aspect == "1:1":
            return f"{self.width}x{self.height}"
        return f"{self.width}x{self.height} (pixels {self.sample_aspect}, shown {self.display_aspect})"

    def describe(self) -> str:
        fps = f" at {self.fps:.3f}".rstrip("0").rstrip(".") + " fps" if self.fps else ""
        return f"{self.size}{fps}"


def plan_output(width: int, height: int, fps: float, scale: int, interpolation: str = "none",
                factor: int | None = None, target_fps: str | float | None = None, *,
                sample_aspect: Fraction = Fraction(1)) -> OutputPlan:
    """Output size and rate for a source and settings: a warning above 4K, an error above 8K or 120 fps. A source
    with non-square pixels (``sample_aspect``) keeps them: the plan says the pixel aspect and the display aspect."""
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
    shown = Fraction(width, height) * sample_aspect
    return OutputPlan(out_w, out_h, out_fps, warning, error, sample_aspect=format_ratio(sample_aspect),
                      display_aspect=format_ratio(shown))


# ------------------------------------------------------------------------------------------------ settings

DEFAULT_SETTINGS: dict[str, Any] = {
    "model": None,
    "scale": 4,
    "temporal": "auto",
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
    codec = OUTPUT_CODECS.get(str(settings.get("codec", "h264")))
    if codec is not None and f".{container}" not in codec.suffixes:
        raise SettingsError(f"ui: {codec.description.split(',')[0].split(' (')[0]} cannot go in {container}; choose "
                            f"the container {' or '.join(s.lstrip('.') for s in codec.suffixes)}")
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
