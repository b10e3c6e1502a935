"""Reframe and upscale: a crop that follows keyframes, taken at native resolution, then upscaled to a target size.

An editor reframing a 16:9 shot to 9:16 (or a 4:3 crop to 16:9) gives crop keyframes in source pixels and seconds,
``[{"time": 0.0, "x": 100, "y": 40, "width": 608, "height": 1080}, ...]``. The crop of every frame is interpolated
between keyframes (``linear`` or ``ease``, a cubic ease-in-out) and held before the first and after the last. The
cropped region is taken at its native resolution ("de-zoom": nothing is scaled before the model) with sub-pixel
accuracy, upscaled by the AI model (a caller-given callable, so this module never loads one) and resized to exactly
the target size, which follows the crop's display aspect ratio (:func:`display_aspect`, :func:`target_size`: a
source with non-square pixels is shown ``SAR`` times wider than its pixel count says) unless the user sets one; the
output has square pixels.

Frames are ``HxWx3`` RGB arrays, ``uint8`` (8-bit chunks) or ``uint16`` (16-bit chunks); coordinates are
floats in source pixels, ``(x, y)`` the top-left corner, the pixel ``i`` covering ``[i, i + 1)``.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stages.errors import SettingsError

log = logging.getLogger(__name__)

EASINGS = ("linear", "ease")
KEYFRAME_KEYS = ("time", "x", "y", "width", "height")
MIN_CROP = 16  # pixels, each side
MIN_TARGET = 16
MAX_TARGET_LONG_SIDE = 7680
MAX_TARGET_SHORT_SIDE = 4320
ASPECT_TOLERANCE = 0.01  # keyframes' aspect ratios may differ by this much (relative)
LANDSCAPE_16_9 = (1.7, 1.8)
PORTRAIT_9_16 = (0.55, 0.6)
_EDGE_SLACK = 1e-6  # pixels: float noise allowed at the frame's edges


_NAMED_ASPECTS = (
    ("16:9", 16 / 9), ("9:16", 9 / 16), ("4:3", 4 / 3), ("3:4", 3 / 4), ("1:1", 1.0), ("4:5", 4 / 5),
    ("5:4", 5 / 4), ("3:2", 3 / 2), ("2:3", 2 / 3), ("21:9", 21 / 9), ("9:21", 9 / 21), ("2:1", 2.0),
    ("1:2", 0.5), ("1.85:1", 1.85), ("2.39:1", 2.39),
)


@dataclass(frozen=True)
class CropBox:
    """The crop of one frame, in source pixels (floats: sub-pixel positions and sizes are kept)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.width / self.height

    @property
    def native_size(self) -> tuple[int, int]:
        """``(width, height)`` in whole pixels of the crop taken at native resolution (rounded half up)."""
        return max(1, _round_half_up(self.width)), max(1, _round_half_up(self.height))


@dataclass(frozen=True, kw_only=True)
class CropKeyframe(CropBox):
    """A crop at one moment: ``time`` in seconds from the clip's start; ``x``, ``y``, ``width``, ``height`` in
    source pixels (top-left corner and size)."""

    time: float


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _even(value: float) -> int:
    """The even integer nearest to ``value``."""
    return 2 * _round_half_up(value / 2)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------- keyframes


def _load_entries(data: str | bytes | Sequence[Mapping]) -> list:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SettingsError(f"reframe: the keyframes are not UTF-8 text ({exc}); save the JSON as UTF-8") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise SettingsError(
                f"reframe: the keyframes are not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                'give a JSON list such as [{"time": 0, "x": 0, "y": 0, "width": 608, "height": 1080}]'
            ) from None
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Sequence):
        raise SettingsError(
            f"reframe: the keyframes are of type {type(data).__name__}, not a list; give a JSON list of objects with "
            f"the keys {', '.join(KEYFRAME_KEYS)}"
        )
    if not data:
        raise SettingsError("reframe: the keyframe list is empty; give at least one keyframe "
                            '(e.g. {"time": 0, "x": 0, "y": 0, "width": 608, "height": 1080})')
    return list(data)


