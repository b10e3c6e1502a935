"""Numbered image sequences as a scene: find the frames, report the gaps, plan what each output frame shows.

A scene can be given as a numbered image sequence (PNG, TIFF, JPEG, OpenEXR or DPX) with an fps the user
gives. :func:`find_sequence` finds the frames of a pattern, :func:`plan_timeline` decides what each output frame
shows when frames are missing, and :func:`stages.production.sequence_chunk.write_sequence_chunk` decodes a range of
output frames to a lossless chunk (:mod:`stages.media.chunkio`); one image file is read or written by
:mod:`stages.production.images`.

Patterns (only the file name may hold the frame number; the folder part is taken literally):

- ``shot_####.exr``: a run of N ``#`` is a frame number zero padded to N digits (``shot_0001.exr``); numbers of
  10**N and more have more digits (``shot_10000.exr``), a longer run that starts with ``0`` is not a match.
- ``shot_%04d.dpx``: the printf form, the same as ``####``; ``shot_%d.png`` takes any run of digits
  (``shot_7.png``, ``shot_0007.png``; both at once are reported as the same frame twice).
- ``graded_scene_001_*.exr``: exactly one ``*``; the last run of digits inside what ``*`` matches is the frame
  number (``graded_scene_001_v2_0100.exr`` is frame 100); a name whose ``*`` part holds no digits is ignored
  with a warning. A ``*`` at the very end (``shot_*``) also covers the extension, taken from the files.

Frames are sorted by number, never by name. The extension (case-insensitive) picks the decoder
(:mod:`stages.production.images`).

Missing frames: :data:`MISSING_POLICIES` are ``"skip"`` (leave them out: the scene gets shorter, a warning says by
how much) and ``"hold"`` (show the previous frame in their place: the timing is kept). A frame of another size than
the first one, or one that does not decode, stops the chunk with an :class:`~stages.errors.InputError` naming the
file (sizes are checked while decoding, not by :func:`find_sequence`, which reads only the first frame).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stages.errors import InputError, SettingsError
from stages.production.images import (
    _FORMATS,
    IMAGE_EXTENSIONS,
    _decode_file,
    _depth_and_alpha,
)

logger = logging.getLogger(__name__)

MISSING_POLICIES = ("skip", "hold")
"""What to do with missing frames: leave them out, or show the previous frame in their place."""

_GAP_RANGES_SHOWN = 10
_GLOB_PAD = 4
_TOKEN = re.compile(r"#+|%0(\d+)d|%d|\*")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ImageSequence:
    """A numbered image sequence found on disk; size, depth, alpha and transfer come from its first frame.

    ``pattern`` is the pattern as given, ``directory`` the absolute folder of the frames, ``format`` one of
    ``png``, ``tiff``, ``jpeg``, ``exr``, ``dpx``. ``numbers`` are the frame numbers found (sorted) and ``paths``
    their files (same order); ``missing`` the numbers in ``[first, last]`` with no file. ``bit_depth`` is the
    source depth (8, 10, 12, 16, or 32 for float EXR), ``storage_depth`` the depth of the intermediates (8 or
    16), ``transfer`` ``"linear"`` (EXR) or ``"srgb"`` (display-referred).
    """

    pattern: str
    directory: str
    format: str
    numbers: tuple[int, ...]
    paths: tuple[str, ...]
    first: int
    last: int
    missing: tuple[int, ...]
    width: int
    height: int
    bit_depth: int
    storage_depth: int
    has_alpha: bool
    transfer: str

    @property
    def frame_count_with_gaps(self) -> int:
        """Frames from ``first`` to ``last`` inclusive, missing ones counted (the length under "hold")."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class SequenceTimeline:
    """What each output frame shows: ``paths[i]`` is its file and ``numbers[i]`` the source frame number in it.

    ``held`` are missing numbers filled with the previous frame (policy "hold"), ``skipped`` missing numbers left
    out (policy "skip"); ``warning`` is one line for the user, None when no frame is missing.
    """

    pattern: str
    policy: str
    paths: tuple[str, ...]
    numbers: tuple[int, ...]
    held: tuple[int, ...]
    skipped: tuple[int, ...]
    warning: str | None

    @property
    def frame_count(self) -> int:
        """Number of output frames."""
        return len(self.paths)


