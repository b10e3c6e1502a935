"""Mastering deliverables: the finished master (lossless chunks) -> distribution and archive files, a thumbnail
and a contact sheet.

Every function takes the master as lossless chunk files in order (:func:`stages.media.chunkio.read_frames`:
``(H, W, 3)`` RGB, uint8 or uint16, display-referred BT.709/sRGB, every frame the same size) and a constant frame
rate ``fps`` (a :class:`~fractions.Fraction`; frame ``i`` is at ``i / fps`` seconds).

A deliverable is encoded in two steps, in a temporary folder next to the output (named
``.<output name>.<pid>.*.part``, so orchestration's cleaner can delete what a killed process left):

1. PyAV encodes the frames with exact pts (time base ``1 / fps``, pts = frame index, every packet one tick long)
   into a temporary file of the output's container. YUV outputs are converted with the BT.709 matrix to limited
   (tv) range and tagged BT.709 primaries/transfer/matrix; FFV1 keeps RGB losslessly (tagged BT.709
   primaries/transfer, RGB matrix, full range): ``gbrp16le`` for 16-bit masters, ``bgr0`` for 8-bit ones (this
   FFV1 encoder takes 8-bit RGB only packed as ``bgr0``/``bgra``, not as ``gbrp``; it codes RGB planes either way).
2. One ffmpeg call muxes it (``-c:v copy``) with the WAV audio, encoded to AAC or PCM s24le as the kind says.

The result is probed (frame count, size, codec, ProRes profile, ``hvc1`` tag, audio streams); only then does it
replace the output. On any failure the output keeps its previous content and no temporary folder is left.

AV1: PyAV's ``libsvtav1`` encodes it when the PyAV build has it. When it does not, PyAV writes a lossless FFV1
intermediate (already converted to ``yuv420p10le``) and the ffmpeg call encodes it with ffmpeg's ``libsvtav1``,
else ``libaom-av1`` (same CRF number, ``cpu-used = min(preset, 8)``: not the same quality per CRF); the result's
``encoder`` and ``notes`` say which. Neither available -> EncodeError.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from stages.errors import ChunkError, EncodeError, InputError, ProbeError, SettingsError
from stages.media.chunkio import count_frames, first_frame, read_frames
from stages.media.encode import PRESETS, YUV_FLAGS, ProgressCallback, check_frame_size
from stages.media.ffmpeg import find_ffmpeg, run_ffmpeg
from stages.media.probe import (
    COLOR_MATRICES,
    COLOR_PRIMARIES,
    COLOR_RANGES,
    COLOR_TRANSFERS,
    probe_video,
)
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import atomic_write_bytes, fsync_dir

logger = logging.getLogger(__name__)

DELIVERABLE_KINDS = ("mp4", "mov", "prores4444", "h264", "av1", "ffv1")
AUDIO_SAMPLE_RATE = 48_000
AUDIO_CHANNELS = 2
AUDIO_BITRATE_RANGE = (64_000, 512_000)
MAX_FPS = Fraction(240)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_WIDTH = 7680
MIN_IMAGE_WIDTH = 16
MAX_GRID = 16
CONTACT_SHEET_GAP = 4  # pixels between tiles and around the grid
JPEG_QUALITY = 92

_SVT_PRESETS = tuple(str(n) for n in range(14))
_SHEET_BACKGROUND = 24  # grey level of the gaps and of tiles without a frame
_LABEL_PADDING = 4
_LABEL_MAX_SCALE = 0.5
_LABEL_MIN_SCALE = 0.3
_AV1_FFMPEG_ENCODERS = ("libsvtav1", "libaom-av1")


@dataclass(frozen=True)
class VideoCodec:
    """One video encoding a deliverable can use.

    ``encoder`` is the PyAV/FFmpeg encoder, ``probed`` the codec name :func:`stages.media.probe.probe_video` reads back,
    ``pix_fmt_8``/``pix_fmt_16`` the encoded pixel format for 8-bit / 16-bit masters, ``options`` the fixed encoder
    options, ``crf_range``/``default_crf`` None when the codec has no CRF, ``presets`` empty when it has none,
    ``profile`` the profile name the written stream must report (None: not checked), ``mp4_tag`` the codec tag in
    MP4/MOV (None: ffmpeg's default), ``rgb`` True when the RGB planes are stored as they are (no YUV matrix).
    """

    name: str
    encoder: str
    probed: str
    pix_fmt_8: str
    pix_fmt_16: str
    options: tuple[tuple[str, str], ...] = ()
    crf_range: tuple[int, int] | None = None
    default_crf: int | None = None
    presets: tuple[str, ...] = ()
    default_preset: str | None = None
    profile: str | None = None
    mp4_tag: str | None = None
    rgb: bool = False

    def pix_fmt(self, bit_depth: int) -> str:
        """Encoded pixel format for a master stored at ``bit_depth`` (8 or 16) bits."""
        return self.pix_fmt_16 if bit_depth > 8 else self.pix_fmt_8


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


VIDEO_CODECS: dict[str, VideoCodec] = {
    "h265": VideoCodec(
        name="h265", encoder="libx265", probed="hevc", pix_fmt_8="yuv420p", pix_fmt_16="yuv420p10le",
        options=(("x265-params", "log-level=error"),), crf_range=(0, 51), default_crf=18, presets=PRESETS,
        default_preset="medium", mp4_tag="hvc1",
    ),
    "h264": VideoCodec(
        name="h264", encoder="libx264", probed="h264", pix_fmt_8="yuv420p", pix_fmt_16="yuv420p10le",
        crf_range=(0, 51), default_crf=18, presets=PRESETS, default_preset="medium",
    ),
    "av1": VideoCodec(
        name="av1", encoder="libsvtav1", probed="av1", pix_fmt_8="yuv420p10le", pix_fmt_16="yuv420p10le",
        crf_range=(0, 63), default_crf=30, presets=_SVT_PRESETS, default_preset="8",
    ),
    "prores_hq": VideoCodec(
        name="prores_hq", encoder="prores_ks", probed="prores", pix_fmt_8="yuv422p10le", pix_fmt_16="yuv422p10le",
        options=(("profile", "hq"), ("vendor", "apl0")), profile="HQ",
    ),
    "prores_4444": VideoCodec(
        name="prores_4444", encoder="prores_ks", probed="prores", pix_fmt_8="yuva444p10le",
        pix_fmt_16="yuva444p10le", options=(("profile", "4444"), ("vendor", "apl0"), ("alpha_bits", "16")),
        profile="4444",
    ),
    "ffv1": VideoCodec(
        name="ffv1", encoder="ffv1", probed="ffv1", pix_fmt_8="bgr0", pix_fmt_16="gbrp16le",
        options=(("level", "3"), ("slicecrc", "1"), ("g", "1"), ("context", "1"), ("slices", "4")), rgb=True,
    ),
}

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
class ThumbnailResult:
    """A written still: the frame it shows (index and start time in seconds) and its size in pixels."""

    path: str
    frame_index: int
    time_seconds: float
    width: int
    height: int


@dataclass(frozen=True)
class ContactSheetResult:
    """A written contact sheet: the frame index of each tile in reading order (fewer than ``columns * rows``
    when the video has fewer frames) and the sheet's size in pixels."""

    path: str
    frame_indices: tuple[int, ...]
    columns: int
    rows: int
    width: int
    height: int


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


def format_timecode(frame_index: int, fps: Fraction | float) -> str:
    """``HH:MM:SS:FF`` of ``frame_index`` counted at the rounded rate (non-drop-frame: 29.97 counts as 30)."""
    base = max(1, round(fps))
    seconds, frames = divmod(int(frame_index), base)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def encode_deliverable(
    chunks: Sequence[str | os.PathLike[str]],
    fps: Fraction | int,
    out_path: str | os.PathLike[str],
    spec: DeliverableSpec,
    *,
    audio: str | os.PathLike[str] | None = None,
    alpha_chunks: Sequence[str | os.PathLike[str]] | None = None,
    ffmpeg: str | None = None,
    progress: ProgressCallback | None = None,
) -> DeliverableResult:
    """Encode the master ``chunks`` as the deliverable ``spec`` into ``out_path`` (see the module docstring).

    ``audio`` is a WAV (PCM, 48 kHz stereo, the video's duration) muxed as AAC at ``spec.audio_bitrate`` or PCM
    s24le, resampled to 48 kHz stereo when it is not; None writes no audio stream. ``alpha_chunks`` (same chunk
    and frame counts, grey alpha in all 3 channels, same dtype) is the ProRes 4444 alpha; without it ProRes 4444
    is fully opaque, and other kinds ignore it (both said in ``notes``). ``out_path``'s suffix must be the
    kind's (``.mp4``, ``.mov``, ``.mkv``). ``progress(done, total)`` counts encoded frames.

    Raises:
        SettingsError: bad spec, wrong suffix, bad fps, a frame size the codec cannot hold (odd sizes for 4:2:0,
            odd widths for 4:2:2, libx265 minimum sizes), no ffmpeg.
        InputError: the audio file is missing or has no audio stream.
        ChunkError: no chunks, a chunk is missing, unreadable or empty, frames differ in size, the alpha chunks
            do not match the chunks.
        EncodeError: encoding or muxing failed, no AV1 encoder, or the written file is not what was asked.
        DiskFullError: the disk filled up (the output keeps its previous content).
        Nothing is left at ``out_path`` (its previous content is kept) and no temporary folder stays behind when
        an error is raised.
    """
    spec.validate()
    kind = spec.deliverable
    codec = spec.video_codec
    out = Path(out_path)
    if out.suffix.lower() != kind.suffix:
        raise SettingsError(f"deliver: {out.name} does not end in {kind.suffix}, the {kind.kind} deliverable's "
                            f"suffix; name it like {default_filename(out.stem or 'master', kind.kind)}")
    rate = _check_fps(fps)
    master = _check_master(chunks)
    notes: list[str] = []
    alpha = _check_alpha(alpha_chunks, master, kind.kind, notes)
    audio_path = _check_audio(audio, master.total / rate, notes) if audio is not None else None
    pix_fmt = codec.pix_fmt(master.bit_depth)
    _check_size(codec, pix_fmt, master.width, master.height)
    exe = find_ffmpeg(ffmpeg)
    fallback = _av1_fallback(exe, notes) if codec.name == "av1" and not _pyav_has_encoder(codec.encoder) else None
    workdir: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
        workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent))
        if fallback is None:
            video_tmp = workdir / f"video{kind.suffix}"
            _encode_stream(master, alpha, video_tmp, kind.container, codec, spec, pix_fmt, rate, progress)
        else:
            video_tmp = workdir / "video.nut"
            _encode_stream(master, None, video_tmp, "nut", VIDEO_CODECS["ffv1"], spec, pix_fmt, rate, progress,
                           yuv_intermediate=True)
        muxed = workdir / f"muxed{kind.suffix}"
        _mux(video_tmp, audio_path, muxed, spec, fallback, exe)
        result = _verify(muxed, out, spec, master, audio_path is not None, fallback or codec.encoder, notes)
        os.replace(muxed, out)
        fsync_dir(out.parent)
    except (OSError, EncodeError) as exc:
        raise_if_disk_full(exc, f"the {kind.kind} deliverable {out.name}", out.parent)
        raise
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    logger.info("deliver: wrote %s (%s: %d frames, %dx%d, %s %s, audio %s)", out, kind.kind, result.frame_count,
                result.width, result.height, result.codec, result.pix_fmt, result.audio_codec or "none")
    return result


