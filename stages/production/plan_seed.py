"""The carrier spec's plan format (``PRODUCTION_PLAN.JSON``), rewritten into today's format so one validator checks
both (:func:`stages.production.plan.parse_plan` calls :func:`translate_seed_plan`).

The format::

    {
      "project": "trailer",                                  (optional; names the outputs)
      "output": {"resolution": "4K", "framerate": 120, "codec": "h265",
                 "audio_tracks": ["music_theme.wav", {"path": "sfx_hits.wav", "gain_db": -3},
                                  {"path": "vo.wav", "kind": "voice"}],
                 "loudness": -14, "fade_out": 2.0, "gains": {"music": -6}},     (the last three optional)
      "scenes": [{"scene_id": "scene_001", "sequence_pattern": "graded_scene_001_*.exr", "transition": "cut"},
                 {"scene_id": "scene_002", "sequence_pattern": "graded_scene_002_*.dpx",
                  "transition": {"type": "dissolve", "duration": 1.0}, "fps": 24}]
    }

How it maps onto today's plan:

- ``output.resolution``, ``output.framerate``: today's ``resolution`` and ``framerate`` (the same names: 4K/UHD =
  3840x2160, DCI 4K = 4096x2160, 2K = 2048x1080, 1080p, 720p... or WIDTHxHEIGHT).
- ``output.codec``: the one deliverable made (:data:`SEED_CODECS`): ``h265``/``h264``/``av1`` -> the MP4 with that
  codec; ``prores`` -> ProRes 422 HQ MOV; ``prores4444`` -> ProRes 4444 MOV (with the sequences' alpha);
  ``ffv1`` -> lossless FFV1 MKV.
- ``output.audio_tracks``: today's ``audio.tracks`` entries (a WAV path, or ``{"path", "kind", "gain_db"}``; the
  kind comes from the file name unless given); ``loudness``, ``fade_out`` and ``gains`` as in today's ``audio``.
- ``scenes[].scene_id`` -> ``name``, ``sequence_pattern`` -> ``sequence``; ``transition`` is how the scene begins:
  ``"cut"``, ``"dissolve"`` (a crossfade, 1 s unless ``{"type": "dissolve", "duration": s}``) or ``"crossfade"``.
  ``fps`` is optional: without it the frames' headers say it (EXR ``framesPerSecond``, DPX frame rate), else the
  plan's ``framerate`` is assumed, with a warning. ``missing_frames`` as today (``hold`` or ``skip``).
- ``project`` -> ``name``; ``upscale``, ``interpolation``, ``thumbnail``, ``contact_sheet``, ``missing_frames``
  and ``output_dir`` as today, at the top.

A message from the shared validator names the place in this format: ``plan: output.audio_tracks[1].gain_db ...``,
``plan: scenes[0].sequence_pattern ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stages.errors import SettingsError
from stages.production.plan_checks import check_keys

SEED_CODECS: dict[str, tuple[str, str | None]] = {
    "h265": ("mp4", "h265"),
    "h264": ("mp4", "h264"),
    "av1": ("mp4", "av1"),
    "prores": ("mov", None),
    "prores4444": ("prores4444", None),
    "ffv1": ("ffv1", None),
}
"""``output.codec`` -> (today's deliverable kind, today's MP4 ``codec``; None keeps the default)."""

_TOP_KEYS = ("project", "output", "scenes", "output_dir", "missing_frames", "upscale", "interpolation", "thumbnail",
             "contact_sheet")
_OUTPUT_KEYS = ("resolution", "framerate", "codec", "audio_tracks", "loudness", "fade_out", "gains")
_SCENE_KEYS = ("scene_id", "sequence_pattern", "transition", "fps", "missing_frames")
_MOVED_INTO_OUTPUT = ("resolution", "framerate", "codec", "audio", "audio_tracks", "deliverables")
# today's place -> this format's place, first match wins (applied to the place a message starts with)
_PLACES = (
    (re.compile(r"^(scenes\[\d+\])\.sequence\b"), r"\1.sequence_pattern"),
    (re.compile(r"^(scenes\[\d+\])\.name\b"), r"\1.scene_id"),
    (re.compile(r"^audio\.tracks\b"), "output.audio_tracks"),
    (re.compile(r"^audio\.(loudness|fade_out|gains)\b"), r"output.\1"),
    (re.compile(r"^audio\b"), "output"),
    (re.compile(r"^(resolution|framerate)\b"), r"output.\1"),
    (re.compile(r"^name\b"), "project"),
)


@dataclass(frozen=True)
class SeedTranslation:
    """A carrier-format plan in today's format (``data``), and how to say a message in the carrier format's words."""

    data: dict[str, Any]

    def message(self, text: str) -> str:
        """``text`` (a ``plan: <place> ...`` message about ``data``) with the place named as in the carrier format."""
        prefix = "plan: "
        if not text.startswith(prefix):
            return text
        rest = text[len(prefix):]
        for pattern, replacement in _PLACES:
            if pattern.match(rest):
                return prefix + pattern.sub(replacement, rest, count=1)
        return text


def is_seed_plan(data: Any) -> bool:
    """Whether ``data`` (parsed JSON) is in the carrier spec's format: it has ``output``, or a scene with
    ``sequence_pattern`` or ``scene_id``."""
    if not isinstance(data, Mapping):
        return False
    if "output" in data:
        return True
    scenes = data.get("scenes")
    return isinstance(scenes, list) and any(
        isinstance(s, Mapping) and ("sequence_pattern" in s or "scene_id" in s) for s in scenes)


def translate_seed_plan(data: Mapping[str, Any]) -> SeedTranslation:
    """``data`` (a carrier-format plan, see the module doc) rewritten into today's format.

    Only the structure is checked here (keys, the codec, the scenes' required keys); every value is checked by
    today's validator afterwards.

    Raises:
        SettingsError: an unknown key (with the closest known one), a key of today's format at the top (it
            belongs inside ``output``), no ``output`` or ``scenes``, a scene without ``sequence_pattern``, an
            unknown codec.
    """
    for key in data:
        if key in _MOVED_INTO_OUTPUT:
            inner = "audio_tracks" if key in ("audio", "audio_tracks") else key
            if key == "deliverables":
                raise SettingsError("plan: deliverables is not a key of this plan format (it has \"output\"); the "
                                    "output's codec decides the one file made: set output.codec")
            raise SettingsError(f"plan: {key} belongs inside \"output\" in this plan format (it has \"output\"); "
                                f"write \"output\": {{\"{inner}\": ...}}")
    top = check_keys(data, "plan", _TOP_KEYS)
    if "output" not in top:
        raise SettingsError("plan: this plan (scenes with \"sequence_pattern\") has no \"output\"; add e.g. "
                            "\"output\": {\"resolution\": \"4K\", \"framerate\": 24, \"codec\": \"h265\"}")
    output = check_keys(top["output"], "output", _OUTPUT_KEYS)
    codec = output.get("codec", "h265")
    if not isinstance(codec, str) or codec.strip().lower() not in SEED_CODECS:
        raise SettingsError(f"plan: output.codec {codec!r} is not one of {', '.join(SEED_CODECS)} (prores: ProRes "
                            "422 HQ in a MOV; prores4444: ProRes 4444 with alpha; ffv1: lossless MKV)")
    kind, mp4_codec = SEED_CODECS[codec.strip().lower()]
    plan: dict[str, Any] = {"deliverables": [kind]}
    if mp4_codec is not None:
        plan["codec"] = mp4_codec
    for key in ("resolution", "framerate"):
        if key in output:
            plan[key] = output[key]
    audio = {"tracks": output["audio_tracks"]} if "audio_tracks" in output else {}
    audio.update({key: output[key] for key in ("loudness", "fade_out", "gains") if key in output})
    if audio:
        plan["audio"] = audio
    if "project" in top:
        plan["name"] = top["project"]
    for key in ("output_dir", "missing_frames", "upscale", "interpolation", "thumbnail", "contact_sheet"):
        if key in top:
            plan[key] = top[key]
    if "scenes" not in top:
        raise SettingsError("plan: this plan has no \"scenes\"; list them, e.g. \"scenes\": [{\"scene_id\": "
                            "\"scene_001\", \"sequence_pattern\": \"graded_scene_001_*.exr\", "
                            "\"transition\": \"cut\"}]")
    plan["scenes"] = _scenes(top["scenes"])
    return SeedTranslation(plan)


def _scenes(value: Any) -> Any:
    """The scenes in today's format (a value that is not a non-empty list goes on to today's message)."""
    if not isinstance(value, list) or not value:
        raise SettingsError("plan: scenes must be a non-empty list of scenes, e.g. [{\"scene_id\": \"scene_001\", "
                            "\"sequence_pattern\": \"graded_scene_001_*.exr\", \"transition\": \"cut\"}]")
    scenes = []
    for number, item in enumerate(value):
        where = f"scenes[{number}]"
        scene = check_keys(item, where, _SCENE_KEYS)
        if "sequence_pattern" not in scene:
            raise SettingsError(f"plan: {where} has no \"sequence_pattern\"; give its image pattern, e.g. "
                                "\"graded_scene_001_*.exr\" or \"shot_####.dpx\"")
        converted: dict[str, Any] = {"sequence": scene["sequence_pattern"], "fps": scene.get("fps", "auto")}
        if "scene_id" in scene:
            converted["name"] = scene["scene_id"]
        for key in ("transition", "missing_frames"):
            if key in scene:
                converted[key] = scene[key]
        scenes.append(converted)
    return scenes