@dataclass(frozen=True)
class _NamePattern:
    """The file-name part of a pattern: literal ``prefix``, a frame-number token, literal ``suffix``.

    ``kind`` is ``"pad"`` (``####`` / ``%0Nd``, at least ``pad`` digits), ``"any"`` (``%d``) or ``"glob"``
    (``*``); ``extension`` is the lower-case extension, or None when a trailing ``*`` covers it.
    """

    text: str
    prefix: str
    kind: str
    pad: int
    suffix: str
    extension: str | None

    def regex(self) -> re.Pattern[str]:
        if self.kind == "glob":
            token = "(.+)"
        elif self.kind == "pad":
            token = f"([0-9]{{{self.pad},}})"
        else:
            token = "([0-9]+)"
        suffix = self.suffix
        tail = ""
        if self.extension is not None:
            suffix, tail = suffix[: -len(self.extension)], f"(?i:{re.escape(self.extension)})"
        return re.compile(re.escape(self.prefix) + token + re.escape(suffix) + tail)

    def number(self, name: str, match: re.Match[str]) -> int | None:
        """The frame number of a file name that matched :meth:`regex`, or None when it is not a frame."""
        part = match.group(1)
        if self.kind == "glob":
            if self.extension is None and "." in part:
                part = part[: part.rfind(".")]
            runs = _DIGITS.findall(part)
            return int(runs[-1]) if runs else None
        if self.kind == "pad" and len(part) > self.pad and part.startswith("0"):
            return None
        return int(part)

    def name_for(self, number: int) -> str:
        """The file name of frame ``number`` (a ``*`` becomes the number zero padded to 4 digits)."""
        if number < 0:
            raise SettingsError(f"sequence: frame number {number} is negative; frame numbers start at 0")
        pad = {"pad": self.pad, "any": 1, "glob": _GLOB_PAD}[self.kind]
        return f"{self.prefix}{number:0{pad}d}{self.suffix}"


def _parse_name(name: str, shown: str) -> _NamePattern:
    """Split a file-name pattern into prefix, token and suffix.

    Raises:
        SettingsError: no token or more than one, a ``?``, no extension, or an unsupported extension.
    """
    supported = ", ".join(IMAGE_EXTENSIONS)
    if "?" in name:
        raise SettingsError(
            f"sequence: pattern {shown} uses '?', which is not supported; use #### (or %04d) for a zero-padded "
            "frame number or one * for a glob"
        )
    tokens = list(_TOKEN.finditer(name))
    if len(tokens) != 1:
        runs = _DIGITS.findall(name)
        hint = ""
        if not tokens and runs and "%" not in name:
            last = name.rfind(runs[-1])
            hint = f" (for {name} write {name[:last]}{'#' * len(runs[-1])}{name[last + len(runs[-1]):]})"
        what = "no frame-number token" if not tokens else f"{len(tokens)} frame-number tokens"
        raise SettingsError(
            f"sequence: pattern {shown} has {what}; put exactly one of ####, %04d, %d or * in the file name{hint}"
        )
    token = tokens[0]
    text = token.group(0)
    if text == "*":
        kind, pad = "glob", 0
    elif text == "%d":
        kind, pad = "any", 1
    elif text.startswith("%"):
        kind, pad = "pad", int(token.group(1))
    else:
        kind, pad = "pad", len(text)
    if kind == "pad" and not 1 <= pad <= 18:
        raise SettingsError(f"sequence: pattern {shown} pads the frame number to {pad} digits; use 1 to 18")
    prefix, suffix = name[: token.start()], name[token.end():]
    extension: str | None
    if kind == "glob" and not suffix:
        extension = None
    else:
        extension = suffix[suffix.rfind("."):].lower() if "." in suffix else ""
        if extension not in _FORMATS:
            found = f"extension {extension!r}" if extension else "no extension"
            raise SettingsError(f"sequence: pattern {shown} has {found}; use one of {supported}")
    return _NamePattern(text=name, prefix=prefix, kind=kind, pad=pad, suffix=suffix, extension=extension)


def frame_file_name(pattern: str | os.PathLike[str], number: int) -> str:
    """The file name (no folder) that ``pattern`` gives frame ``number``: ``shot_####.exr`` -> ``shot_0042.exr``,
    ``shot_%d.png`` -> ``shot_42.png``, ``graded_*.exr`` -> ``graded_0042.exr`` (``*`` -> 4-digit padding).

    Raises:
        SettingsError: the pattern is not a valid sequence pattern or the number is negative.
    """
    shown = os.fspath(pattern)
    parsed = _parse_name(os.path.basename(shown), shown)
    if parsed.extension is None:
        raise SettingsError(f"sequence: pattern {shown} ends in * and names no extension; add one, e.g. {shown}.png")
    return parsed.name_for(number)