def _label(index: int, entry: object) -> str:
    """``keyframe 2 (time 1.5 s)``, or ``(time missing)`` when the entry has no usable time."""
    when = entry.get("time") if isinstance(entry, Mapping) else None
    if _is_number(when) and math.isfinite(when):
        return f"keyframe {index} (time {_fmt(when)} s)"
    return f"keyframe {index} (time missing)"


def _check_entry(index: int, entry: object) -> CropKeyframe:
    label = _label(index, entry)
    if not isinstance(entry, Mapping):
        raise SettingsError(f"reframe: {label} is {entry!r:.40}, not an object; give an object with "
                            f"the keys {', '.join(KEYFRAME_KEYS)}")
    missing = [key for key in KEYFRAME_KEYS if key not in entry]
    if missing:
        raise SettingsError(f"reframe: {label} lacks {', '.join(missing)}; give every keyframe "
                            f"{', '.join(KEYFRAME_KEYS)}")
    unknown = sorted(str(key) for key in entry if key not in KEYFRAME_KEYS)
    if unknown:
        raise SettingsError(f"reframe: {label} has unknown key(s) {', '.join(unknown)}; use only "
                            f"{', '.join(KEYFRAME_KEYS)}")
    for key in KEYFRAME_KEYS:
        value = entry[key]
        if not _is_number(value) or not math.isfinite(value):
            raise SettingsError(f"reframe: {label}: {key} is {value!r}, not a finite number; give a number "
                                "(true/false, text and null are not numbers)")
    keyframe = CropKeyframe(**{key: float(entry[key]) for key in KEYFRAME_KEYS})
    if keyframe.time < 0:
        raise SettingsError(f"reframe: {label}: time is negative; give times in seconds from the clip's start, "
                            "0 or more")
    if keyframe.width <= 0 or keyframe.height <= 0:
        raise SettingsError(f"reframe: {label}: the crop is {_fmt(keyframe.width)}x{_fmt(keyframe.height)}; "
                            "give a width and a height above 0")
    if keyframe.width < MIN_CROP or keyframe.height < MIN_CROP:
        raise SettingsError(f"reframe: {label}: the crop {_fmt(keyframe.width)}x{_fmt(keyframe.height)} is "
                            f"smaller than {MIN_CROP}x{MIN_CROP} pixels; make it at least {MIN_CROP} pixels each way")
    return keyframe


def _check_inside(label: str, keyframe: CropKeyframe, frame_width: int, frame_height: int) -> None:
    frame = f"the {frame_width}x{frame_height} frame"
    if keyframe.x < -_EDGE_SLACK or keyframe.y < -_EDGE_SLACK:
        raise SettingsError(f"reframe: {label}: the crop's top-left corner ({_fmt(keyframe.x)}, {_fmt(keyframe.y)})"
                            f" is outside {frame}; give x and y of 0 or more")
    right, bottom = keyframe.x + keyframe.width, keyframe.y + keyframe.height
    if right > frame_width + _EDGE_SLACK:
        raise SettingsError(f"reframe: {label}: the crop's right edge x + width = {_fmt(right)} is outside "
                            f"{frame}; move x left or narrow the crop so x + width <= {frame_width}")
    if bottom > frame_height + _EDGE_SLACK:
        raise SettingsError(f"reframe: {label}: the crop's bottom edge y + height = {_fmt(bottom)} is outside "
                            f"{frame}; move y up or shorten the crop so y + height <= {frame_height}")


