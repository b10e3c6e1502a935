"""The production plan: one JSON file that says how scenes (numbered image sequences) become finished deliverables.

A plan names the scenes in order (each an image-sequence pattern with its frame rate, what to do with missing
frames, and the transition into it: a cut or a crossfade), the output resolution and frame rate, the distribution
codec, the deliverables, the audio tracks and the loudness target, and the thumbnail and contact sheet. Relative
paths are resolved against the plan file's folder. Every key is checked before any work starts; an unknown key
gets the closest known one as a suggestion, and every message says where in the plan the problem is
(``scenes[1].transition.duration: ...``).

A plan in the carrier spec's format (``{"output": {...}, "scenes": [{"scene_id", "sequence_pattern", ...}]}``,
:mod:`stages.production.plan_seed`) is accepted too: it is rewritten into this format and checked by the same
code, its messages naming its own places (``output.audio_tracks[1]``, ``scenes[0].sequence_pattern``).

A scene's ``fps`` may be ``"auto"`` (the carrier format's default): the frame rate in the header of the sequence's
first frame (EXR ``framesPerSecond``, DPX film/TV frame rate; :mod:`stages.production.frame_rate`), else the plan's
``framerate`` with a warning in :attr:`ProductionPlan.warnings` (the plan step of the run reports it).

Example (docs/production.md):

    {
      "name": "trailer",
      "resolution": "1080p", "framerate": 30, "codec": "h265",
      "deliverables": ["mp4", "mov"],
      "scenes": [
        {"sequence": "shots/shot_####.exr", "fps": 24, "missing_frames": "hold"},
        {"sequence": "graded/graded_scene_001_*.exr", "fps": 24,
         "transition": {"type": "crossfade", "duration": 1.0}}
      ],
      "audio": {"tracks": ["audio/music_theme.wav", "audio/sfx_hits.wav", "audio/voice_over.wav"],
                "loudness": -14, "fade_out": 2.0}
    }
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from stages.errors import InputError, SettingsError
from stages.media.audio import DEFAULT_GAINS_DB, TRACK_KINDS, AudioTrack
from stages.ops.interpolate.timing import MAX_OUTPUT_FPS, METHODS, rational_fps
from stages.production.deliverables import DELIVERABLE_KINDS
from stages.production.example import write_example_project
from stages.production.frame_rate import sequence_frame_rate
from stages.production.plan_checks import check_choice as _choice
from stages.production.plan_checks import check_keys as _mapping
from stages.production.plan_checks import is_int as _is_int
from stages.production.plan_checks import is_number as _is_number
from stages.production.plan_checks import resolve_path as _path
from stages.production.plan_seed import is_seed_plan, translate_seed_plan
from stages.production.sequence import MISSING_POLICIES, find_sequence

__all__ = ["AudioPlan", "ContactSheetSpec", "ProductionPlan", "SceneSpec", "ThumbnailSpec", "Transition",
           "load_plan", "parse_plan", "plan_from_dict", "transition_frames", "write_example_project"]

# resolution names, compared without case, spaces, '-' or '_' ("Full HD" = "fullhd", "4K DCI" = "4kdci")
RESOLUTIONS = {
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "hd": (1280, 720),
    "1080p": (1920, 1080),
    "fhd": (1920, 1080),
    "fullhd": (1920, 1080),
    "2k": (2048, 1080),
    "dci2k": (2048, 1080),
    "2kdci": (2048, 1080),
    "1440p": (2560, 1440),
    "qhd": (2560, 1440),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
    "uhd": (3840, 2160),
    "4kuhd": (3840, 2160),
    "uhd4k": (3840, 2160),
    "dci4k": (4096, 2160),
    "4kdci": (4096, 2160),
    "4320p": (7680, 4320),
    "8k": (7680, 4320),
    "8kuhd": (7680, 4320),
}
DISTRIBUTION_CODECS = ("h265", "h264", "av1")
TRANSITIONS = ("cut", "crossfade", "dissolve")  # "dissolve" is a crossfade: a linear mix of the two scenes
DEFAULT_DELIVERABLES = ("mp4", "mov")
MAX_CANVAS = (7680, 4320)
MIN_CANVAS_SIDE = 64
MAX_CROSSFADE_SECONDS = 30.0

_TOP_KEYS = ("name", "output_dir", "resolution", "framerate", "codec", "deliverables", "scenes", "audio",
             "thumbnail", "contact_sheet", "upscale", "interpolation", "missing_frames")
_SCENE_KEYS = ("name", "sequence", "fps", "missing_frames", "transition")
_TRANSITION_KEYS = ("type", "duration")
_AUDIO_KEYS = ("tracks", "gains", "loudness", "fade_out")
_TRACK_KEYS = ("path", "kind", "gain_db")
_THUMBNAIL_KEYS = ("at", "seconds", "width")
_SHEET_KEYS = ("columns", "rows", "tile_width")
_UPSCALE_KEYS = ("model", "model_path", "tile", "enabled")
_INTERPOLATION_KEYS = ("method", "flow_preset")


@dataclass(frozen=True)
class Transition:
    """How a scene begins: ``cut`` (no overlap) or ``crossfade`` over ``duration`` seconds, overlapping the end
    of the scene before it (the plan is that much shorter than the sum of its scenes)."""

    type: str = "cut"
    duration: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    """One scene: an image-sequence ``pattern`` (absolute after parsing), its frame rate, the missing-frame
    policy (``skip`` or ``hold``) and the transition into it (the first scene always starts with a cut).
    ``fps_source`` says where the rate came from: ``given`` in the plan, read from the frames' ``metadata``, or
    ``assumed`` (the plan's framerate: the frames carry none; the plan's warnings say so)."""

    name: str
    pattern: str
    fps: Fraction
    missing_frames: str
    transition: Transition
    fps_source: str = "given"


@dataclass(frozen=True)
class AudioPlan:
    """The tracks to mix (absolute paths), per-type gain overrides, the loudness target and the fade-out."""

    tracks: tuple[AudioTrack, ...] = ()
    gains: Mapping[str, float] = field(default_factory=dict)
    loudness: float = -14.0
    fade_out: float = 2.0


@dataclass(frozen=True)
class ThumbnailSpec:
    """The thumbnail's frame: at fraction ``at`` of the duration (default the middle) or at ``seconds``."""

    at: float = 0.5
    seconds: float | None = None
    width: int | None = None


