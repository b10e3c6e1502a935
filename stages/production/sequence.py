"""Numbered image sequences as a scene: find the frames, report the gaps, decode them to lossless chunks.

A scene can be given as a numbered image sequence (PNG, TIFF, JPEG, OpenEXR or DPX) with an fps the user
gives. :func:`find_sequence` finds the frames of a pattern, :func:`plan_timeline` decides what each output frame
shows when frames are missing, and :func:`write_sequence_chunk` decodes a range of output frames to a lossless
chunk (:mod:`stages.media.chunkio`).

Patterns (only the file name may hold the frame number; the folder part is taken literally):

- ``shot_####.exr``: a run of N ``#`` is a frame number zero padded to N digits (``shot_0001.exr``); numbers of
  10**N and more have more digits (``shot_10000.exr``), a longer run that starts with ``0`` is not a match.
- ``shot_%04d.dpx``: the printf form, the same as ``####``; ``shot_%d.png`` takes any run of digits
  (``shot_7.png``, ``shot_0007.png``; both at once are reported as the same frame twice).
- ``graded_scene_001_*.exr``: exactly one ``*``; the last run of digits inside what ``*`` matches is the frame
  number (``graded_scene_001_v2_0100.exr`` is frame 100); a name whose ``*`` part holds no digits is ignored
  with a warning. A ``*`` at the very end (``shot_*``) also covers the extension, taken from the files.

Frames are sorted by number, never by name. The extension (case-insensitive) picks the decoder: ``.png``,
``.tif``/``.tiff``, ``.jpg``/``.jpeg``, ``.exr``, ``.dpx``. Every format is decoded by PyAV (ffmpeg's png,
tiff, mjpeg, exr and dpx decoders, one file per ``av.open``), so there is one code path.

Bit depth: 8-bit images give 8-bit intermediates; anything above 8 bits (16-bit PNG/TIFF, 10/12/16-bit DPX,
float EXR) gives 16-bit intermediates. An integer image of b bits is scaled to 16 bits as
``round(v * 65535 / (2**b - 1))``: exactly ``v * 257`` for 8 bits; for 10-bit DPX, which ffmpeg decodes to
``gbrp10le`` with the plain 10-bit values 0..1023 (not shifted to the top of the 16-bit word), 1023 becomes 65535
and 512 becomes 32800. The scaling is done here on the decoded values, not by swscale. DPX is taken as
display-referred as it is stored: a log-encoded (Cineon/film) DPX keeps its log look, nothing is linearised.

Display transform of OpenEXR (user facing). EXR holds scene-linear light, everything else is display-referred
("srgb"). An EXR frame is made displayable like this:

1. the values are taken as scene-linear with BT.709/sRGB primaries (no gamut conversion);
2. they are clipped to [0, 1]: negative values become 0 and values above 1.0 (highlights) clip to white; there is
   no tone mapping, so expose or grade the EXRs for display before you bring them in if highlights matter;
   NaN becomes 0;
3. they are encoded with the sRGB transfer function of IEC 61966-2-1: ``12.92 * x`` for ``x < 0.0031308``, else
   ``1.055 * x ** (1 / 2.4) - 0.055`` (:func:`linear_to_display`);
4. they are quantised to 16 bits: ``round(v * 65535)``.

The alpha of an EXR is linear coverage: clipped to [0, 1] and quantised, not transformed. Half-float and float
EXRs are both reported as 32 bits (ffmpeg decodes both to 32-bit float).

Missing frames: :data:`MISSING_POLICIES` are ``"skip"`` (leave them out: the scene gets shorter, a warning says by
how much) and ``"hold"`` (show the previous frame in their place: the timing is kept). A frame of another size than
the first one, or one that does not decode, stops the chunk with an :class:`~stages.errors.InputError` naming the
file (sizes are checked while decoding, not by :func:`find_sequence`, which reads only the first frame).

Alpha: a chunk holds RGB only; when frames carry alpha, :func:`write_sequence_chunk` can write the alpha plane to
a sibling chunk of the same size and depth, the grey alpha value repeated in its three channels.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import CodecContext

from stages.errors import InputError, SettingsError
from stages.media.chunkio import ChunkWriter
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import atomic_write_bytes, fsync_dir

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".exr", ".dpx")
"""Extensions of the image files a sequence may hold (compared case-insensitively)."""

MISSING_POLICIES = ("skip", "hold")
"""What to do with missing frames: leave them out, or show the previous frame in their place."""

_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg", ".exr": "exr",
            ".dpx": "dpx"}
_STORAGE_DEPTHS = (8, 16)
_GAP_RANGES_SHOWN = 10
_GLOB_PAD = 4
# Decoded pixel formats whose values to_ndarray gives as they are (gbrp formats come back in RGB order); every
# other one (yuvj420p from JPEG, palettes, grey with alpha...) is converted to rgb24/rgba/rgb48le/rgba64le first.
_NATIVE_FORMATS = frozenset({
    "rgb24", "rgba", "rgb48le", "rgb48be", "rgba64le", "rgba64be", "gray", "gray8",
    "gbrp", "gbrap", "gbrpf32le", "gbrpf32be", "gbrapf32le", "gbrapf32be", "grayf32le", "grayf32be",
    *(f"gbrp{bits}{end}" for bits in (9, 10, 12, 14, 16) for end in ("le", "be")),
    *(f"gbrap{bits}{end}" for bits in (10, 12, 14, 16) for end in ("le", "be")),
    *(f"gray{bits}{end}" for bits in (9, 10, 12, 14, 16) for end in ("le", "be")),
})
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
class ImageFrame:
    """One decoded image: ``rgb`` is ``HxWx3``, ``alpha`` ``HxW`` or None; uint8 at storage depth 8, uint16 at 16."""

    rgb: np.ndarray
    alpha: np.ndarray | None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


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
class SequenceChunk:
    """A chunk written by :func:`write_sequence_chunk`: frame count, size, storage bit depth (8/16), whether any
    frame had alpha, the chunk's path and the alpha chunk's path (None when no alpha chunk was written)."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    alpha_present: bool
    path: str
    alpha_path: str | None


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