def write_thumbnail(
    chunks: Sequence[str | os.PathLike[str]],
    fps: Fraction | int,
    out_path: str | os.PathLike[str],
    *,
    at: float = 0.5,
    at_seconds: float | None = None,
    width: int | None = None,
) -> ThumbnailResult:
    """Write the frame shown at fraction ``at`` of the duration (or at ``at_seconds``) as an 8-bit PNG or JPEG
    (by ``out_path``'s suffix), resized to ``width`` pixels wide (aspect kept) when given.

    The frame shown at ``t`` seconds is ``floor(t * fps)``, the last one at the very end; 16-bit frames are
    reduced to 8 bits with rounding. Only the chunk holding the frame is decoded. The write is atomic.

    Raises:
        SettingsError: ``at`` outside [0, 1], ``at_seconds`` outside [0, duration], ``width`` outside
            16..7680, bad fps, a suffix other than .png/.jpg/.jpeg.
        ChunkError: no chunks, a chunk is missing, unreadable or empty, or frames differ in size.
    """
    out = Path(out_path)
    _check_image_suffix(out)
    rate = _check_fps(fps)
    if width is not None:
        _check_width(width, "thumbnail width")
    master = _check_master(chunks)
    duration = master.total / rate
    if at_seconds is not None:
        if not isinstance(at_seconds, (int, float)) or not 0 <= at_seconds <= float(duration):
            raise SettingsError(f"thumbnail: at_seconds {at_seconds!r} is outside the video (0..{float(duration):.3f} "
                                "s); pick a time inside it")
        position = at_seconds * float(rate)
    else:
        if not isinstance(at, (int, float)) or not 0 <= at <= 1:
            raise SettingsError(f"thumbnail: at {at!r} is outside 0..1; pass a fraction of the duration, e.g. 0.5")
        position = at * master.total
    index = min(master.total - 1, math.floor(position + 1e-6))
    frame = _frame_at(master, index)
    image = _resize(_to_8bit(frame), width) if width is not None else _to_8bit(frame)
    atomic_write_bytes(out, _encode_image(image, out))
    logger.info("thumbnail: wrote %s (frame %d, %dx%d)", out, index, image.shape[1], image.shape[0])
    return ThumbnailResult(path=str(out), frame_index=index, time_seconds=float(index / rate),
                           width=image.shape[1], height=image.shape[0])


