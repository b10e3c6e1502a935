"""Final encode: lossless chunks -> H.264/H.265 video with the source's audio, subtitles and metadata.

Two steps, both in a temporary folder next to the output:

1. PyAV encodes the concatenated chunk frames with their exact source pts, in the source time base, into a
   temporary MP4 (libx264/libx265, CRF, preset, pixel format, colour tags, display-matrix rotation, the source's
   pixel aspect ratio, or the frames resampled to square pixels when asked).
2. One ffmpeg call muxes that video (stream copy, timestamps kept with ``-copyts``) with every audio and
   subtitle stream of the source: audio is copied when the output container can hold its codec, else
   transcoded to AAC; subtitles are copied into MKV, converted to ``mov_text`` for MP4/MOV, and bitmap
   subtitles MP4/MOV cannot hold are dropped with a warning. Global metadata and chapters come along.

The result is probed; it replaces ``output_path`` only when its frame count is right.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from stages.errors import ChunkError, EncodeError, ProbeError, SettingsError
from stages.media.aspect import format_ratio, square_pixel_size
from stages.media.chunking import ColorConversion, color_conversion
from stages.media.chunkio import read_frames
from stages.media.codecs import (
    check_container,
    check_settings,
    encoder_options,
    is_rgb,
    output_pix_fmt_for,
)
from stages.media.ffmpeg import find_ffmpeg, run_ffmpeg
from stages.media.probe import (
    COLOR_MATRICES,
    COLOR_PRIMARIES,
    COLOR_RANGES,
    COLOR_TRANSFERS,
    VideoInfo,
    probe_video,
)
from stages.store.diskspace import raise_if_disk_full

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
ENCODERS = {"h264": "libx264", "h265": "libx265"}  # every output codec: stages.media.codecs.OUTPUT_CODECS
H265_MIN_WIDTH = 16
H265_MIN_HEIGHT = 32
H265_MIN_WIDTH_HIGH_DEPTH = 64

# Audio codecs each container takes as they are; anything else is transcoded to AAC. None = all of them.
_AUDIO_COPY: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
                      "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f32be", "pcm_u8"}),
    "matroska": None,
}
_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "subviewer",
                             "subviewer1", "jacosub", "sami", "realtext", "mpl2", "pjs", "vplayer", "stl"})
_MKV_TEXT_COPY = frozenset({"subrip", "srt", "ass", "ssa", "webvtt"})
_BITMAP_SUBTITLES = frozenset({"dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle", "xsub"})
_MP4_BITMAP_COPY = frozenset({"dvd_subtitle"})

YUV_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP
SQUARE_PIXEL_FLAGS = Interpolation.LANCZOS | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP
_PRIMARIES_IDS = {name: key for key, name in COLOR_PRIMARIES.items()}
_TRANSFER_IDS = {name: key for key, name in COLOR_TRANSFERS.items()}
_MATRIX_IDS = {name: key for key, name in COLOR_MATRICES.items()}
_RANGE_IDS = {name: key for key, name in COLOR_RANGES.items()}


@dataclass(frozen=True)
class EncodeSettings:
    """Video encoder settings.

    ``codec`` is ``"h264"`` (libx264) or ``"h265"`` (libx265); ``crf`` 0..51; ``preset`` an x264/x265 preset;
    ``pix_fmt`` None picks ``yuv420p`` for 8-bit sources and ``yuv420p10le`` above (``yuv444p``/``yuv444p10le``
    when the frame size is odd, which 4:2:0 cannot hold). Also ``"prores"`` (ProRes 422 HQ, MOV),
    ``"prores4444"`` (MOV), ``"av1"`` (CRF 0..63, the fastest AV1 encoder present; MKV or MP4) and ``"ffv1"``
    (lossless, RGB by default; MKV): stages.media.codecs.OUTPUT_CODECS; ProRes and FFV1 ignore ``crf``/``preset``.
    ``square_pixels``: a source with non-square pixels (a sample aspect ratio other than 1:1, e.g. 720x480 DV at
    8:9) is resampled (Lanczos) to square pixels at the same height and the display aspect
    (:func:`output_geometry`); by default its pixel aspect is carried instead.
    """

    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None
    square_pixels: bool = False

    def validate(self) -> None:
        """Raises SettingsError for an unknown codec, a CRF outside the codec's range (0..51 for x264/x265), an
        unknown preset or pixel format (stages.media.codecs.check_settings)."""
        check_settings(self.codec, self.crf, self.preset, self.pix_fmt)


@dataclass(frozen=True)
class EncodeInput:
    """One lossless chunk file and the exact source pts (source time base) of its frames, in order."""

    path: str
    pts: tuple[int, ...]


@dataclass(frozen=True)
class EncodeResult:
    """What was written, as probed from the output file (``duration`` in seconds, of the video stream)."""

    path: str
    frame_count: int
    width: int
    height: int
    duration: float
    codec: str
    pix_fmt: str
    audio_streams: int
    subtitle_streams: int
    sample_aspect: str = "1:1"  # the output stream's pixel aspect, e.g. "8:9" (players show width * SAR wide)


def encode_video(
    chunks: Sequence[EncodeInput],
    source: VideoInfo,
    output_path: str | os.PathLike[str],
    settings: EncodeSettings,
    *,
    ffmpeg: str | None = None,
    progress: ProgressCallback | None = None,
) -> EncodeResult:
    """Encode ``chunks`` (in order) into ``output_path`` with the audio, subtitles and metadata of ``source``.

    Frames are read with :func:`stages.media.chunkio.read_frames` (``(H, W, 3)`` uint8 or uint16 RGB, any size, the
    same for every frame) and get their exact pts, so output duration equals input duration and VFR timing is
    kept. RGB -> YUV uses the matrix and range of :func:`stages.media.chunking.color_conversion` of ``source``; the
    stream is tagged with its primaries/transfer/matrix/range and the source rotation. A source with non-square
    pixels keeps its display aspect: the stream carries the pixel aspect (:func:`output_geometry`; in the H.264/
    H.265 VUI and the container, so players show it as the source), or with ``settings.square_pixels`` the frames
    are resampled to square pixels. The container follows the suffix (``.mp4``, ``.mov``, ``.mkv``) and must
    hold the codec (stages.media.codecs.check_container: ProRes in .mov, FFV1 in .mkv, AV1 in .mkv or .mp4).
    ``progress(done, total)`` counts encoded frames.

    Raises:
        SettingsError: bad settings, unknown suffix, a container that cannot hold the codec, a 4:2:0/4:2:2 pixel
            format for an odd frame size, H.265 for frames below 16x32, no AV1 encoder for AV1, no ffmpeg.
        ChunkError: a chunk is missing, unreadable, of another size than the first, or its frame count differs
            from its pts count; pts are not strictly increasing across chunks.
        EncodeError: encoding or muxing failed, or the output does not have the expected frames.
        DiskFullError: the disk filled up while encoding or muxing (the output keeps its previous content).
        Nothing is left at ``output_path`` (nor any temporary file) when an error is raised.
    """
    settings.validate()
    out = Path(output_path)
    fmt = CONTAINERS.get(out.suffix.lower())
    if fmt is None:
        raise SettingsError(f"encode: unknown output suffix {out.suffix!r} for {out.name}; use .mp4, .mkv or .mov")
    check_container(settings.codec, out.suffix)
    encoder = encoder_options(settings.codec, settings.crf, settings.preset)[0]
    _check_chunks(chunks)
    exe = find_ffmpeg(ffmpeg)
    total = sum(len(chunk.pts) for chunk in chunks)
    conversion = color_conversion(source)
    workdir: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
        workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent))
        video_tmp = workdir / ("video.mov" if settings.codec.startswith("prores") else "video.mp4")  # MP4 has no ProRes
        _encode_stream(chunks, source, video_tmp, settings, conversion, total, progress)
        muxed = workdir / f"muxed{out.suffix.lower()}"
        kept_audio, kept_subtitles = _mux(video_tmp, source, muxed, fmt, settings, exe)
        result = _verify(muxed, out, total, kept_audio, kept_subtitles)
        os.replace(muxed, out)
    except (OSError, EncodeError) as exc:
        raise_if_disk_full(exc, f"the encoded video {out.name}", out.parent)  # ENOSPC from PyAV or ffmpeg
        raise
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    logger.info("encode: wrote %s (%d frames, %dx%d, %s %s with %s)", out, result.frame_count, result.width,
                result.height, result.codec, result.pix_fmt, encoder)
    return result


def _check_chunks(chunks: Sequence[EncodeInput]) -> None:
    if not chunks:
        raise ChunkError("encode: no chunks given; extract at least one chunk before encoding")
    previous: int | None = None
    for number, chunk in enumerate(chunks):
        if not Path(chunk.path).is_file():
            raise ChunkError(f"encode: chunk {number} ({chunk.path}) does not exist; run its stage again")
        if not chunk.pts:
            raise ChunkError(f"encode: chunk {number} ({chunk.path}) has no pts; a chunk holds at least one frame")
        values = np.asarray(chunk.pts, dtype=np.int64)
        if np.any(np.diff(values) <= 0) or (previous is not None and values[0] <= previous):
            raise ChunkError(
                f"encode: pts of chunk {number} ({chunk.path}) are not strictly increasing after the previous "
                "frames; pass the chunks in order, each with its own frames' pts"
            )
        previous = int(values[-1])


def output_pix_fmt(settings: EncodeSettings, source: VideoInfo, width: int, height: int) -> str:
    """Pixel format the encoder will use for ``width`` x ``height`` frames.

    Raises:
        SettingsError: the explicit pixel format subsamples chroma and the size is odd.
    """
    if settings.codec not in ENCODERS:  # ProRes, AV1, FFV1: their own defaults (stages.media.codecs)
        return output_pix_fmt_for(settings.codec, settings.pix_fmt, source.bit_depth > 8, width, height)
    if settings.pix_fmt is None:
        high = source.bit_depth > 8
        if width % 2 or height % 2:
            logger.info("encode: %dx%d is odd, 4:2:0 cannot hold it; using 4:4:4", width, height)
            return "yuv444p10le" if high else "yuv444p"
        return "yuv420p10le" if high else "yuv420p"
    pix_fmt = settings.pix_fmt
    if (pix_fmt.startswith("yuv420") and (width % 2 or height % 2)) or (pix_fmt.startswith("yuv422") and width % 2):
        raise SettingsError(
            f"encode: {width}x{height} cannot be stored as {pix_fmt} (chroma subsampling needs an even size); "
            "use a yuv444p pixel format or an even output size"
        )
    return pix_fmt


def output_geometry(source: VideoInfo, width: int, height: int, square_pixels: bool = False
                    ) -> tuple[int, int, Fraction]:
    """``(width, height, sample_aspect)`` of the encoded stream for frames of ``width`` x ``height`` made from
    ``source``: the frames' own size with the pixel aspect that keeps the source's display aspect (its SAR itself
    after a uniform upscale: 2880x1920 at 8:9 from 720x480 at 8:9), or with ``square_pixels`` the size resampled
    to square pixels at the same height (2560x1920 at 1:1) (:func:`stages.media.aspect.square_pixel_size`). A source
    with square pixels gives its frames as they are, at 1:1."""
    if source.sample_aspect == 1:
        return width, height, Fraction(1)
    sample_aspect = (source.display_aspect * Fraction(height, width)).limit_denominator(65535)
    if not square_pixels or sample_aspect == 1:
        return width, height, sample_aspect
    out_w, out_h = square_pixel_size(width, height, sample_aspect)
    return out_w, out_h, Fraction(1)


def check_frame_size(codec: str, width: int, height: int, bit_depth: int = 8) -> None:
    """Raise SettingsError for a frame size the encoder of ``codec`` cannot take.

    libx265 fails, and for some sizes crashes the whole process, on frames narrower than 16 or lower than 32
    pixels; at 10/12 bits it also aborts the process on frames narrower than 64 (seen at widths 40 and 48 with
    the bundled build). Those sizes are refused before it is called.
    """
    if codec != "h265":
        return
    min_width = H265_MIN_WIDTH_HIGH_DEPTH if bit_depth > 8 else H265_MIN_WIDTH
    if width < min_width or height < H265_MIN_HEIGHT:
        raise SettingsError(
            f"encode: libx265 cannot encode {width}x{height} frames at {bit_depth} bits (it needs at least "
            f"{min_width}x{H265_MIN_HEIGHT}); use codec h264 for such small videos"
        )


def _chunk_frames(chunks: Sequence[EncodeInput]) -> Iterator[tuple[np.ndarray, int]]:
    for number, chunk in enumerate(chunks):
        count = 0
        for frame in read_frames(chunk.path):
            if count >= len(chunk.pts):
                raise ChunkError(
                    f"encode: chunk {number} ({chunk.path}) has more frames than its {len(chunk.pts)} pts; "
                    "its manifest is stale, redo the chunk"
                )
            yield frame, chunk.pts[count]
            count += 1
        if count != len(chunk.pts):
            raise ChunkError(
                f"encode: chunk {number} ({chunk.path}) has {count} frames but {len(chunk.pts)} pts; "
                "its manifest is stale, redo the chunk"
            )


def _encode_stream(
    chunks: Sequence[EncodeInput],
    source: VideoInfo,
    path: Path,
    settings: EncodeSettings,
    conversion: ColorConversion,
    total: int,
    progress: ProgressCallback | None,
) -> None:
    """Encode every chunk frame with its exact pts into the MP4 at ``path`` (video only)."""
    frames = _chunk_frames(chunks)
    first = next(frames, None)
    if first is None:
        raise ChunkError(f"encode: the first chunk ({chunks[0].path}) holds no frame; redo it")
    height, width = first[0].shape[:2]
    out_w, out_h, sample_aspect = output_geometry(source, width, height, settings.square_pixels)
    pix_fmt = output_pix_fmt(settings, source, out_w, out_h)
    check_frame_size(settings.codec, out_w, out_h, 10 if ("10le" in pix_fmt or "12le" in pix_fmt) else 8)
    flags = YUV_FLAGS if (out_w, out_h) == (width, height) else SQUARE_PIXEL_FLAGS
    time_base = source.time_base
    durations = _frame_durations(chunks, source)
    try:
        container = av.open(str(path), mode="w", format="mov" if path.suffix == ".mov" else "mp4")
    except (OSError, av.error.FFmpegError) as exc:
        raise EncodeError(f"encode: cannot create {path} ({exc}); check the output folder") from exc
    done = 0
    try:
        with container:
            encoder, options = encoder_options(settings.codec, settings.crf, settings.preset)
            stream = container.add_stream(encoder, rate=_rate(source))
            stream.width, stream.height, stream.pix_fmt = out_w, out_h, pix_fmt
            if sample_aspect != 1:
                stream.codec_context.sample_aspect_ratio = sample_aspect  # bitstream VUI and container (pasp)
            stream.time_base = time_base
            ctx = stream.codec_context
            ctx.time_base = time_base
            ctx.thread_count = 0
            ctx.options = options
            ctx.color_primaries = _PRIMARIES_IDS.get(conversion.primaries, 2)
            ctx.color_trc = _TRANSFER_IDS.get(conversion.transfer, 2)
            rgb_out = is_rgb(pix_fmt)  # FFV1 keeps the RGB planes: no matrix, full range
            ctx.colorspace = _MATRIX_IDS["gbr" if rgb_out else conversion.matrix]
            ctx.color_range = _RANGE_IDS["pc" if rgb_out else conversion.range]
            tag_frames = settings.codec.startswith("prores")
            if source.rotation:
                stream.set_display_rotation(source.rotation)
            for rgb, pts in _chain(first, frames):
                if rgb.shape[:2] != (height, width):
                    raise ChunkError(
                        f"encode: a frame of {rgb.shape[1]}x{rgb.shape[0]} follows frames of {width}x{height}; "
                        "every chunk must have the same size, redo the chunks with the same settings"
                    )
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
                frame = frame.reformat(
                    format=pix_fmt,
                    dst_colorspace=conversion.sws_colorspace,
                    dst_color_range=conversion.sws_range,
                    width=out_w,
                    height=out_h,
                    interpolation=flags,
                )
                if tag_frames:  # ProRes writes the frame's colour tags into its frame header (and the MOV's colr)
                    for name in ("color_primaries", "color_trc", "colorspace", "color_range"):
                        setattr(frame, name, getattr(ctx, name))
                frame.pts = pts
                frame.time_base = time_base
                container.mux(_with_durations(stream.encode(frame), durations))
                done += 1
                if progress is not None:
                    progress(done, total)
            container.mux(_with_durations(stream.encode(None), durations))
    except av.error.FFmpegError as exc:
        raise EncodeError(
            f"encode: {settings.codec} encoding failed after {done} of {total} frames ({exc}); "
            "check the settings (pixel format, size) and free disk space"
        ) from exc


def _frame_durations(chunks: Sequence[EncodeInput], source: VideoInfo) -> dict[int, int]:
    """Duration (ticks) of each frame by pts: up to the next frame; the last one lasts to ``source.end_pts``
    when it lies before it, else the median interval."""
    pts = np.concatenate([np.asarray(chunk.pts, dtype=np.int64) for chunk in chunks])
    deltas = np.diff(pts)
    last = source.end_pts - int(pts[-1])
    if last <= 0:
        last = int(np.median(deltas)) if len(deltas) else max(1, round(1 / (source.time_base * _rate(source))))
    return dict(zip(pts.tolist(), [*deltas.tolist(), last], strict=True))


def _with_durations(packets: list[av.Packet], durations: dict[int, int]) -> list[av.Packet]:
    """Give each packet the duration of its frame, so the last frame keeps its length in the container."""
    for packet in packets:
        if packet.pts is not None and packet.pts in durations:
            packet.duration = durations[packet.pts]
    return packets


def _chain(first: tuple[np.ndarray, int], rest: Iterator[tuple[np.ndarray, int]]) -> Iterator[tuple[np.ndarray, int]]:
    yield first
    yield from rest


def _rate(source: VideoInfo) -> Fraction:
    fps = source.avg_fps or source.real_fps or 25.0
    return Fraction(fps).limit_denominator(1001)


def _mux(
    video: Path, source: VideoInfo, out: Path, fmt: str, settings: EncodeSettings, exe: str
) -> tuple[int, int]:
    """Mux the encoded video with the source's audio/subtitles into ``out``; return (audio, subtitle) counts."""
    args = ["-copyts", "-i", str(video), "-i", source.path]
    args += ["-map", "0:v:0"]
    codec_args: list[str] = ["-c:v", "copy"]
    # Naming one stream's metadata source turns off ffmpeg's automatic per-stream copy, so name them all.
    metadata_args = ["-map_metadata:s:v:0", f"1:s:{source.stream_index}"]
    if settings.codec == "h265" and fmt in ("mp4", "mov"):
        codec_args += ["-tag:v", "hvc1"]
    allowed = _AUDIO_COPY[fmt]
    kept_audio = 0
    for stream in source.audio_streams:
        args += ["-map", f"1:{stream.index}"]
        metadata_args += [f"-map_metadata:s:a:{kept_audio}", f"1:s:{stream.index}"]
        if allowed is None or stream.codec in allowed:
            codec_args += [f"-c:a:{kept_audio}", "copy"]
        else:
            bitrate = 64000 * max(2, stream.channels or 2)
            logger.info("encode: audio stream #%d (%s) cannot go into %s as is; transcoding to AAC",
                        stream.index, stream.codec, fmt)
            codec_args += [f"-c:a:{kept_audio}", "aac", f"-b:a:{kept_audio}", str(bitrate)]
        kept_audio += 1
    kept_subtitles = 0
    for stream in source.subtitle_streams:
        action = _subtitle_action(stream.codec, fmt)
        if action is None:
            logger.warning("encode: dropping subtitle stream #%d (%s): %s cannot hold it; use .mkv to keep it",
                           stream.index, stream.codec, fmt)
            continue
        args += ["-map", f"1:{stream.index}"]
        metadata_args += [f"-map_metadata:s:s:{kept_subtitles}", f"1:s:{stream.index}"]
        codec_args += [f"-c:s:{kept_subtitles}", action]
        kept_subtitles += 1
    args += codec_args
    args += ["-map_metadata", "1", "-map_chapters", "1", *metadata_args]
    offset = _start_offset(source)
    if offset:
        args += ["-output_ts_offset", f"{-offset:.6f}"]
    if fmt in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    args += ["-f", fmt, str(out)]
    run_ffmpeg(args, ffmpeg=exe, what="encode: mux")
    return kept_audio, kept_subtitles