def linear_to_display(values: np.ndarray) -> np.ndarray:
    """Scene-linear values (any shape, float) to display values in [0, 1]: clip to [0, 1] (NaN -> 0), then the
    sRGB transfer function of IEC 61966-2-1. float32 in gives float32 out, anything else float64."""
    array = np.asarray(values)
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    x = np.clip(np.nan_to_num(array.astype(dtype, copy=False), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    high = np.where(x >= 1.0, 1.0, 1.055 * np.power(x, dtype(1.0 / 2.4)) - 0.055)  # 1.055 - 0.055 is not 1.0
    return np.clip(np.where(x < 0.0031308, 12.92 * x, high), 0.0, 1.0).astype(dtype, copy=False)


def display_to_linear(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`linear_to_display` on [0, 1]: display values (clipped to [0, 1]) to scene-linear
    values with the inverse sRGB transfer function. float32 in gives float32 out, anything else float64."""
    array = np.asarray(values)
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    v = np.clip(np.nan_to_num(array.astype(dtype, copy=False), nan=0.0), 0.0, 1.0)
    high = np.power((v + 0.055) / 1.055, dtype(2.4))
    return np.where(v < 0.04045, v / 12.92, high).astype(dtype, copy=False)


def _decode_file(path: str | os.PathLike[str]) -> av.VideoFrame:
    """The one frame of an image file, as ffmpeg decodes it.

    Raises:
        InputError: the file is missing, empty, truncated or corrupt.
    """
    shown = os.fspath(path)
    advice = "re-export it, or remove it and use the 'hold' missing-frame policy to show the previous frame instead"
    try:
        # image2 with pattern_type none: the name is taken literally, a '%' in it is no sequence pattern
        with av.open(shown, format="image2", options={"pattern_type": "none"}) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                return frame
    except FileNotFoundError as exc:
        raise InputError(f"sequence: frame {shown} is gone ({exc}); check that nothing moved the files") from exc
    except (OSError, av.error.FFmpegError, IndexError, ValueError) as exc:
        raise InputError(f"sequence: frame {shown} does not decode ({exc}); {advice}") from exc
    raise InputError(f"sequence: frame {shown} is empty or holds no image; {advice}")


def _depth_and_alpha(fmt: av.VideoFormat) -> tuple[int, bool]:
    """Source bit depth (8, 10, 12, 16; 32 for float) and whether the decoded format carries alpha."""
    components = fmt.components
    has_alpha = any(c.is_alpha for c in components)
    if _is_float(fmt.name):
        return 32, has_alpha
    return max(8, max(c.bits for c in components)), has_alpha


def _is_float(name: str) -> bool:
    return "f32" in name or "f16" in name


def _native_array(frame: av.VideoFrame) -> tuple[np.ndarray, int]:
    """Pixel values of a decoded frame as ``HxW`` / ``HxWxC`` (RGB(A) order) and their bit depth (32: float)."""
    fmt = frame.format
    bits, has_alpha = _depth_and_alpha(fmt)
    if fmt.name in _NATIVE_FORMATS:
        return frame.to_ndarray(), bits
    if bits > 8:
        target, bits = ("rgba64le" if has_alpha else "rgb48le"), 16
    else:
        target, bits = ("rgba" if has_alpha else "rgb24"), 8
    return frame.reformat(format=target).to_ndarray(), bits


def _to_storage(values: np.ndarray, bits: int, storage: int, linear: bool, *, is_alpha: bool = False) -> np.ndarray:
    """Integer ``bits``-bit (or float, ``bits`` 32) values to ``storage`` bits (see the module docstring)."""
    dtype = np.uint8 if storage == 8 else np.uint16
    top = (1 << storage) - 1
    if bits == 32:
        display = values.astype(np.float32)
        display = np.clip(np.nan_to_num(display, nan=0.0), 0.0, 1.0) if is_alpha or not linear else (
            linear_to_display(display))
        return np.rint(display * np.float32(top)).astype(dtype)
    if bits == storage:
        return values.astype(dtype, copy=False)
    if bits == 8 and storage == 16:
        return values.astype(np.uint16) * np.uint16(257)
    source_top = (1 << bits) - 1
    wide = values.astype(np.int64)
    return ((wide * (2 * top) + source_top) // (2 * source_top)).astype(dtype)


def read_image(
    path: str | os.PathLike[str], *, expect: tuple[int, int] | None = None, storage_depth: int = 8
) -> ImageFrame:
    """Decode one image file to RGB (and alpha) at ``storage_depth`` bits (8 -> uint8, 16 -> uint16).

    ``expect`` is ``(width, height)``: the size every frame of the sequence must have. Grey images are repeated
    into the three channels. EXR gets the display transform of the module docstring; integer images are scaled
    (``x257`` from 8 to 16 bits, ``round(v * 65535 / (2**b - 1))`` from b bits, ``round(v / 257)``-like rounding
    down to 8 bits).

    Raises:
        SettingsError: ``storage_depth`` is not 8 or 16.
        InputError: the file is missing, empty, truncated or corrupt, or its size differs from ``expect``.
    """
    if storage_depth not in _STORAGE_DEPTHS:
        raise SettingsError(f"sequence: storage depth {storage_depth} is not supported; use 8 or 16")
    frame = _decode_file(path)
    if expect is not None and (frame.width, frame.height) != tuple(expect):
        width, height = expect
        raise InputError(
            f"sequence: frame {os.fspath(path)} is {frame.width}x{frame.height} but the sequence is {width}x{height}; "
            f"a sequence must keep one size, re-export this frame at {width}x{height}"
        )
    values, bits = _native_array(frame)
    linear = os.path.splitext(os.fspath(path))[1].lower() == ".exr"
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    colour = values[:, :, :1].repeat(3, axis=2) if channels < 3 else values[:, :, :3]
    rgb = np.ascontiguousarray(_to_storage(colour, bits, storage_depth, linear))
    alpha = None
    if channels in (2, 4):
        alpha = np.ascontiguousarray(_to_storage(values[:, :, channels - 1], bits, storage_depth, linear,
                                                 is_alpha=True))
    return ImageFrame(rgb=rgb, alpha=alpha)


def _temp_path(final: Path) -> Path:
    # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_sequence_chunk(
    timeline: SequenceTimeline,
    start: int,
    count: int,
    out_path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    storage_depth: int,
    progress: Callable[[int, int], None] | None = None,
    alpha_out: str | os.PathLike[str] | None = None,
) -> SequenceChunk:
    """Decode output frames ``[start, start + count)`` of ``timeline`` into a lossless chunk at ``out_path``.

    Frames are ``width`` x ``height`` RGB at ``storage_depth`` bits (8 or 16, :mod:`stages.media.chunkio`). A run of
    the same file (held frames) is decoded once. With ``alpha_out``, when any frame has alpha the alpha planes go
    to a second chunk there (same size and depth, the alpha value in all three channels; frames without alpha
    are fully opaque); when no frame has alpha, nothing is written there. Without ``alpha_out`` alpha is dropped.
    ``progress(done, count)`` is called after each frame. Both files are written to temporary names in their
    folders and renamed at the end; on any error nothing is left at ``out_path`` or ``alpha_out``.

    Raises:
        SettingsError: the range is outside the timeline, or the size or depth is invalid.
        InputError: a frame does not decode or has another size.
        ChunkError: the chunk cannot be written.
        DiskFullError: the disk filled up.
    """
    total = len(timeline.paths)
    if start < 0 or count < 1 or start + count > total:
        raise SettingsError(
            f"sequence: frames {start}..{start + count - 1} are outside the timeline of {total} frames of "
            f"{timeline.pattern}; plan chunks inside 0..{total - 1}"
        )
    if storage_depth not in _STORAGE_DEPTHS:
        raise SettingsError(f"sequence: storage depth {storage_depth} is not supported; use 8 or 16")
    if width <= 0 or height <= 0:
        raise SettingsError(f"sequence: frame size {width}x{height} is invalid; give the sequence's size")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    alpha_final = Path(alpha_out) if alpha_out is not None else None
    if alpha_final is not None:
        alpha_final.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    alpha_present = False
    try:
        tmp = _temp_path(out)
        temps.append(tmp)
        alpha_tmp = None
        if alpha_final is not None:
            alpha_tmp = _temp_path(alpha_final)
            temps.append(alpha_tmp)
        written, alpha_present = _write_frames(timeline.paths[start:start + count], tmp, alpha_tmp, width, height,
                                               storage_depth, progress)
        _fsync_file(tmp)
        if alpha_tmp is not None and alpha_final is not None and alpha_present:
            _fsync_file(alpha_tmp)
            os.replace(alpha_tmp, alpha_final)
            fsync_dir(alpha_final.parent)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException as exc:
        raise_if_disk_full(exc, f"sequence chunk {out.name}", out.parent)
        raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    if alpha_present and alpha_final is None:
        logger.info("sequence: frames of %s carry alpha, dropped (no alpha chunk asked for)", timeline.pattern)
    kept_alpha = alpha_present and alpha_final is not None
    logger.debug("sequence: wrote %s (%d frames from %d of %s)", out, written, start, timeline.pattern)
    return SequenceChunk(frame_count=written, width=width, height=height, bit_depth=storage_depth,
                         alpha_present=alpha_present, path=str(out),
                         alpha_path=str(alpha_final) if kept_alpha else None)


def _write_frames(
    paths: Iterable[str],
    tmp: Path,
    alpha_tmp: Path | None,
    width: int,
    height: int,
    storage_depth: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[int, bool]:
    """Write the frames of ``paths`` to ``tmp`` (and their alpha to ``alpha_tmp``); frames written, alpha seen."""
    paths = list(paths)
    alpha_present = False
    alpha_output = ChunkWriter(alpha_tmp, width, height, storage_depth) if alpha_tmp is not None else nullcontext()
    with ChunkWriter(tmp, width, height, storage_depth) as writer, alpha_output as alpha_writer:
        opaque = np.full((height, width, 3), (1 << storage_depth) - 1,
                         dtype=np.uint8 if storage_depth == 8 else np.uint16)
        previous: str | None = None
        frame: ImageFrame | None = None
        alpha_rgb = opaque
        for done, path in enumerate(paths, 1):
            if frame is None or path != previous:
                frame = read_image(path, expect=(width, height), storage_depth=storage_depth)
                previous = path
                alpha_rgb = opaque if frame.alpha is None else np.repeat(frame.alpha[:, :, None], 3, axis=2)
                alpha_present = alpha_present or frame.alpha is not None
            writer.write(frame.rgb)
            if alpha_writer is not None:
                alpha_writer.write(alpha_rgb)
            if progress is not None:
                progress(done, len(paths))
    return writer.frames, alpha_present


_WRITE_FORMATS = {
    # format -> {(dtype kind, bits, alpha): encoder pixel format}
    "png": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 16, False): "rgb48be",
            ("u2", 16, True): "rgba64be"},
    "tiff": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 16, False): "rgb48le",
             ("u2", 16, True): "rgba64le"},
    "jpeg": {("u1", 8, False): "yuvj420p"},
    "dpx": {("u1", 8, False): "rgb24", ("u1", 8, True): "rgba", ("u2", 10, False): "gbrp10le",
            ("u2", 12, False): "gbrp12le", ("u2", 16, False): "rgb48le", ("u2", 16, True): "rgba64le"},
    "exr": {("f4", 32, False): "gbrpf32le", ("f4", 32, True): "gbrapf32le"},
}
_ENCODERS = {"png": "png", "tiff": "tiff", "jpeg": "mjpeg", "dpx": "dpx", "exr": "exr"}


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, *, bit_depth: int | None = None) -> Path:
    """Encode one image with PyAV (format from the extension) and write it atomically; return its path.

    ``pixels`` is ``HxWx3`` (RGB) or ``HxWx4`` (RGBA): uint8 for 8 bits, uint16 for 16 bits (or for 10/12-bit
    DPX with ``bit_depth`` 10/12, values 0..2**bits-1), float32 for EXR (values written as they are, i.e.
    scene-linear). Supported: PNG/TIFF 8 and 16 bits with or without alpha, JPEG 8-bit RGB (``yuvj420p``, high
    quality), DPX 8/16 bits with or without alpha and 10/12 bits without, EXR float with or without alpha.

    Raises:
        SettingsError: unsupported extension, shape, dtype or depth for the format.
    """
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise SettingsError(f"sequence: cannot write {out.name}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise SettingsError(f"sequence: image of shape {array.shape} for {out.name}; give HxWx3 or HxWx4 pixels")
    kind = array.dtype.str[1:]
    bits = bit_depth if bit_depth is not None else {"u1": 8, "u2": 16, "f4": 32}.get(kind, 0)
    alpha = array.shape[2] == 4
    pix_fmt = _WRITE_FORMATS[fmt].get((kind, bits, alpha))
    if pix_fmt is None:
        allowed = ", ".join(f"{b}-bit {'RGBA' if a else 'RGB'} ({np.dtype(k).name})"
                            for k, b, a in _WRITE_FORMATS[fmt])
        raise SettingsError(
            f"sequence: cannot write {bits}-bit {'RGBA' if alpha else 'RGB'} {array.dtype} pixels as {fmt} "
            f"({out.name}); {fmt} takes {allowed}"
        )
    if bits in (10, 12) and int(array.max()) >= 1 << bits:
        raise SettingsError(f"sequence: values above {(1 << bits) - 1} for a {bits}-bit {out.name}; scale them first")
    height, width = array.shape[:2]
    if pix_fmt == "yuvj420p":
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24").reformat(format=pix_fmt)
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=pix_fmt)
    context = CodecContext.create(_ENCODERS[fmt], "w")
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 25)
    if fmt == "jpeg":
        context.options = {"qmin": "1", "qmax": "2"}
    packets = [*context.encode(frame), *context.encode(None)]
    atomic_write_bytes(out, b"".join(bytes(packet) for packet in packets))
    return out