def parse_keyframes(
    data: str | bytes | Sequence[Mapping],
    frame_width: int,
    frame_height: int,
    duration: float | None = None,
) -> tuple[CropKeyframe, ...]:
    """Validate crop keyframes given as JSON text (or bytes) or as the parsed list of objects.

    Each keyframe is an object with exactly the keys ``time`` (seconds from the clip's start), ``x``, ``y``
    (top-left corner) and ``width``, ``height`` (source pixels); values are finite numbers (not booleans).

    Args:
        data: the JSON text, or a list of mappings.
        frame_width, frame_height: the source frame size in pixels; every crop must lie inside it.
        duration: the clip's length in seconds; when given, no keyframe may come after it.

    Returns:
        The keyframes, in time order.

    Raises:
        SettingsError: not JSON or not a non-empty list; an entry that is not an object, lacks a key or has an
            unknown one; a value that is not a finite number; a crop of size <= 0 or below 16x16 pixels, or not
            inside the frame; a negative, unsorted or repeated time, or one after ``duration``; aspect ratios
            that differ by more than 1% (the output has one size). Each message names the keyframe (index and
            time) and says what to change.
    """
    if not (_is_number(frame_width) and _is_number(frame_height)) or frame_width < MIN_CROP \
            or frame_height < MIN_CROP:
        raise SettingsError(f"reframe: the frame size {frame_width}x{frame_height} is too small to crop; give the "
                            f"source's frame size (at least {MIN_CROP}x{MIN_CROP})")
    entries = _load_entries(data)
    keyframes: list[CropKeyframe] = []
    lowest = highest = 0  # indices of the keyframes with the smallest and largest aspect so far
    for index, entry in enumerate(entries):
        keyframe = _check_entry(index, entry)
        label = _label(index, entry)
        _check_inside(label, keyframe, frame_width, frame_height)
        if duration is not None and keyframe.time > duration + 1e-9:
            raise SettingsError(f"reframe: {label} comes after the end of the clip ({_fmt(duration)} s); give "
                                f"times from 0 to {_fmt(duration)} s")
        if keyframes:
            previous = keyframes[-1]
            if keyframe.time == previous.time:
                raise SettingsError(f"reframe: {label} has the same time as keyframe {index - 1}; give each "
                                    "keyframe its own time (remove or move one of them)")
            if keyframe.time < previous.time:
                raise SettingsError(f"reframe: {label} comes before keyframe {index - 1} (time "
                                    f"{_fmt(previous.time)} s); list the keyframes in time order")
            for other in (lowest, highest):
                ratio = max(keyframe.aspect, keyframes[other].aspect) / min(keyframe.aspect, keyframes[other].aspect)
                if ratio - 1 > ASPECT_TOLERANCE:
                    raise SettingsError(
                        f"reframe: {label} has aspect ratio {keyframe.aspect:.4f} "
                        f"({_fmt(keyframe.width)}x{_fmt(keyframe.height)}) but keyframe {other} has "
                        f"{keyframes[other].aspect:.4f} ({_fmt(keyframes[other].width)}x"
                        f"{_fmt(keyframes[other].height)}); the output has one size, so give every keyframe the "
                        "same aspect ratio (within 1%)"
                    )
        keyframes.append(keyframe)
        if keyframe.aspect < keyframes[lowest].aspect:
            lowest = index
        if keyframe.aspect > keyframes[highest].aspect:
            highest = index
    return tuple(keyframes)


# ---------------------------------------------------------------------------------------------------- crops


def _ease(fraction: float, easing: str) -> float:
    if easing == "ease":
        return fraction * fraction * (3.0 - 2.0 * fraction)
    return fraction


def _check_easing(easing: str) -> None:
    if easing not in EASINGS:
        raise SettingsError(f"reframe: unknown easing {easing!r}; use one of {', '.join(EASINGS)}")


def _crop_at(keyframes: Sequence[CropKeyframe], times: Sequence[float], when: float, easing: str) -> CropBox:
    if not math.isfinite(when):
        raise SettingsError(f"reframe: frame time {when!r} is not a finite number; give times in seconds")
    after = bisect.bisect_right(times, when)
    if after == 0:
        first = keyframes[0]
        return CropBox(first.x, first.y, first.width, first.height)
    if after == len(keyframes):
        last = keyframes[-1]
        return CropBox(last.x, last.y, last.width, last.height)
    a, b = keyframes[after - 1], keyframes[after]
    s = _ease((when - a.time) / (b.time - a.time), easing)
    return CropBox(a.x + (b.x - a.x) * s, a.y + (b.y - a.y) * s,
                   a.width + (b.width - a.width) * s, a.height + (b.height - a.height) * s)