def _resolve(pattern: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None) -> tuple[str, Path, str]:
    shown = os.fspath(pattern)
    if not shown.strip():
        raise SettingsError("sequence: the pattern is empty; give one such as shot_####.exr")
    path = Path(os.path.expanduser(shown))
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()) / path
    directory = Path(os.path.abspath(path.parent))
    folder_part = os.path.dirname(shown)
    if any(char in folder_part for char in "*?"):
        raise SettingsError(
            f"sequence: the folder part of pattern {shown} holds a wildcard; name the folder exactly and put the "
            "frame number (####, %04d or *) in the file name only"
        )
    return shown, directory, path.name


def _list_names(directory: Path, shown: str) -> list[str]:
    if not directory.exists():
        raise InputError(f"sequence: the folder {directory} of pattern {shown} does not exist; check the path")
    if not directory.is_dir():
        raise InputError(f"sequence: {directory} (the folder of pattern {shown}) is not a folder; check the path")
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.name for entry in entries if entry.is_file())
    except OSError as exc:
        raise InputError(
            f"sequence: cannot list the folder {directory} of pattern {shown} ({exc}); check its permissions"
        ) from exc


def find_sequence(pattern: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> ImageSequence:
    """Find the frames of an image sequence and read its first frame (see the module docstring for patterns).

    A relative ``pattern`` is taken from ``base_dir`` (e.g. the plan file's folder), else the current folder.
    Hidden files (a leading ``.``) are ignored unless the pattern starts with one.

    Raises:
        SettingsError: the pattern is malformed (no or several frame-number tokens, a wildcard in the folder part,
            no or an unsupported extension).
        InputError: the folder is missing; no file matches (the message shows an image file that is there, if
            any); the matches mix formats; two files give the same frame number; the first frame does not decode.
    """
    shown, directory, name = _resolve(pattern, base_dir)
    parsed = _parse_name(name, shown)
    regex = parsed.regex()
    names = _list_names(directory, shown)
    found: list[tuple[int, str]] = []
    no_number: list[str] = []
    for candidate in names:
        if candidate.startswith(".") and not parsed.prefix.startswith("."):
            continue
        match = regex.fullmatch(candidate)
        if match is None or os.path.splitext(candidate)[1].lower() not in _FORMATS:
            continue
        number = parsed.number(candidate, match)
        if number is None:
            if parsed.kind == "glob":
                no_number.append(candidate)
            continue
        found.append((number, candidate))
    if no_number:
        logger.warning("sequence: %d file(s) match %s but hold no frame number and are ignored, e.g. %s",
                       len(no_number), shown, no_number[0])
    if not found:
        raise InputError(_no_match_message(shown, directory, names))
    formats: dict[str, str] = {}
    for _, candidate in found:
        formats.setdefault(_FORMATS[os.path.splitext(candidate)[1].lower()], candidate)
    if len(formats) > 1:
        examples = ", ".join(sorted(formats.values()))
        raise InputError(
            f"sequence: the files of {shown} in {directory} mix formats ({examples}); keep one format per sequence "
            "or give the extension in the pattern"
        )
    by_number: dict[int, str] = {}
    for number, candidate in found:
        if number in by_number:
            raise InputError(
                f"sequence: {by_number[number]} and {candidate} in {directory} are both frame {number} of {shown}; "
                "remove or rename one of them"
            )
        by_number[number] = candidate
    numbers = tuple(sorted(by_number))
    paths = tuple(str(directory / by_number[n]) for n in numbers)
    present = set(numbers)
    missing = tuple(n for n in range(numbers[0], numbers[-1] + 1) if n not in present)
    fmt = next(iter(formats))
    frame = _decode_file(paths[0])
    bit_depth, has_alpha = _depth_and_alpha(frame.format)
    sequence = ImageSequence(
        pattern=shown, directory=str(directory), format=fmt, numbers=numbers, paths=paths, first=numbers[0],
        last=numbers[-1], missing=missing, width=frame.width, height=frame.height, bit_depth=bit_depth,
        storage_depth=8 if bit_depth <= 8 else 16, has_alpha=has_alpha, transfer="linear" if fmt == "exr" else "srgb",
    )
    logger.info("sequence: %s: %d frames %d-%d, %dx%d, %d-bit %s%s, %s", shown, len(numbers), sequence.first,
                sequence.last, sequence.width, sequence.height, bit_depth, fmt, " with alpha" if has_alpha else "",
                describe_gaps(sequence))
    return sequence


def _no_match_message(shown: str, directory: Path, names: list[str]) -> str:
    images = [n for n in names if os.path.splitext(n)[1].lower() in _FORMATS and not n.startswith(".")]
    there = f"the folder holds e.g. {images[0]}" if images else "the folder holds no image files"
    return f"sequence: no file matches {shown} in {directory} ({there}); check the pattern and the folder"


def _ranges(numbers: Sequence[int]) -> list[str]:
    """``[12, 20, 21]`` -> ``["12", "20-21"]``."""
    out: list[str] = []
    start = previous = None
    for number in numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            out.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    if start is not None:
        out.append(str(start) if start == previous else f"{start}-{previous}")
    return out


def _ranges_text(numbers: Sequence[int]) -> str:
    ranges = _ranges(numbers)
    shown = ranges[:_GAP_RANGES_SHOWN]
    return ", ".join(shown) + (", ..." if len(ranges) > len(shown) else "")


def _count(count: int) -> str:
    return f"{count} missing frame{'s' if count != 1 else ''}"


def describe_gaps(seq: ImageSequence) -> str:
    """A short text of the missing frames, e.g. ``"3 missing frames: 12, 20-21"`` (ranges compressed, the first
    10 ranges shown, then ``...``); ``"no missing frames"`` when there are none."""
    if not seq.missing:
        return "no missing frames"
    return f"{_count(len(seq.missing))}: {_ranges_text(seq.missing)}"


def _seconds_text(frames: int, fps: float | Fraction) -> str:
    seconds = f"{frames / float(fps):.3f}".rstrip("0").rstrip(".")
    return f"{seconds} s at {float(fps):g} fps"


def plan_timeline(seq: ImageSequence, policy: str, *, fps: float | Fraction | None = None) -> SequenceTimeline:
    """The output frames of ``seq`` under a missing-frame ``policy`` (one of :data:`MISSING_POLICIES`).

    "skip" leaves missing numbers out (the scene gets shorter), "hold" shows the previous frame in their place
    (``numbers`` then repeats the previous number; the first frame always exists). ``fps`` (frames per second,
    optional) only makes the "skip" warning say how many seconds shorter. The warning is also logged.

    Raises:
        SettingsError: unknown policy, or ``fps`` not a positive number.
    """
    chosen = str(policy).strip().lower()
    if chosen not in MISSING_POLICIES:
        raise SettingsError(
            f"sequence: unknown missing-frame policy {policy!r}; use one of {', '.join(MISSING_POLICIES)}"
        )
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float | Fraction) or not fps > 0):
        raise SettingsError(f"sequence: fps must be a positive number, got {fps!r}; give the scene's frame rate")
    name = os.path.basename(seq.pattern)
    missing = seq.missing
    what = f"sequence {name}: {_count(len(missing))} ({_ranges_text(missing)})"
    if chosen == "skip":
        paths, numbers, held, skipped = seq.paths, seq.numbers, (), missing
        shorter = f"{len(missing)} frame{'s' if len(missing) != 1 else ''}"
        if fps is not None:
            shorter += f" ({_seconds_text(len(missing), fps)})"
        warning = f"{what} skipped; the scene is {shorter} shorter" if missing else None
    else:
        by_number = dict(zip(seq.numbers, seq.paths, strict=True))
        out_paths: list[str] = []
        out_numbers: list[int] = []
        shown_number = seq.first
        for number in range(seq.first, seq.last + 1):
            if number in by_number:
                shown_number = number
            out_paths.append(by_number[shown_number])
            out_numbers.append(shown_number)
        paths, numbers, held, skipped = tuple(out_paths), tuple(out_numbers), missing, ()
        warning = f"{what} held on the previous frame; the timing is kept" if missing else None
    if warning:
        logger.warning(warning)
    return SequenceTimeline(pattern=seq.pattern, policy=chosen, paths=paths, numbers=numbers, held=held,
                            skipped=skipped, warning=warning)