@dataclass(frozen=True)
class ContactSheetSpec:
    columns: int = 4
    rows: int = 4
    tile_width: int = 320


@dataclass(frozen=True)
class ProductionPlan:
    """A validated plan (see the module doc). ``canvas`` is the output frame size, ``framerate`` exact."""

    name: str
    plan_path: str
    output_dir: str
    canvas: tuple[int, int]
    resolution: str
    framerate: Fraction
    codec: str
    deliverables: tuple[str, ...]
    scenes: tuple[SceneSpec, ...]
    audio: AudioPlan
    thumbnail: ThumbnailSpec
    contact_sheet: ContactSheetSpec
    upscale_model: str | None
    upscale_model_path: str | None
    upscale_tile: int
    upscale_enabled: bool
    interpolation_method: str
    flow_preset: str
    warnings: tuple[str, ...] = ()
    layout: str = "plan"  # "carrier": the carrier spec's file names and carrier_report.json (stages.production.carrier)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (fractions as strings), the inverse of :func:`plan_from_dict`."""
        data = asdict(self)
        data["framerate"] = str(self.framerate)
        data["scenes"] = [{**asdict(s), "fps": str(s.fps)} for s in self.scenes]
        data["audio"]["gains"] = dict(self.audio.gains)
        return data


def plan_from_dict(data: Mapping[str, Any]) -> ProductionPlan:
    """Rebuild a plan from :meth:`ProductionPlan.to_dict` (no validation: it was validated when parsed)."""
    values = dict(data)
    values["canvas"] = tuple(values["canvas"])
    values["framerate"] = Fraction(values["framerate"])
    values["deliverables"] = tuple(values["deliverables"])
    values["scenes"] = tuple(
        SceneSpec(**{**s, "fps": Fraction(s["fps"]), "transition": Transition(**s["transition"])})
        for s in values["scenes"]
    )
    audio = dict(values["audio"])
    audio["tracks"] = tuple(AudioTrack(**t) for t in audio["tracks"])
    values["audio"] = AudioPlan(**audio)
    values["thumbnail"] = ThumbnailSpec(**values["thumbnail"])
    values["contact_sheet"] = ContactSheetSpec(**values["contact_sheet"])
    values["warnings"] = tuple(values.get("warnings", ()))
    return ProductionPlan(**values)


