"""The page's choices: the values its controls offer, the choices as one value (:class:`PageChoices`, which
gives the output plan and the request), the model and method labels, and the remembered settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from orchestration.launch.events import first_line
from orchestration.launch.options import (
    ModelChoice,
    OutputPlan,
    load_settings,
    plan_output,
    save_settings,
)
from orchestration.launch.uploads import UploadInfo
from stages.errors import SettingsError, StageError
from stages.media.codecs import OUTPUT_CODECS
from ui.common import WARN
from ui.i18n import msg

log = logging.getLogger(__name__)

SCALES = (2, 4, 8)
FACTORS = (2, 4, 8)
MODE_FACTOR = "factor"
MODE_FPS = "target fps"
TEMPORAL_METHODS = ("none", "ema", "flow", "auto")
DEVICES = ("auto", "cuda", "cpu", "mps")
CODECS = tuple(OUTPUT_CODECS)  # h264, h265, prores, prores4444, av1, ffv1 (stages.media.codecs)
CONTAINERS = ("mp4", "mkv", "mov")


def container_for(codec: str, container: str) -> str:
    """``container`` when it can hold ``codec``, else the codec's own (ProRes -> mov, FFV1 -> mkv, AV1 -> mkv)."""
    entry = OUTPUT_CODECS.get(codec)
    if entry is None or f".{container}" in entry.suffixes:
        return container
    return entry.suffixes[0].lstrip(".")


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
    temporal: str = "auto"
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
        """The output these choices give for ``upload`` (see :func:`orchestration.launch.options.plan_output`).

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
                           method, factor, target, sample_aspect=upload.info.sample_aspect)

    def request_choices(self) -> dict[str, Any]:
        """The ``choices`` of :func:`orchestration.launch.options.build_ui_request` (inbox keys plus device, fp16,
        container); ``interpolate`` or ``fps`` only when interpolation is on.

        Raises:
            SettingsError: a value is not a number.
        """
        choices: dict[str, Any] = {
            "model": self.model,
            "scale": _as_int("scale", self.scale),
            "interp_method": self.interp_method or "auto",
            "temporal": self.temporal or "auto",
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
        "temporal": pick("temporal", TEMPORAL_METHODS, "auto"),
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