def write_contact_sheet(
    chunks: Sequence[str | os.PathLike[str]],
    fps: Fraction | int,
    out_path: str | os.PathLike[str],
    *,
    columns: int = 4,
    rows: int = 4,
    tile_width: int = 320,
    labels: bool = True,
) -> ContactSheetResult:
    """Write a ``columns`` x ``rows`` grid of frames spread evenly over the video as an 8-bit PNG or JPEG.

    Tile ``k`` (reading order) shows frame ``floor((k + 0.5) * N / T)`` of the ``N`` frames for ``T`` tiles, the
    middle of the k-th of T equal spans; with fewer frames than tiles every frame gets a tile and the rest stay
    dark. Each tile is ``tile_width`` x ``round(tile_width * H / W)`` pixels, with a black strip under it holding
    its timecode (:func:`format_timecode`) when ``labels``; tiles are :data:`CONTACT_SHEET_GAP` pixels apart and
    from the border. The sheet is ``columns * tile_width + (columns + 1) * gap`` wide and
    ``rows * (tile_height + strip) + (rows + 1) * gap`` high. Frames are decoded once, in order, up to the last
    one needed (chunks are counted by demuxing first); only the sheet is held in memory. The write is atomic.

    Raises:
        SettingsError: ``columns``/``rows`` outside 1..16, ``tile_width`` outside 16..7680, bad fps, a suffix
            other than .png/.jpg/.jpeg.
        ChunkError: no chunks, a chunk is missing, unreadable or empty, or frames differ in size.
    """
    out = Path(out_path)
    _check_image_suffix(out)
    rate = _check_fps(fps)
    for value, what in ((columns, "columns"), (rows, "rows")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GRID:
            raise SettingsError(f"contact sheet: {what} {value!r} is outside 1..{MAX_GRID}; use 4")
    _check_width(tile_width, "contact sheet tile width")
    master = _check_master(chunks)
    tiles = columns * rows
    if master.total >= tiles:
        indices = [((2 * k + 1) * master.total) // (2 * tiles) for k in range(tiles)]
    else:
        indices = list(range(master.total))
    tile_height = max(1, round(tile_width * master.height / master.width))
    font_scale, strip = _label_layout(tile_width) if labels else (0.0, 0)
    gap = CONTACT_SHEET_GAP
    cell_height = tile_height + strip
    sheet = np.full((rows * cell_height + (rows + 1) * gap, columns * tile_width + (columns + 1) * gap, 3),
                    _SHEET_BACKGROUND, dtype=np.uint8)
    wanted = {index: tile for tile, index in enumerate(indices)}
    for index, frame in enumerate(_frames(master, stop=indices[-1] + 1)):
        tile = wanted.get(index)
        if tile is None:
            continue
        top = gap + (tile // columns) * (cell_height + gap)
        left = gap + (tile % columns) * (tile_width + gap)
        sheet[top:top + tile_height, left:left + tile_width] = _resize(_to_8bit(frame), tile_width, tile_height)
        if labels:
            _draw_label(sheet, format_timecode(index, rate), top + tile_height, left, tile_width, strip, font_scale)
    atomic_write_bytes(out, _encode_image(sheet, out))
    logger.info("contact sheet: wrote %s (%dx%d tiles, %dx%d)", out, columns, rows, sheet.shape[1], sheet.shape[0])
    return ContactSheetResult(path=str(out), frame_indices=tuple(indices), columns=columns, rows=rows,
                              width=sheet.shape[1], height=sheet.shape[0])


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


def _check_alpha(
    alpha_chunks: Sequence[str | os.PathLike[str]] | None, master: _Master, kind: str, notes: list[str]
) -> _Master | None:
    if kind != "prores4444":
        if alpha_chunks:
            logger.warning("deliver: %s cannot carry alpha; the alpha chunks are ignored", kind)
            notes.append(f"alpha chunks ignored: {kind} has no alpha channel (use prores4444)")
        return None
    if not alpha_chunks:
        notes.append("no alpha chunks given: the ProRes 4444 alpha channel is fully opaque")
        return None
    alpha = _check_master(alpha_chunks)
    if alpha.counts != master.counts:
        raise ChunkError(f"deliver: the alpha chunks hold {list(alpha.counts)} frames, the master {list(master.counts)}"
                         "; pass alpha chunks made from the same frames")
    if (alpha.width, alpha.height, alpha.bit_depth) != (master.width, master.height, master.bit_depth):
        raise ChunkError(f"deliver: the alpha frames are {alpha.width}x{alpha.height} at {alpha.bit_depth} bits, the "
                         f"master's {master.width}x{master.height} at {master.bit_depth}; make them match")
    notes.append("alpha from the alpha chunks (10-bit in the encoder, stored with alpha_bits 16)")
    return alpha


def _check_audio(audio: str | os.PathLike[str], video_seconds: Fraction, notes: list[str]) -> Path:
    path = Path(audio)
    if not path.is_file():
        raise InputError(f"deliver: audio file {path} does not exist; pass the master's WAV or audio=None")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(f"deliver: {path.name} has no audio stream; pass the master's WAV or audio=None")
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            if seconds is None and container.duration:
                seconds = container.duration / av.time_base
    except (OSError, av.error.FFmpegError) as exc:
        raise InputError(f"deliver: cannot open the audio {path} ({exc}); pass a PCM WAV") from exc
    if (rate, channels) != (AUDIO_SAMPLE_RATE, AUDIO_CHANNELS):
        notes.append(f"audio resampled from {rate} Hz, {channels} channels to 48000 Hz stereo")
    if seconds is not None and abs(seconds - float(video_seconds)) > 0.05:
        logger.warning("deliver: the audio lasts %.3f s, the video %.3f s; muxing it as it is", seconds,
                       float(video_seconds))
        notes.append(f"audio lasts {seconds:.3f} s, video {float(video_seconds):.3f} s: out of sync at the end")
    return path


def _check_size(codec: VideoCodec, pix_fmt: str, width: int, height: int) -> None:
    """Raise SettingsError for a size ``codec`` cannot hold as ``pix_fmt``."""
    check_frame_size(codec.name, width, height, 10 if "10le" in pix_fmt else 8)
    if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
        raise SettingsError(f"deliver: {width}x{height} cannot be stored as {pix_fmt} ({codec.name} needs even "
                            "width and height for 4:2:0); crop or pad the master to an even size, or deliver ffv1")
    if pix_fmt.startswith("yuv422") and width % 2:
        raise SettingsError(f"deliver: {width}x{height} cannot be stored as {pix_fmt} (4:2:2 needs an even width); "
                            "crop or pad the master to an even width, or deliver prores4444")


def _pyav_has_encoder(name: str) -> bool:
    """Whether this PyAV build can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def _ffmpeg_encoders(exe: str) -> frozenset[str]:
    """Names of the encoders the ffmpeg binary ``exe`` lists."""
    listing = run_ffmpeg(["-encoders"], ffmpeg=exe, what="deliver: list ffmpeg encoders").stdout
    names = set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS":
            names.add(fields[1])
    return frozenset(names)


def _av1_fallback(exe: str, notes: list[str]) -> str:
    """The ffmpeg AV1 encoder to use when PyAV has no libsvtav1, or EncodeError."""
    available = _ffmpeg_encoders(exe)
    for name in _AV1_FFMPEG_ENCODERS:
        if name in available:
            logger.warning("deliver: this PyAV build has no libsvtav1; encoding AV1 with ffmpeg's %s", name)
            notes.append(f"PyAV has no libsvtav1: AV1 encoded by ffmpeg's {name} from a lossless intermediate"
                         + ("" if name == "libsvtav1" else " (libaom CRF/cpu-used; quality differs per CRF)"))
            return name
    raise EncodeError("deliver: no AV1 encoder: PyAV has no libsvtav1 and ffmpeg has neither libsvtav1 nor "
                      "libaom-av1; install a PyAV or ffmpeg build with one, or deliver mp4 with codec h265")


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


def _encode_stream(
    master: _Master,
    alpha: _Master | None,
    path: Path,
    container_format: str,
    codec: VideoCodec,
    spec: DeliverableSpec,
    pix_fmt: str,
    rate: Fraction,
    progress: ProgressCallback | None,
    *,
    yuv_intermediate: bool = False,
) -> None:
    """Encode every master frame into ``path`` (video only): pts = frame index in time base ``1 / rate``.

    ``yuv_intermediate``: ``codec`` is FFV1 storing ``pix_fmt`` YUV frames (the AV1 fallback's lossless input).
    """
    rgb_out = codec.rgb and not yuv_intermediate
    time_base = 1 / rate
    try:
        container = av.open(str(path), mode="w", format=container_format)
    except (OSError, av.error.FFmpegError) as exc:
        raise EncodeError(f"deliver: cannot create {path} ({exc}); check the output folder") from exc
    done = 0
    total = master.total
    try:
        with container:
            stream = container.add_stream(codec.encoder, rate=rate)
            stream.width, stream.height, stream.pix_fmt = master.width, master.height, pix_fmt
            stream.time_base = time_base
            ctx = stream.codec_context
            ctx.time_base = time_base
            ctx.thread_count = 0
            options = dict(codec.options)
            if not yuv_intermediate and codec.crf_range is not None:
                options["crf"] = str(spec.effective_crf)
                options["preset"] = str(spec.effective_preset)
            ctx.options = options
            tags = {
                "color_primaries": _id(COLOR_PRIMARIES, "bt709"),
                "color_trc": _id(COLOR_TRANSFERS, "bt709"),
                "colorspace": _id(COLOR_MATRICES, "gbr" if rgb_out else "bt709"),
                "color_range": _id(COLOR_RANGES, "pc" if rgb_out else "tv"),
            }
            for name, value in tags.items():
                setattr(ctx, name, value)
            alpha_frames = _frames(alpha) if alpha is not None else None
            for rgb in _frames(master):
                alpha_frame = next(alpha_frames, None) if alpha_frames is not None else None
                if alpha_frames is not None and alpha_frame is None:
                    raise ChunkError(f"deliver: the alpha chunks end after {done} frames, the master has {total}; "
                                     "redo the alpha chunks from the same frames")
                frame = _to_video_frame(rgb, alpha_frame, pix_fmt, rgb_out)
                for name, value in tags.items():  # ProRes writes the frame's tags into its frame header
                    setattr(frame, name, value)
                frame.pts = done
                frame.time_base = time_base
                container.mux(_one_tick(stream.encode(frame)))
                done += 1
                if progress is not None:
                    progress(done, total)
            container.mux(_one_tick(stream.encode(None)))
    except av.error.FFmpegError as exc:
        raise EncodeError(f"deliver: {codec.encoder} encoding failed after {done} of {total} frames ({exc}); "
                          "check the frame size and free disk space") from exc


def _id(names: dict[int, str], name: str) -> int:
    return next(key for key, value in names.items() if value == name)


def _one_tick(packets: list[av.Packet]) -> list[av.Packet]:
    """Every frame lasts one tick of ``1 / fps``, so the last frame keeps its length in the container."""
    for packet in packets:
        packet.duration = 1
    return packets


def _to_video_frame(rgb: np.ndarray, alpha: np.ndarray | None, pix_fmt: str, rgb_out: bool) -> av.VideoFrame:
    """``rgb`` (and its alpha for ``yuva`` formats) as a frame in ``pix_fmt``: RGB planes as they are for
    ``rgb_out``, else BT.709 limited range."""
    high = rgb.dtype == np.uint16
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le" if high else "rgb24")
    if rgb_out:
        return frame.reformat(format=pix_fmt)
    if not pix_fmt.startswith("yuva"):
        return frame.reformat(format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
                              interpolation=YUV_FLAGS)
    yuv = frame.reformat(format=pix_fmt.replace("yuva", "yuv"), dst_colorspace=Colorspace.ITU709,
                         dst_color_range=ColorRange.MPEG, interpolation=YUV_FLAGS)
    out = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    for plane in range(3):
        _write_plane(out.planes[plane], _read_plane(yuv.planes[plane], rgb.shape[1], rgb.shape[0]))
    _write_plane(out.planes[3], _alpha_10bit(alpha, rgb.shape[:2], high))
    return out


def _alpha_10bit(alpha: np.ndarray | None, shape: tuple[int, ...], high: bool) -> np.ndarray:
    """10-bit alpha plane (uint16, rounded) from the first channel of an alpha frame; opaque when None."""
    if alpha is None:
        return np.full(shape, 1023, dtype=np.uint16)
    full = 65535 if high else 255
    return ((alpha[..., 0].astype(np.uint32) * 1023 + full // 2) // full).astype(np.uint16)


def _read_plane(plane: av.video.plane.VideoPlane, width: int, height: int) -> np.ndarray:
    """A 16-bit-per-sample plane as a ``(height, width)`` uint16 array (line padding dropped)."""
    data = np.frombuffer(plane, dtype=np.uint16)
    return data.reshape(height, plane.line_size // 2)[:, :width]


def _write_plane(plane: av.video.plane.VideoPlane, values: np.ndarray) -> None:
    """Fill a 16-bit-per-sample plane with ``values`` (``(height, width)`` uint16), keeping its line padding."""
    padded = np.zeros((values.shape[0], plane.line_size // 2), dtype=np.uint16)
    padded[:, :values.shape[1]] = values
    plane.update(padded.tobytes())


def _mux(video: Path, audio: Path | None, out: Path, spec: DeliverableSpec, fallback: str | None, exe: str) -> None:
    """One ffmpeg call: the encoded video (copied, or encoded with the AV1 ``fallback``) and the audio into ``out``."""
    kind = spec.deliverable
    codec = spec.video_codec
    args = ["-i", str(video)]
    if audio is not None:
        args += ["-i", str(audio)]
    args += ["-map", "0:v:0"]
    if audio is not None:
        args += ["-map", "1:a:0"]
    if fallback is None:
        args += ["-c:v", "copy"]
    else:
        args += _fallback_video_args(fallback, spec)
    if codec.mp4_tag is not None:
        args += ["-tag:v", codec.mp4_tag]
    if audio is not None:
        args += ["-c:a", kind.audio_codec, "-ar", str(AUDIO_SAMPLE_RATE), "-ac", str(AUDIO_CHANNELS)]
        if kind.audio_codec == "aac":
            args += ["-b:a", str(spec.audio_bitrate)]
    if kind.faststart:
        args += ["-movflags", "+faststart"]
    args += ["-f", kind.container, str(out)]
    run_ffmpeg(args, ffmpeg=exe, what=f"deliver: {kind.kind} mux")


def _fallback_video_args(encoder: str, spec: DeliverableSpec) -> list[str]:
    """ffmpeg arguments encoding the lossless YUV intermediate to AV1 with ``encoder``, tags included."""
    crf, preset = str(spec.effective_crf), str(spec.effective_preset)
    args = ["-c:v", encoder, "-crf", crf]
    if encoder == "libsvtav1":
        args += ["-preset", preset]
    else:
        args += ["-b:v", "0", "-cpu-used", str(min(int(preset), 8)), "-row-mt", "1"]
    # NUT and FFV1 keep no primaries/transfer, and ffmpeg's encoders take the tags of the frames they get
    tags = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
    return args + ["-vf", tags, "-pix_fmt", "yuv420p10le", "-fps_mode", "passthrough"]


@dataclass(frozen=True)
class _Probed:
    """What the verification reads from a written deliverable (``duration`` in seconds of the video stream)."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    frame_count: int
    duration: float
    rate: Fraction | None
    profile: str | None
    tag: str | None
    audio_streams: int
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_bit_rate: int | None = None


def _probe_output(path: Path) -> _Probed:
    """Read ``path`` back with :func:`stages.media.probe.probe_video` plus the stream details it does not keep.

    Raises:
        ProbeError, OSError, av.error.FFmpegError: the file cannot be read back.
    """
    info = probe_video(path)
    with av.open(str(path)) as container:
        video = next(s for s in container.streams.video if s.index == info.stream_index)
        audio_bit_rate = None
        if container.streams.audio:
            first = container.streams.audio[0]
            audio_bit_rate = int(first.bit_rate or first.codec_context.bit_rate or 0) or None
        rate, profile, tag = video.average_rate, video.codec_context.profile, video.codec_context.codec_tag
    audio = info.audio_streams[0] if info.audio_streams else None
    return _Probed(
        codec=info.codec, pix_fmt=info.pix_fmt, width=info.width, height=info.height, frame_count=info.frame_count,
        duration=info.duration, rate=rate, profile=profile, tag=_tag(tag), audio_streams=len(info.audio_streams),
        audio_codec=audio.codec if audio else None, audio_sample_rate=audio.sample_rate if audio else None,
        audio_channels=audio.channels if audio else None, audio_bit_rate=audio_bit_rate,
    )


def _tag(tag: str | None) -> str | None:
    """A container codec tag (fourcc), None when the container has none (Matroska: four NULs)."""
    return tag.strip("\x00") or None if tag else None


def _verify(
    muxed: Path, out: Path, spec: DeliverableSpec, master: _Master, has_audio: bool, encoder: str, notes: list[str]
) -> DeliverableResult:
    """Probe ``muxed`` and check it is the deliverable asked for; EncodeError when it is not."""
    codec = spec.video_codec
    kind = spec.deliverable
    try:
        probed = _probe_output(muxed)
    except (ProbeError, OSError, av.error.FFmpegError, StopIteration) as exc:
        raise EncodeError(f"deliver: the written {spec.kind} cannot be read back ({exc}); report this as a bug") from exc
    problems = []
    if probed.frame_count != master.total:
        problems.append(f"{probed.frame_count} frames, {master.total} were encoded")
    if (probed.width, probed.height) != (master.width, master.height):
        problems.append(f"{probed.width}x{probed.height} frames, not {master.width}x{master.height}")
    if probed.codec != codec.probed:
        problems.append(f"codec {probed.codec}, not {codec.probed}")
    if codec.profile is not None and probed.profile != codec.profile:
        problems.append(f"profile {probed.profile}, not {codec.profile}")
    if codec.mp4_tag is not None and kind.container in ("mp4", "mov") and probed.tag != codec.mp4_tag:
        problems.append(f"codec tag {probed.tag}, not {codec.mp4_tag}")
    if probed.audio_streams != int(has_audio):
        problems.append(f"{probed.audio_streams} audio streams, {int(has_audio)} was muxed")
    if problems:
        raise EncodeError(f"deliver: the written {spec.kind} has {'; '.join(problems)}; report this as a bug")
    fps = probed.rate or Fraction(probed.frame_count / probed.duration).limit_denominator(1001)
    return DeliverableResult(
        path=str(out), kind=spec.kind, codec=probed.codec, pix_fmt=probed.pix_fmt, width=probed.width,
        height=probed.height, fps=f"{fps.numerator}/{fps.denominator}", frame_count=probed.frame_count,
        duration=probed.duration, audio_codec=probed.audio_codec, audio_sample_rate=probed.audio_sample_rate,
        audio_channels=probed.audio_channels, size_bytes=muxed.stat().st_size, notes=tuple(notes),
        profile=probed.profile, codec_tag=probed.tag, encoder=encoder, audio_bit_rate=probed.audio_bit_rate,
    )


def _check_image_suffix(out: Path) -> None:
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise SettingsError(f"deliver: {out.name} is not a .png, .jpg or .jpeg file; name the image with one of them")


def _check_width(width: int, what: str) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_IMAGE_WIDTH <= width <= MAX_IMAGE_WIDTH:
        raise SettingsError(f"deliver: {what} {width!r} is outside {MIN_IMAGE_WIDTH}..{MAX_IMAGE_WIDTH}; use 320")


def _to_8bit(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as uint8: 16-bit values scaled by 255/65535 with rounding."""
    if frame.dtype == np.uint8:
        return frame
    return ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _resize(image: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """``image`` at ``width`` x ``height`` (height from the aspect when None): area filter down, cubic up."""
    if height is None:
        height = max(1, round(width * image.shape[0] / image.shape[1]))
    if (height, width) == image.shape[:2]:
        return image
    shrink = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _encode_image(rgb: np.ndarray, out: Path) -> bytes:
    """PNG or JPEG bytes of an RGB uint8 image, by ``out``'s suffix."""
    png = out.suffix.lower() == ".png"
    params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    ok, data = cv2.imencode(".png" if png else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise EncodeError(f"deliver: OpenCV could not encode {out.name}; check the image size")
    return data.tobytes()


def _label_layout(tile_width: int) -> tuple[float, int]:
    """Font scale that fits a timecode into ``tile_width`` (never below a legible minimum: narrower tiles clip the
    text) and the height of the label strip."""
    (text_width, _), _ = cv2.getTextSize("00:00:00:00", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    scale = min(_LABEL_MAX_SCALE, max(_LABEL_MIN_SCALE, (tile_width - 2 * _LABEL_PADDING) / text_width))
    (_, text_height), baseline = cv2.getTextSize("00:00:00:00", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return scale, text_height + baseline + 2 * _LABEL_PADDING


def _draw_label(sheet: np.ndarray, text: str, top: int, left: int, width: int, strip: int, scale: float) -> None:
    """A black strip at (``top``, ``left``) of ``width`` x ``strip`` pixels with ``text`` in white, clipped to it."""
    label = np.zeros((strip, width, 3), dtype=np.uint8)
    (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(label, text, (_LABEL_PADDING, _LABEL_PADDING + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    sheet[top:top + strip, left:left + width] = label