def load_plan(path: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None, *,
              base_dir: str | os.PathLike[str] | None = None) -> ProductionPlan:
    """Read and validate the plan file at ``path`` (``output_dir`` overrides the plan's own; ``base_dir``: the
    folder relative paths are taken from, default the plan file's).

    Raises:
        InputError: the file is missing, unreadable or not JSON.
        SettingsError: the plan is not valid (the message says where and what to do).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise InputError(f"plan: {source} does not exist or is not a file; give the path of a plan JSON file")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"plan: cannot read {source} ({exc}); save it as UTF-8 JSON") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"plan: {source.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix it "
            "(a JSON checker shows where)"
        ) from exc
    return parse_plan(data, source.resolve(), output_dir=output_dir, base_dir=base_dir)


def parse_plan(data: Any, plan_path: str | os.PathLike[str],
               output_dir: str | os.PathLike[str] | None = None, *,
               base_dir: str | os.PathLike[str] | None = None) -> ProductionPlan:
    """Validate the parsed JSON of a plan, in today's format or the carrier spec's (module doc); relative paths
    resolve against ``base_dir``, default ``plan_path``'s folder. A scene with ``"fps": "auto"`` has its first
    frame's header read here.

    Raises:
        SettingsError: what is wrong and where (``scenes[0].fps: ...``), with what to do.
    """
    if is_seed_plan(data):
        translated = translate_seed_plan(data)
        try:
            return _parse(translated.data, plan_path, output_dir, base_dir)
        except SettingsError as exc:
            raise SettingsError(translated.message(str(exc))) from exc
    return _parse(data, plan_path, output_dir, base_dir)


def _parse(data: Any, plan_path: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None,
           base_dir: str | os.PathLike[str] | None) -> ProductionPlan:
    path = Path(plan_path).resolve()
    base = Path(base_dir).expanduser().resolve() if base_dir is not None else path.parent
    top = _mapping(data, "plan", _TOP_KEYS)
    # without a name, the file's stem names the outputs (characters a name may not hold become "_")
    name = top.get("name", re.sub(r"[^\w .-]", "_", path.stem).lstrip(" .-") or "plan")
    if not isinstance(name, str) or not re.fullmatch(r"[\w][\w .-]{0,99}", name):
        raise SettingsError(f"plan: name {name!r} must be 1-100 letters, digits, spaces, '.', '-' or '_' "
                            "(it names the output files); e.g. \"trailer_v2\"")
    name = name.strip()
    if output_dir is not None:
        out_dir = Path(output_dir).expanduser().resolve()
    elif "output_dir" in top:
        out_dir = _path(top["output_dir"], "output_dir", base)
    else:
        out_dir = base / f"{name}_deliverables"
    resolution, canvas = _resolution(top.get("resolution", "1080p"))
    framerate = _rate(top.get("framerate", 30), "framerate")
    codec = top.get("codec", "h265")
    if codec not in DISTRIBUTION_CODECS:
        raise SettingsError(f"plan: codec {codec!r} is not a distribution codec; use one of "
                            f"{', '.join(DISTRIBUTION_CODECS)}")
    deliverables = _deliverables(top.get("deliverables", list(DEFAULT_DELIVERABLES)))
    default_missing = top.get("missing_frames", "hold")
    _choice(default_missing, MISSING_POLICIES, "missing_frames")
    warnings: list[str] = []
    scenes = _scenes(top.get("scenes"), base, default_missing, framerate, warnings)
    audio = _audio(top.get("audio", {}), base)
    thumbnail = _thumbnail(top.get("thumbnail", {}))
    sheet = _contact_sheet(top.get("contact_sheet", {}))
    upscale = _mapping(top.get("upscale", {}), "upscale", _UPSCALE_KEYS)
    model = upscale.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise SettingsError("plan: upscale.model must be a model id (`vup models list`) or left out for the default")
    model_path = upscale.get("model_path")
    model_path = str(_path(model_path, "upscale.model_path", base)) if model_path is not None else None
    tile = upscale.get("tile", 0)
    if not _is_int(tile) or tile < 0:
        raise SettingsError(f"plan: upscale.tile {tile!r} must be 0 (automatic) or a tile size in pixels, e.g. 256")
    enabled = upscale.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError("plan: upscale.enabled must be true or false")
    interpolation = _mapping(top.get("interpolation", {}), "interpolation", _INTERPOLATION_KEYS)
    method = interpolation.get("method", "auto")
    _choice(method, [m for m in METHODS if m != "none"], "interpolation.method")
    preset = interpolation.get("flow_preset", "medium")
    _choice(preset, ("ultrafast", "fast", "medium"), "interpolation.flow_preset")
    return ProductionPlan(
        name=name, plan_path=str(path), output_dir=str(out_dir), canvas=canvas, resolution=resolution,
        framerate=framerate, codec=codec, deliverables=deliverables, scenes=scenes, audio=audio,
        thumbnail=thumbnail, contact_sheet=sheet, upscale_model=model, upscale_model_path=model_path,
        upscale_tile=int(tile), upscale_enabled=enabled, interpolation_method=method, flow_preset=preset,
        warnings=tuple(warnings),
    )


def transition_frames(transition: Transition, framerate: Fraction) -> int:
    """Frames of output the crossfade spans at ``framerate`` (0 for a cut, at least 1 for a crossfade)."""
    if transition.type != "crossfade":  # "dissolve" is stored as a crossfade
        return 0
    return max(1, round(transition.duration * framerate))


# --------------------------------------------------------------------------------------------------- parts


def _resolution(value: Any) -> tuple[str, tuple[int, int]]:
    if isinstance(value, str):
        known = RESOLUTIONS.get(re.sub(r"[\s_-]", "", value.lower()))
        if known is not None:
            return value.strip(), known
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            if width % 2 or height % 2:
                raise SettingsError(f"plan: resolution {value} must have an even width and height "
                                    f"(4:2:0 video needs them); e.g. {width + width % 2}x{height + height % 2}")
            if min(width, height) < MIN_CANVAS_SIDE or width > MAX_CANVAS[0] or height > MAX_CANVAS[0] \
                    or width * height > MAX_CANVAS[0] * MAX_CANVAS[1]:
                raise SettingsError(f"plan: resolution {value} is outside {MIN_CANVAS_SIDE} px to 8K "
                                    "(7680x4320); e.g. \"1080p\" or \"4K\"")
            return f"{width}x{height}", (width, height)
    raise SettingsError(f"plan: resolution {value!r} is not known; use \"720p\", \"1080p\", \"2K\", \"1440p\", "
                        "\"4K\" (UHD), \"DCI 4K\", \"8K\" or WIDTHxHEIGHT such as \"2048x858\"")


def _rate(value: Any, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SettingsError(f"plan: {where} {value!r} must be a number such as 30 or \"30000/1001\"")
    try:
        rate = rational_fps(value)
    except (ValueError, ZeroDivisionError, ArithmeticError) as exc:
        raise SettingsError(f"plan: {where} {value!r} is not a frame rate; use e.g. 24, 30 or \"24000/1001\"") \
            from exc
    if not 1 <= rate <= MAX_OUTPUT_FPS:
        raise SettingsError(f"plan: {where} {value} is outside 1-120 fps; use e.g. 24, 30, 60 or 120")
    return rate


def _deliverables(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SettingsError(f"plan: deliverables must be a non-empty list such as [\"mp4\", \"mov\"]; known: "
                            f"{', '.join(DELIVERABLE_KINDS)}")
    for kind in value:
        _choice(kind, DELIVERABLE_KINDS, "deliverables entry")
    if len(set(value)) != len(value):
        raise SettingsError("plan: deliverables lists the same kind twice; list each once")
    return tuple(value)


def _scenes(value: Any, base: Path, default_missing: str, framerate: Fraction,
            warnings: list[str]) -> tuple[SceneSpec, ...]:
    if not isinstance(value, list) or not value:
        raise SettingsError("plan: scenes must be a non-empty list of scenes, e.g. "
                            "[{\"sequence\": \"shots/shot_####.exr\", \"fps\": 24}]")
    scenes = []
    names: set[str] = set()
    for number, item in enumerate(value):
        where = f"scenes[{number}]"
        scene = _mapping(item, where, _SCENE_KEYS)
        if "sequence" not in scene:
            raise SettingsError(f"plan: {where} has no \"sequence\"; give its image pattern, e.g. "
                                "\"shots/shot_####.exr\"")
        pattern = scene["sequence"]
        if not isinstance(pattern, str) or not pattern.strip():
            raise SettingsError(f"plan: {where}.sequence must be an image pattern such as \"shot_####.exr\"")
        candidate = Path(pattern).expanduser()
        absolute = str(candidate if candidate.is_absolute() else base / candidate)
        if "fps" not in scene:
            raise SettingsError(f"plan: {where} has no \"fps\"; an image sequence has no frame rate of its own, "
                                "give it (e.g. \"fps\": 24, or \"auto\" to read it from EXR/DPX headers)")
        missing = scene.get("missing_frames", default_missing)
        _choice(missing, MISSING_POLICIES, f"{where}.missing_frames")
        scene_name = scene.get("name", f"scene{number + 1}")
        if not isinstance(scene_name, str) or not scene_name.strip():
            raise SettingsError(f"plan: {where}.name must be a non-empty string")
        fps, fps_source = _scene_rate(scene["fps"], absolute, where, scene_name, framerate, warnings)
        if scene_name in names:
            raise SettingsError(f"plan: {where}.name {scene_name!r} is used twice; give each scene its own name")
        names.add(scene_name)
        transition = _transition(scene.get("transition", "cut"), f"{where}.transition")
        if number == 0 and transition.type != "cut":
            raise SettingsError(f"plan: {where}.transition is a {transition.type}, but the first scene has nothing "
                                "before it to blend with; remove it (the first scene starts with a cut)")
        scenes.append(SceneSpec(scene_name, absolute, fps, missing, transition, fps_source))
    return tuple(scenes)


def _scene_rate(value: Any, pattern: str, where: str, name: str, framerate: Fraction,
                warnings: list[str]) -> tuple[Fraction, str]:
    """A scene's rate: given, or for ``"auto"`` from its first frame's header, else the plan's (with a warning)."""
    if value != "auto":
        return _rate(value, f"{where}.fps"), "given"
    try:
        found = sequence_frame_rate(find_sequence(pattern).paths)
    except (InputError, SettingsError) as exc:  # the plan step of the run reports a missing sequence
        reason = f"its frames could not be read ({str(exc).removeprefix('sequence: ')})"
    else:
        if found.rate is not None:
            return _rate(str(found.rate), f"{where}.fps ({found.source})"), "metadata"
        reason = found.source
    warnings.append(f"{where} ({name}): {reason}; assumed the plan's {float(framerate):g} fps (give the scene "
                    "an \"fps\" to set it)")
    return framerate, "assumed"