def _checked(keyframes: Sequence[CropKeyframe], easing: str) -> list[float]:
    _check_easing(easing)
    if not keyframes:
        raise SettingsError("reframe: no keyframes; give at least one (parse them with parse_keyframes)")
    return [k.time for k in keyframes]


def crop_at(keyframes: Sequence[CropKeyframe], time: float, easing: str = "linear") -> CropBox:
    """The crop at ``time`` seconds: interpolated between the two keyframes around it (``linear``, or ``ease``:
    ``3s^2 - 2s^3`` on the fraction ``s`` between them), held before the first and after the last keyframe.

    Interpolating two crops of the same aspect ratio keeps it (width and height move by the same fraction).
    ``keyframes`` are in time order, as :func:`parse_keyframes` returns them.

    Raises:
        SettingsError: no keyframes, an unknown easing, or a time that is not finite.
    """
    return _crop_at(keyframes, _checked(keyframes, easing), time, easing)


def plan_crops(keyframes: Sequence[CropKeyframe], frame_times: Sequence[float],
               easing: str = "linear") -> list[CropBox]:
    """One :func:`crop_at` box per source frame; ``frame_times`` are each frame's seconds from the clip's start
    (real timestamps, so variable frame rate clips are followed exactly).

    Raises:
        SettingsError: as :func:`crop_at`.
    """
    times = _checked(keyframes, easing)
    return [_crop_at(keyframes, times, float(t), easing) for t in frame_times]


# ---------------------------------------------------------------------------------------------------- target size


def _check_target(target: object) -> tuple[int, int]:
    """The target ``(width, height)``; SettingsError when it is not two even integers from 16 to 7680x4320."""
    if (not isinstance(target, (tuple, list)) or len(target) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in target)):
        raise SettingsError(f"reframe: the output size {target!r} is not a (width, height) pair of whole "
                            "numbers; give e.g. (1080, 1920)")
    width, height = int(target[0]), int(target[1])
    size = f"{width}x{height}"
    if width % 2 or height % 2:
        raise SettingsError(f"reframe: the output size {size} is odd; encoders need even sizes, use "
                            f"{width + width % 2}x{height + height % 2}")
    if width < MIN_TARGET or height < MIN_TARGET:
        raise SettingsError(f"reframe: the output size {size} is too small; give at least "
                            f"{MIN_TARGET}x{MIN_TARGET}")
    if max(width, height) > MAX_TARGET_LONG_SIDE or min(width, height) > MAX_TARGET_SHORT_SIDE:
        raise SettingsError(f"reframe: the output size {size} is above the 8K limit (7680x4320 or 4320x7680); "
                            "give a smaller size")
    return width, height


def parse_size(value: str | None) -> tuple[int, int] | None:
    """``"WIDTHxHEIGHT"`` (as typed on the command line or sent to the API) as ``(width, height)``; None when empty.
    The size itself is checked by :func:`target_size`.

    Raises:
        SettingsError: not two whole numbers joined by ``x``.
    """
    if not value:
        return None
    width, sep, height = value.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise SettingsError(f"reframe: size {value!r} must be WIDTHxHEIGHT, e.g. 1080x1920")
    return int(width), int(height)


def display_aspect(box: CropBox, sample_aspect: float | Fraction = 1) -> float:
    """The aspect ratio ``box`` is shown with: its width over height in source pixels times the source's sample
    (pixel) aspect ratio (a 720x480 crop of DV at 8:9 shows as 4:3, not 3:2). Target sizes are chosen from it.

    Raises:
        SettingsError: ``sample_aspect`` is not a positive finite number.
    """
    value = float(sample_aspect)
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"reframe: pixel aspect {sample_aspect!r} is not a positive number; give the source's "
                            "sample aspect ratio (1 for square pixels)")
    return box.aspect * value