def _subtitle_action(codec: str, fmt: str) -> str | None:
    """ffmpeg subtitle codec for ``codec`` in ``fmt`` ("copy", a converter, or None to drop)."""
    if fmt == "matroska":
        if codec in _BITMAP_SUBTITLES or codec in _MKV_TEXT_COPY:
            return "copy"
        return "srt" if codec in _TEXT_SUBTITLES else None
    if codec in _TEXT_SUBTITLES:
        return "copy" if codec == "mov_text" else "mov_text"
    if fmt == "mp4" and codec in _MP4_BITMAP_COPY:
        return "copy"
    return None


def _start_offset(source: VideoInfo) -> float:
    """Seconds to subtract so the output starts near 0 (``-copyts`` keeps source timestamps otherwise)."""
    try:
        with av.open(source.path) as container:
            start = container.start_time
    except (OSError, av.error.FFmpegError) as exc:
        raise EncodeError(f"encode: cannot open the source {source.path} ({exc}); it must stay in place") from exc
    return max(0.0, start / av.time_base) if start is not None else 0.0


def _verify(muxed: Path, out: Path, expected: int, audio: int, subtitles: int) -> EncodeResult:
    try:
        info = probe_video(muxed)
    except ProbeError as exc:
        raise EncodeError(f"encode: the written file cannot be read back ({exc}); report this as a bug") from exc
    if info.frame_count != expected:
        raise EncodeError(
            f"encode: the output has {info.frame_count} frames, {expected} were encoded; report this as a bug"
        )
    if len(info.audio_streams) != audio or len(info.subtitle_streams) != subtitles:
        raise EncodeError(
            f"encode: the output has {len(info.audio_streams)} audio and {len(info.subtitle_streams)} subtitle "
            f"streams, {audio} and {subtitles} were muxed; report this as a bug"
        )
    return EncodeResult(
        path=str(out),
        frame_count=info.frame_count,
        width=info.width,
        height=info.height,
        duration=info.duration,
        codec=info.codec,
        pix_fmt=info.pix_fmt,
        audio_streams=len(info.audio_streams),
        subtitle_streams=len(info.subtitle_streams),
        sample_aspect=format_ratio(info.sample_aspect),
    )