def _transition(value: Any, where: str) -> Transition:
    if isinstance(value, str):
        value = {"type": value}
    spec = _mapping(value, where, _TRANSITION_KEYS)
    kind = spec.get("type", "cut")
    if isinstance(kind, str) and kind.lower().replace("_", " ") in ("fade", "fade to black", "fade through black"):
        raise SettingsError(f"plan: {where}.type {kind!r} (through black) is not available; use \"dissolve\" "
                            "(a crossfade between the two scenes) or \"cut\"")
    _choice(kind, TRANSITIONS, f"{where}.type")
    if kind == "cut":
        if spec.get("duration", 0) not in (0, 0.0):
            raise SettingsError(f"plan: {where} is a cut with a duration; a cut has none (use \"crossfade\")")
        return Transition()
    duration = spec.get("duration", 1.0)
    if not _is_number(duration) or not 0 < duration <= MAX_CROSSFADE_SECONDS:
        raise SettingsError(f"plan: {where}.duration {duration!r} must be seconds above 0 and at most "
                            f"{MAX_CROSSFADE_SECONDS:g}; e.g. 1.0")
    return Transition("crossfade", float(duration))


def _audio(value: Any, base: Path) -> AudioPlan:
    spec = _mapping(value, "audio", _AUDIO_KEYS)
    tracks_value = spec.get("tracks", [])
    if not isinstance(tracks_value, list):
        raise SettingsError("plan: audio.tracks must be a list of WAV paths or {\"path\": ..., \"gain_db\": ...}")
    tracks = []
    for number, item in enumerate(tracks_value):
        where = f"audio.tracks[{number}]"
        if isinstance(item, str):
            item = {"path": item}
        track = _mapping(item, where, _TRACK_KEYS)
        if "path" not in track:
            raise SettingsError(f"plan: {where} has no \"path\"")
        kind = track.get("kind")
        if kind is not None:
            _choice(kind, TRACK_KINDS, f"{where}.kind")
        gain = track.get("gain_db")
        if gain is not None and not _is_number(gain):
            raise SettingsError(f"plan: {where}.gain_db must be a number of dB, e.g. -3")
        # a missing file is not an error: the mix goes on without it, with a warning (stages.media.audio)
        tracks.append(AudioTrack(str(_path(track["path"], f"{where}.path", base)), kind,
                                 float(gain) if gain is not None else None))
    gains = _mapping(spec.get("gains", {}), "audio.gains", TRACK_KINDS)
    for kind, gain in gains.items():
        if not _is_number(gain):
            raise SettingsError(f"plan: audio.gains.{kind} must be a number of dB (default "
                                f"{DEFAULT_GAINS_DB[kind]:g})")
    loudness = spec.get("loudness", -14.0)
    if not _is_number(loudness) or not -70 <= loudness <= -5:
        raise SettingsError(f"plan: audio.loudness {loudness!r} must be LUFS between -70 and -5; streaming "
                            "platforms use -14")
    fade = spec.get("fade_out", 2.0)
    if not _is_number(fade) or fade < 0:
        raise SettingsError(f"plan: audio.fade_out {fade!r} must be seconds, 0 or more (0: no fade)")
    return AudioPlan(tuple(tracks), {k: float(v) for k, v in gains.items()}, float(loudness), float(fade))