def target_size(aspect: float, override: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output ``(width, height)`` in square pixels for crops shown with ``aspect`` (width / height as displayed:
    :func:`display_aspect`, which is the crop's width / height for a source with square pixels).

    ``override`` (the user's choice) wins after validation. Otherwise: aspect 1.7-1.8 (16:9) -> 3840x2160;
    0.55-0.6 (9:16) -> 1080x1920; any other landscape aspect (1:1 included) -> height 2160 and
    ``width = round(2160 * aspect)`` to an even number; portrait -> width 1080 and ``height = round(1080 / aspect)``
    to an even number. A long side above 7680 is brought down to 7680 and the other side scaled with it (even);
    no side goes below 16.

    Raises:
        SettingsError: ``aspect`` is not a positive finite number; ``override`` is odd, below 16x16 or above
            7680x4320 (4320x7680 portrait).
    """
    if override is not None:
        return _check_target(override)
    if not _is_number(aspect) or not math.isfinite(aspect) or aspect <= 0:
        raise SettingsError(f"reframe: aspect ratio {aspect!r} is not a positive number; give width / height")
    if LANDSCAPE_16_9[0] <= aspect <= LANDSCAPE_16_9[1]:
        return 3840, 2160
    if PORTRAIT_9_16[0] <= aspect <= PORTRAIT_9_16[1]:
        return 1080, 1920
    if aspect >= 1:
        width, height = _even(2160 * aspect), 2160
        if width > MAX_TARGET_LONG_SIDE:
            width, height = MAX_TARGET_LONG_SIDE, _even(MAX_TARGET_LONG_SIDE / aspect)
    else:
        width, height = 1080, _even(1080 / aspect)
        if height > MAX_TARGET_LONG_SIDE:
            width, height = _even(MAX_TARGET_LONG_SIDE * aspect), MAX_TARGET_LONG_SIDE
    return max(MIN_TARGET, width), max(MIN_TARGET, height)


def _aspect_name(aspect: float) -> str:
    if LANDSCAPE_16_9[0] <= aspect <= LANDSCAPE_16_9[1]:
        return "16:9"
    if PORTRAIT_9_16[0] <= aspect <= PORTRAIT_9_16[1]:
        return "9:16"
    for name, value in _NAMED_ASPECTS:
        if abs(aspect / value - 1) <= 0.005:
            return name
    return f"{aspect:.2f}:1" if aspect >= 1 else f"1:{1 / aspect:.2f}"


def describe_target(aspect: float, override: tuple[int, int] | None = None) -> str:
    """One line for the UI and the logs: ``"16:9 -> 3840x2160"``, ``"4:3 -> 2880x2160"``,
    ``"2.39:1 -> 5162x2160"``; with an override, ``"4:3 -> 1440x1080 (chosen)"``.

    Raises:
        SettingsError: as :func:`target_size`.
    """
    width, height = target_size(aspect, override)
    return f"{_aspect_name(aspect)} -> {width}x{height}" + (" (chosen)" if override is not None else "")


def model_scale_for(crops: Sequence[CropBox], target: tuple[int, int],
                    available_scales: Sequence[int] = (2, 4, 8)) -> int:
    """The smallest scale ``s`` of ``{1} | available_scales`` that brings every crop's native size to at least
    ``target`` in both dimensions (``native * s >= target``); the final resize then only shrinks.

    1 means every crop is already at least the target: no model, only a resize. When even the largest available
    scale falls short, the largest is returned and the final resize (Lanczos) makes up the rest, so that share
    of the enlargement is not AI-upscaled.

    Raises:
        SettingsError: no crops, or a scale that is not a whole number of at least 2.
    """
    if not crops:
        raise SettingsError("reframe: no crops to size the model for; plan them first with plan_crops")
    if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 2 for s in available_scales):
        raise SettingsError(f"reframe: model scales {tuple(available_scales)!r} must be whole numbers of at "
                            "least 2; give e.g. (2, 4, 8)")
    target_w, target_h = target
    smallest_w = min(c.native_size[0] for c in crops)
    smallest_h = min(c.native_size[1] for c in crops)
    candidates = sorted({1, *(int(s) for s in available_scales)})
    for scale in candidates:
        if smallest_w * scale >= target_w and smallest_h * scale >= target_h:
            return scale
    return candidates[-1]


# ---------------------------------------------------------------------------------------------------- frames
