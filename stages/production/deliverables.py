"""What a deliverable is and the master it is made from: kinds, codecs, specs, results and the checked master.

Every function of :mod:`stages.production.deliver` (the encode of a deliverable) and :mod:`stages.production.stills`
(the thumbnail and the contact sheet) takes the master as lossless chunk files in order
(:func:`stages.media.chunkio.read_frames`: ``(H, W, 3)`` RGB, uint8 or uint16, display-referred BT.709/sRGB, every
frame the same size) and a constant frame rate ``fps`` (a :class:`~fractions.Fraction`; frame ``i`` is at
``i / fps`` seconds). This module checks both and reads the master's frames back for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import count_frames, first_frame, read_frames
from stages.media.codecs import VIDEO_CODECS, VideoCodec

DELIVERABLE_KINDS = ("mp4", "mov", "prores4444", "h264", "av1", "ffv1")
AUDIO_SAMPLE_RATE = 48_000
AUDIO_CHANNELS = 2
AUDIO_BITRATE_RANGE = (64_000, 512_000)
MAX_FPS = Fraction(240)


@dataclass(frozen=True)
class DeliverableKind:
    """What one deliverable kind is: its role, container, codecs (the first is the default) and audio."""

    kind: str
    role: str
    description: str
    container: str  # ffmpeg format name
    suffix: str
    filename_tail: str  # appended to the name by default_filename
    codecs: tuple[str, ...]
    audio_codec: str  # "aac" or "pcm_s24le"
    faststart: bool = False


DELIVERABLES: dict[str, DeliverableKind] = {
    "mp4": DeliverableKind(
        kind="mp4", role="distribution", container="mp4", suffix=".mp4", filename_tail=".mp4",
        codecs=("h265", "h264", "av1"), audio_codec="aac", faststart=True,
        description="H.265 (or h264/av1) CRF 18, 4:2:0 8/10-bit, hvc1, AAC 320 kb/s, MP4 +faststart",
    ),
    "mov": DeliverableKind(
        kind="mov", role="archive", container="mov", suffix=".mov", filename_tail=".mov", codecs=("prores_hq",),
        audio_codec="pcm_s24le", description="ProRes 422 HQ yuv422p10le, PCM s24le, MOV",
    ),
    "prores4444": DeliverableKind(
        kind="prores4444", role="archive with alpha", container="mov", suffix=".mov", filename_tail="_4444.mov",
        codecs=("prores_4444",), audio_codec="pcm_s24le",
        description="ProRes 4444 yuva444p10le with alpha (opaque without one), PCM s24le, MOV",
    ),
    "h264": DeliverableKind(
        kind="h264", role="compatibility", container="mp4", suffix=".mp4", filename_tail="_h264.mp4",
        codecs=("h264",), audio_codec="aac", faststart=True,
        description="H.264 CRF 18, 4:2:0 8/10-bit, AAC 320 kb/s, MP4 +faststart",
    ),
    "av1": DeliverableKind(
        kind="av1", role="distribution", container="mp4", suffix=".mp4", filename_tail="_av1.mp4", codecs=("av1",),
        audio_codec="aac", faststart=True,
        description="AV1 (SVT-AV1 CRF 30, preset 8) yuv420p10le, AAC 320 kb/s, MP4 +faststart",
    ),
    "ffv1": DeliverableKind(
        kind="ffv1", role="lossless archive", container="matroska", suffix=".mkv", filename_tail="_ffv1.mkv",
        codecs=("ffv1",), audio_codec="pcm_s24le",
        description="FFV1 level 3 (slicecrc), RGB bgr0/gbrp16le, PCM s24le, Matroska",
    ),
}


@dataclass(frozen=True)
class DeliverableSpec:
    """What to deliver: a kind from :data:`DELIVERABLE_KINDS` and optional overrides.

    ``codec`` picks the video codec where the kind offers several (``"mp4"``: ``"h265"`` default, ``"h264"``,
    ``"av1"``); None is the kind's default. ``crf``/``preset`` None are the codec's defaults (CRF 18 / medium for
    x264/x265, CRF 30 / preset ``"8"`` for SVT-AV1); ProRes and FFV1 take neither. ``audio_bitrate`` (bit/s) is
    used by AAC kinds only.
    """

    kind: str
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    audio_bitrate: int = 320_000

    def validate(self) -> None:
        """Raises SettingsError for an unknown kind, a codec the kind does not offer, a CRF outside the codec's
        range or given to a codec without one, an unknown preset, or an audio bit rate outside 64..512 kb/s."""
        if self.kind not in DELIVERABLES:
            raise SettingsError(f"deliver: unknown deliverable kind {self.kind!r}; use one of "
                                f"{', '.join(DELIVERABLE_KINDS)}")
        offered = DELIVERABLES[self.kind].codecs
        if self.codec is not None and self.codec not in offered:
            raise SettingsError(f"deliver: codec {self.codec!r} is not offered by the {self.kind} deliverable; "
                                f"use one of {', '.join(offered)} or leave it unset")
        codec = self.video_codec
        if self.crf is not None:
            if codec.crf_range is None:
                raise SettingsError(f"deliver: {codec.name} has no CRF (got {self.crf!r}); leave crf unset")
            low, high = codec.crf_range
            if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not low <= self.crf <= high:
                raise SettingsError(f"deliver: crf {self.crf!r} is outside {low}..{high} for {codec.name}; "
                                    f"use {codec.default_crf} or leave it unset")
        if self.preset is not None:
            if not codec.presets:
                raise SettingsError(f"deliver: {codec.name} has no preset (got {self.preset!r}); leave preset unset")
            if self.preset not in codec.presets:
                raise SettingsError(f"deliver: unknown preset {self.preset!r} for {codec.name}; use one of "
                                    f"{', '.join(codec.presets)}")
        low, high = AUDIO_BITRATE_RANGE
        if (isinstance(self.audio_bitrate, bool) or not isinstance(self.audio_bitrate, int)
                or not low <= self.audio_bitrate <= high):
            raise SettingsError(f"deliver: audio bit rate {self.audio_bitrate!r} is outside {low}..{high} bit/s; "
                                "use 320000")

    @property
    def deliverable(self) -> DeliverableKind:
        """The table entry of ``kind`` (KeyError for an unknown kind: call :meth:`validate` first)."""
        return DELIVERABLES[self.kind]

    @property
    def video_codec(self) -> VideoCodec:
        """The video codec this spec encodes with (``codec`` or the kind's default)."""
        return VIDEO_CODECS[self.codec or self.deliverable.codecs[0]]

    @property
    def effective_crf(self) -> int | None:
        """``crf`` or the codec's default (None for codecs without a CRF)."""
        return self.crf if self.crf is not None else self.video_codec.default_crf

    @property
    def effective_preset(self) -> str | None:
        """``preset`` or the codec's default (None for codecs without presets)."""
        return self.preset if self.preset is not None else self.video_codec.default_preset


@dataclass(frozen=True)
class DeliverableResult:
    """What was written, as probed from the file.

    ``codec`` is the probed codec name (``hevc``, ``h264``, ``av1``, ``prores``, ``ffv1``), ``pix_fmt`` the pixel
    format FFmpeg's decoder reports (ProRes 4444 decodes as ``yuva444p12le`` though it is encoded from
    ``yuva444p10le``), ``fps`` the stream's average rate as ``"num/den"``, ``duration`` seconds of the video
    stream, ``profile`` the codec profile FFmpeg names (``"HQ"``, ``"4444"``, ``"Main 10"``...), ``codec_tag`` the
    container's fourcc (``"hvc1"``), ``encoder`` the video encoder that ran, ``audio_*`` None without audio
    (``audio_bit_rate`` in bit/s as the container declares it), ``notes`` what a person should know about it.
    """

    path: str
    kind: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: str
    frame_count: int
    duration: float
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    size_bytes: int
    notes: tuple[str, ...]
    profile: str | None = None
    codec_tag: str | None = None
    encoder: str = ""
    audio_bit_rate: int | None = None


@dataclass(frozen=True)
class _Master:
    """The checked master: chunk paths, frames per chunk, frame size and storage depth."""

    chunks: tuple[Path, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    bit_depth: int

    @property
    def total(self) -> int:
        return sum(self.counts)


def default_filename(name: str, kind: str) -> str:
    """File name of the ``kind`` deliverable of ``name``: name.mp4, name.mov, name_4444.mov, name_h264.mp4,
    name_av1.mp4, name_ffv1.mkv.

    Raises:
        SettingsError: unknown kind, or a name that is empty or holds a path separator.
    """
    if kind not in DELIVERABLES:
        raise SettingsError(f"deliver: unknown deliverable kind {kind!r}; use one of {', '.join(DELIVERABLE_KINDS)}")
    if not name or "/" in name or "\\" in name:
        raise SettingsError(f"deliver: {name!r} is not a file name; pass a non-empty name without folders")
    return f"{name}{DELIVERABLES[kind].filename_tail}"


def _check_fps(fps: Fraction | int) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (Fraction, int, float)):
        raise SettingsError(f"deliver: fps {fps!r} is not a number; pass a Fraction such as Fraction(30000, 1001)")
    rate = Fraction(fps).limit_denominator(1001) if isinstance(fps, float) else Fraction(fps)
    if not 0 < rate <= MAX_FPS:
        raise SettingsError(f"deliver: fps {fps} is outside (0, {MAX_FPS}]; pass the master's frame rate")
    return rate


def _check_master(chunks: Sequence[str | os.PathLike[str]]) -> _Master:
    """Check every chunk exists and has frames; read the first frame for the size and depth."""
    if not chunks:
        raise ChunkError("deliver: no chunks given; pass the master's chunk files in order")
    paths = tuple(Path(chunk) for chunk in chunks)
    counts = tuple(_count(path, number) for number, path in enumerate(paths))
    first = first_frame(paths[0])
    return _Master(chunks=paths, counts=counts, width=int(first.shape[1]), height=int(first.shape[0]),
                   bit_depth=16 if first.dtype == np.uint16 else 8)


def _count(path: Path, number: int) -> int:
    if not path.is_file():
        raise ChunkError(f"deliver: chunk {number} ({path}) does not exist; redo the master or fix the path")
    try:
        count = count_frames(path)
    except (OSError, IndexError, av.error.FFmpegError) as exc:
        raise ChunkError(f"deliver: chunk {number} ({path}) cannot be read ({exc}); redo the master") from exc
    if count == 0:
        raise ChunkError(f"deliver: chunk {number} ({path}) holds no frame; redo the master")
    return count


def _frames(master: _Master, stop: int | None = None) -> Iterator[np.ndarray]:
    """Every frame of the master in order (up to ``stop``), checked for size; ChunkError on a mismatch."""
    index = 0
    for number, path in enumerate(master.chunks):
        if stop is not None and index >= stop:
            return
        reader = read_frames(path)
        try:
            for frame in reader:
                if frame.shape[:2] != (master.height, master.width):
                    raise ChunkError(f"deliver: chunk {number} ({path}) has {frame.shape[1]}x{frame.shape[0]} frames "
                                     f"after {master.width}x{master.height} ones; redo the master at one size")
                yield frame
                index += 1
                if stop is not None and index >= stop:
                    return
        finally:
            reader.close()


def _frame_at(master: _Master, index: int) -> np.ndarray:
    """Frame ``index`` of the master, decoding only the chunk that holds it."""
    start = 0
    for path, count in zip(master.chunks, master.counts, strict=True):
        if index < start + count:
            single = _Master((path,), (count,), master.width, master.height, master.bit_depth)
            for local, frame in enumerate(_frames(single, stop=index - start + 1)):
                if local == index - start:
                    return frame
            break
        start += count
    raise ChunkError(f"deliver: frame {index} could not be decoded from {master.total} counted frames; "
                     "redo the master")