def _thumbnail(value: Any) -> ThumbnailSpec:
    spec = _mapping(value, "thumbnail", _THUMBNAIL_KEYS)
    at = spec.get("at", 0.5)
    if isinstance(at, str) and at.strip().endswith("%"):
        try:
            at = float(at.strip()[:-1]) / 100
        except ValueError:
            pass
    if not _is_number(at) or not 0 <= at <= 1:
        raise SettingsError(f"plan: thumbnail.at {spec.get('at')!r} must be a fraction of the duration (0-1) or "
                            "a percentage such as \"50%\"")
    seconds = spec.get("seconds")
    if seconds is not None and (not _is_number(seconds) or seconds < 0):
        raise SettingsError(f"plan: thumbnail.seconds {seconds!r} must be a time in seconds, 0 or more")
    width = spec.get("width")
    if width is not None and (not _is_int(width) or not 16 <= width <= 7680):
        raise SettingsError(f"plan: thumbnail.width {width!r} must be 16-7680 pixels (leave it out for full size)")
    return ThumbnailSpec(float(at), float(seconds) if seconds is not None else None, width)


def _contact_sheet(value: Any) -> ContactSheetSpec:
    spec = _mapping(value, "contact_sheet", _SHEET_KEYS)
    columns, rows = spec.get("columns", 4), spec.get("rows", 4)
    for key, number in (("columns", columns), ("rows", rows)):
        if not _is_int(number) or not 1 <= number <= 16:
            raise SettingsError(f"plan: contact_sheet.{key} {number!r} must be 1-16; the default grid is 4x4")
    tile = spec.get("tile_width", 320)
    if not _is_int(tile) or not 32 <= tile <= 1920:
        raise SettingsError(f"plan: contact_sheet.tile_width {tile!r} must be 32-1920 pixels")
    return ContactSheetSpec(columns, rows, tile)
