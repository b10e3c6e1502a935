"""Probing a video file: streams, real frame timestamps, colour tags, rotation, pixel aspect, interlacing.

Frame count, frame rate and the VFR flag come from the real timestamps of the demuxed packets, never from
the nominal rate in the header. A few frames are decoded to prove the stream is decodable and to read what
only frames carry (interlacing, display-matrix rotation, colour tags missing from the header).

Every packet is demuxed once, so a file that was cut (a copy or download that stopped) is found here: a file whose
video stream is incomplete is refused, with how much is missing; a file whose video is complete but another stream
lacks a few packets (a cut at the very end, or an MP4 index that counts samples its edit list leaves out) is
accepted with a warning that says which stream lacks what (:attr:`VideoInfo.warnings`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from stages.errors import ProbeError
from stages.media.aspect import sample_aspect, square_pixel_size
from stages.media.completeness import CutPacket, Demuxed, check_complete, index_units

logger = logging.getLogger(__name__)

# FFmpeg's names (av_color_*_name) for the enum values of AVColorPrimaries, AVColorTransferCharacteristic,
# AVColorSpace and AVColorRange. "unspecified"/"reserved" values map to None.
COLOR_PRIMARIES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
    10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
COLOR_TRANSFERS = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
    10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
    16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
COLOR_MATRICES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc",
    10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp",
}
COLOR_RANGES = {1: "tv", 2: "pc"}

_DECODE_PROBE_FRAMES = 3
_DECODE_PROBE_MAX_PACKETS = 300
_ISO_BMFF_BOXES = (b"ftyp", b"mdat", b"moov", b"free", b"wide", b"skip")
# A sample aspect ratio outside this range is a broken header, not a real pixel shape (anamorphic is 0.5-2).
# Frames larger than this are never decoded by the probe: no output can hold them (the output limit is 8K,
# 7680x4320, even at scale 1), and a damaged or hostile header may declare gigapixel frames.
DECODE_PROBE_MAX_PIXELS = 7680 * 4320
# The smallest frame side the pipeline takes (its optical flow needs 12 pixels; below 16 nothing is worth it).
MIN_VIDEO_SIDE = 16


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream of the source; ``index`` is the stream index in the container."""

    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str | None
    title: str | None


@dataclass(frozen=True)
class SubtitleStreamInfo:
    """One subtitle stream of the source; ``index`` is the stream index in the container."""

    index: int
    codec: str
    language: str | None
    title: str | None


@dataclass(frozen=True)
class IgnoredStream:
    """A video stream of the source that the pipeline leaves out: another video, or cover art (an attached
    picture). ``index`` is the stream index in the container."""

    index: int
    codec: str
    width: int
    height: int
    cover_art: bool


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a source video.

    ``width``/``height`` are the decoded size before any rotation; ``rotation`` is the counter-clockwise
    angle of the display matrix (FFmpeg's ``av_display_rotation_get`` convention, the same as PyAV's
    ``VideoFrame.rotation``) normalised to 0/90/180/270 (the legacy ``rotate`` tag is ``(360 - rotation) % 360``).
    ``duration`` is the duration of the video stream in seconds, ``(end_pts - start_pts) * time_base``, where
    ``end_pts`` is the pts just after the last frame. ``avg_fps`` is the rate the container declares,
    ``real_fps`` is ``frame_count / duration`` from the real timestamps. Colour fields use FFmpeg's names
    (``"bt709"``, ``"smpte170m"``, ``"tv"``/``"pc"``...) or None when the source does not say.

    ``sample_aspect_num``/``sample_aspect_den`` is the sample (pixel) aspect ratio, SAR: the shape of one pixel,
    1:1 for square pixels; 8:9 for NTSC DV (720x480 shown as 4:3), 16:15 for PAL DV (720x576 shown as 4:3), 128:117
    for a QCIF 176x144 camera clip. The picture is shown ``width * SAR`` wide (:attr:`display_aspect`). The
    container's value wins over the bitstream's, as FFmpeg's players do; 1:1 when neither says.

    ``interlaced``: the source's frames are flagged interlaced (or its codec declares a field order).
    ``deinterlace`` is ``"off"`` for a probe; :func:`stages.media.deinterlace.decoded_view` gives the info of the
    frames as the pipeline decodes them (``"frame"``: bwdif, one frame per frame; ``"field"``: one per field,
    at twice the rate, on a time base twice as fine).

    ``warnings``: what the probe found missing in a file it still accepts (a stream with fewer packets than its
    index declares, a packet cut short at the end), one sentence each; empty for a complete file.
    """

    path: str
    size_bytes: int
    container: str
    duration: float
    stream_index: int
    codec: str
    width: int
    height: int
    frame_count: int
    avg_fps: float
    real_fps: float
    is_vfr: bool
    time_base_num: int
    time_base_den: int
    start_pts: int
    end_pts: int
    pix_fmt: str
    bit_depth: int
    color_primaries: str | None
    color_transfer: str | None
    color_matrix: str | None
    color_range: str | None
    rotation: int
    interlaced: bool
    audio_streams: tuple[AudioStreamInfo, ...] = ()
    subtitle_streams: tuple[SubtitleStreamInfo, ...] = ()
    sample_aspect_num: int = 1
    sample_aspect_den: int = 1
    deinterlace: str = "off"
    warnings: tuple[str, ...] = ()

    @property
    def time_base(self) -> Fraction:
        """Time base of the video stream's pts."""
        return Fraction(self.time_base_num, self.time_base_den)

    @property
    def sample_aspect(self) -> Fraction:
        """The sample (pixel) aspect ratio, width over height of one pixel (1 for square pixels)."""
        return Fraction(self.sample_aspect_num, self.sample_aspect_den)

    @property
    def display_aspect(self) -> Fraction:
        """The shape of the picture as shown: ``width * SAR / height`` (4/3 for 720x480 at SAR 8:9)."""
        return Fraction(self.width, self.height) * self.sample_aspect

    @property
    def square_pixel_size(self) -> tuple[int, int]:
        """``(width, height)`` of the picture resampled to square pixels at the same height (the display size):
        ``width * SAR`` rounded to an even number (640x480 for 720x480 at 8:9, 768x576 for 720x576 at 16:15,
        192x144 for 176x144 at 128:117); the size itself for square pixels."""
        return square_pixel_size(self.width, self.height, self.sample_aspect)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (streams as lists of dicts); inverse of :meth:`from_dict`."""
        data = dataclasses.asdict(self)
        data["audio_streams"] = [dict(a) for a in data["audio_streams"]]
        data["subtitle_streams"] = [dict(s) for s in data["subtitle_streams"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoInfo:
        """Rebuild a :class:`VideoInfo` from :meth:`to_dict` output (unknown keys are an error).

        Raises:
            ProbeError: keys are missing or unknown.
        """
        values = dict(data)
        try:
            values["warnings"] = tuple(str(w) for w in values.get("warnings", ()))
            values["audio_streams"] = tuple(AudioStreamInfo(**a) for a in values.get("audio_streams", ()))
            values["subtitle_streams"] = tuple(SubtitleStreamInfo(**s) for s in values.get("subtitle_streams", ()))
            return cls(**values)
        except TypeError as exc:
            raise ProbeError(f"probe: cannot rebuild VideoInfo from dict ({exc}); probe the video again") from exc


@dataclass(frozen=True)
class _Scan:
    """Result of one demux pass over the video stream."""

    pts: np.ndarray  # int64, presentation order
    last_duration: int  # duration of the last frame in stream ticks (0 if unknown)
    first_frame: av.VideoFrame | None
    interlaced: bool
    warnings: tuple[str, ...] = ()


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Probe ``path`` and return its :class:`VideoInfo`.

    Demuxes every packet of the file (no full decode) and decodes the first few video frames.

    Raises:
        ProbeError: the path is missing, a directory or empty; the file is not a media file, is a still image,
            has no video stream, uses a codec this FFmpeg build cannot decode, is truncated so that its video does
            not decode to its end (MP4 index missing, fewer video frames in the file than the index declares, a
            video packet cut short, Matroska media data that stops well before the declared duration; the message
            says how much is missing) or has no decodable frame.

    A file whose video is complete but which lacks a little of another stream is accepted: the info's
    ``warnings`` say what is missing and how much (the caller shows them: ``validate_request`` logs them as
    warnings, the enhance graph's probe asset logs them to the run, the report lists them).

    Frames whose declared size is above :data:`DECODE_PROBE_MAX_PIXELS` are not decoded (the info then comes
    from the headers only); such a video is refused later by the 8K output limit.
    """
    file_path = _check_path(path)
    with _open_container(file_path) as container:
        _refuse_still_image(container, file_path)
        stream = _video_stream(container, file_path)
        decode_frames = _DECODE_PROBE_FRAMES
        declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
        if declared > DECODE_PROBE_MAX_PIXELS:
            logger.info("probe: %s declares %dx%d frames; not decoding any (above %d pixels)", file_path.name,
                        stream.codec_context.width, stream.codec_context.height, DECODE_PROBE_MAX_PIXELS)
            decode_frames = 0
        scan = _scan_video(container, stream, file_path, decode_frames=decode_frames)
        return _build_info(container, stream, scan, file_path)


def ignored_streams(path: str | os.PathLike[str]) -> tuple[IgnoredStream, ...]:
    """The video streams of ``path`` other than the one :func:`probe_video` picks (the first video stream that
    is not an attached picture): further video streams and cover art, which the pipeline leaves out.

    Raises:
        ProbeError: as :func:`probe_video` for a file that cannot be opened or has no video stream.
    """
    file_path = _check_path(path)
    with _open_container(file_path) as container:
        chosen = _video_stream(container, file_path)
        return tuple(
            IgnoredStream(
                index=s.index,
                codec=_codec_id_name(s),
                width=int(s.codec_context.width or 0) if s.codec_context is not None else 0,
                height=int(s.codec_context.height or 0) if s.codec_context is not None else 0,
                cover_art=bool(s.disposition & av.stream.Disposition.attached_pic),
            )
            for s in container.streams.video
            if s.index != chosen.index
        )


def frame_timestamps(path: str | os.PathLike[str], info: VideoInfo) -> np.ndarray:
    """Pts of every frame of the probed video stream, in presentation order.

    Returns:
        ``int64`` array of shape ``(info.frame_count,)`` in the source time base (``info.time_base``).

    Raises:
        ProbeError: the file can no longer be read, or it changed since it was probed (frame count differs).
    """
    file_path = _check_path(path)
    with _open_container(file_path) as container:
        if info.stream_index >= len(container.streams) or container.streams[info.stream_index].type != "video":
            raise ProbeError(f"probe: {file_path.name} has no video stream #{info.stream_index}; probe it again")
        stream = container.streams[info.stream_index]
        scan = _scan_video(container, stream, file_path, decode_frames=0)
    if len(scan.pts) != info.frame_count:
        raise ProbeError(
            f"probe: {file_path.name} now has {len(scan.pts)} frames, the probe said {info.frame_count}; "
            "the file changed, probe it again"
        )
    return scan.pts


def _check_path(path: str | os.PathLike[str]) -> Path:
    file_path = Path(path)
    if not file_path.exists():
        raise ProbeError(f"probe: {file_path} does not exist; check the path")
    if file_path.is_dir():
        raise ProbeError(f"probe: {file_path} is a directory; give a video file")
    if file_path.stat().st_size == 0:
        raise ProbeError(f"probe: {file_path.name} is empty (0 bytes); the copy or download failed, get the file again")
    return file_path


def _looks_like_iso_bmff(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(12)
    return len(head) >= 8 and head[4:8] in _ISO_BMFF_BOXES


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        if _looks_like_iso_bmff(path):
            raise ProbeError(
                f"probe: {path.name} is an MP4/MOV without a readable index (moov atom missing or cut): the file is "
                "truncated or the recording was not finalised; copy it again or repair it with a tool like untrunc"
            ) from exc
        raise ProbeError(
            f"probe: {path.name} is not a media file FFmpeg can read ({exc.strerror or exc}); give a video file"
        ) from exc
    except OSError as exc:
        raise ProbeError(f"probe: cannot read {path.name} ({exc}); check the file's permissions") from exc


def _refuse_still_image(container: av.container.InputContainer, path: Path) -> None:
    """Raise ProbeError when FFmpeg reads ``path`` as a still image (its image demuxers: ``image2``,
    ``png_pipe``, ``jpeg_pipe``...), whatever the file's name says."""
    name = container.format.name
    if name in ("image2", "image2pipe") or name.endswith("_pipe"):
        kind = name.removesuffix("_pipe") if name.endswith("_pipe") else "image"
        raise ProbeError(
            f"probe: {path.name} is a still image ({kind}), not a video; use an image upscaler for photos, or make "
            f"a clip of it first, e.g. `ffmpeg -loop 1 -t 5 -i {path.name} -pix_fmt yuv420p still.mp4`"
        )


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    candidates = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not candidates:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        hint = " (audio only?)" if "audio" in kinds else ""
        raise ProbeError(
            f"probe: {path.name} has no video stream{hint}; it holds {', '.join(kinds)}; give a video file"
        )
    stream = candidates[0]
    if stream.codec_context is None:
        raise ProbeError(
            f"probe: {path.name} uses an unsupported video codec ({_codec_id_name(stream)}) that this FFmpeg build "
            "cannot decode; convert it first, e.g. `ffmpeg -i in -c:v libx264 -crf 16 out.mp4`"
        )
    return stream


def _codec_id_name(stream: av.stream.Stream) -> str:
    try:
        return stream.codec.canonical_name
    except (AttributeError, av.error.FFmpegError, ValueError):
        return "unknown codec id"


def _scan_video(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, *, decode_frames: int
) -> _Scan:
    """Demux every packet of the file; keep the video stream's pts and decode its first ``decode_frames`` frames.

    Packets of the other streams are counted too, to find truncation (cut packets, fewer packets than an MP4
    index declares, a Matroska file that ends well before its declared duration); see
    :func:`stages.media.completeness.check_complete`.
    """
    pts_list: list[int] = []
    durations: list[int] = []
    missing_pts = False
    frames: list[av.VideoFrame] = []
    fed = 0
    decode_errors = 0
    counts: dict[int, int] = {}
    ends: dict[int, float] = {}
    corrupt: list[CutPacket] = []
    demux_error: av.error.FFmpegError | None = None
    try:
        for packet in container.demux():
            if packet.stream is None or packet.size == 0:
                continue  # the demuxer's empty packets at the end of each stream are no data
            index = packet.stream.index
            counts[index] = counts.get(index, 0) + index_units(packet)
            if packet.is_corrupt:
                timed = packet.pts is not None and packet.time_base
                corrupt.append(CutPacket(index, packet.stream.type,
                                          float(packet.pts * packet.time_base) if timed else None,
                                          float(packet.duration * packet.time_base) if timed and packet.duration
                                          else None))
            if packet.pts is not None and packet.time_base:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                ends[index] = max(ends.get(index, end), end)
            if index != stream.index or packet.is_discard:
                continue
            if packet.pts is None:
                missing_pts = True
            else:
                pts_list.append(int(packet.pts))
                durations.append(int(packet.duration or 0))
            if len(frames) < decode_frames and fed < _DECODE_PROBE_MAX_PACKETS:
                fed += 1
                try:
                    frames.extend(stream.decode(packet))
                except av.error.FFmpegError:
                    decode_errors += 1
    except av.error.FFmpegError as exc:
        demux_error = exc
    warnings = check_complete(container, stream, path, Demuxed(counts, ends, corrupt, demux_error, len(pts_list)))

    if decode_frames and not frames:
        try:
            frames.extend(stream.decode(None))
        except av.error.FFmpegError:
            decode_errors += 1
    if decode_frames and not frames:
        raise ProbeError(
            f"probe: {path.name} has no decodable video frame ({len(pts_list)} packets, {decode_errors} decode "
            "errors); the video data is corrupt, re-export the file"
        )

    if missing_pts or not pts_list:
        pts = _decoded_timestamps(stream.index, path)
        last_duration = 0
    else:
        order = np.argsort(np.asarray(pts_list, dtype=np.int64), kind="stable")
        pts = np.asarray(pts_list, dtype=np.int64)[order]
        last_duration = int(np.asarray(durations, dtype=np.int64)[order][-1])
    if len(pts) == 0:
        raise ProbeError(f"probe: {path.name} has a video stream without frames; give a video with frames")
    repeated = int(np.count_nonzero(np.diff(pts) == 0))
    if repeated:
        raise ProbeError(
            f"probe: {path.name} has {repeated} frames that repeat another frame's timestamp; its timestamps are "
            f"broken, remux it first, e.g. `ffmpeg -fflags +genpts -i {path.name} -c copy fixed.mkv`"
        )
    interlaced = any(f.interlaced_frame for f in frames) or stream.codec_context.field_order > 1
    return _Scan(pts=pts, last_duration=last_duration, first_frame=frames[0] if frames else None,
                 interlaced=interlaced, warnings=tuple(warnings))


def _decoded_timestamps(stream_index: int, path: Path) -> np.ndarray:
    """Fallback when some packets carry no pts: decode every frame (from a fresh open) and read frame pts.

    Raises:
        ProbeError: decoded frames have no pts either (a raw elementary stream).
    """
    logger.info("probe: %s has packets without pts; decoding every frame to read timestamps", path.name)
    values: list[int] = []
    with _open_container(path) as container:
        stream = container.streams[stream_index]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise ProbeError(
                        f"probe: {path.name} has no frame timestamps (a raw stream?); remux it into a container "
                        f"first, e.g. `ffmpeg -r 25 -i {path.name} -c copy out.mkv` with its real frame rate"
                    )
                values.append(int(frame.pts))
        except av.error.FFmpegError as exc:
            raise ProbeError(
                f"probe: {path.name} is damaged ({exc.strerror or exc}) after {len(values)} frames; re-export it"
            ) from exc
    return np.sort(np.asarray(values, dtype=np.int64))


def _frame_duration_ticks(pts: np.ndarray, last_duration: int, stream: av.video.stream.VideoStream) -> int:
    if last_duration > 0:
        return last_duration
    if len(pts) > 1:
        return int(np.median(np.diff(pts)))
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.time_base:
        return max(1, round(1 / (Fraction(rate) * stream.time_base)))
    return 1


def detect_vfr(pts: np.ndarray) -> bool:
    """True when the frame intervals of ``pts`` (sorted ticks) vary beyond timestamp rounding.

    An interval may differ from the median interval by one tick or 2 %, whichever is larger.
    """
    if len(pts) < 3:
        return False
    deltas = np.diff(pts)
    median = float(np.median(deltas))
    tolerance = max(1.0, 0.02 * median)
    return bool(np.max(np.abs(deltas - median)) > tolerance)


def _language(stream: av.stream.Stream) -> str | None:
    value = stream.metadata.get("language") or None
    return None if value in (None, "und") else value


def _bit_depth(pix_fmt: str) -> int:
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, IndexError, av.error.FFmpegError):
        return 8


def _color_name(table: dict[int, str], *values: int | None) -> str | None:
    for value in values:
        if value is not None and value in table:
            return table[value]
    return None


def _build_info(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, scan: _Scan, path: Path
) -> VideoInfo:
    ctx = stream.codec_context
    frame = scan.first_frame
    time_base = stream.time_base or Fraction(1, 90000)
    pts = scan.pts
    start_pts = int(pts[0])
    end_pts = int(pts[-1]) + _frame_duration_ticks(pts, scan.last_duration, stream)
    duration = float((end_pts - start_pts) * time_base)
    frame_count = len(pts)
    real_fps = frame_count / duration if duration > 0 else 0.0
    avg_rate = stream.average_rate
    avg_fps = float(avg_rate) if avg_rate else real_fps

    pix_fmt = ctx.pix_fmt or (frame.format.name if frame is not None else None)
    if pix_fmt is None:
        raise ProbeError(f"probe: {path.name} has a video stream without a pixel format; re-export the file")
    width = ctx.width or (frame.width if frame is not None else 0)
    height = ctx.height or (frame.height if frame is not None else 0)
    if width <= 0 or height <= 0:
        raise ProbeError(f"probe: {path.name} declares an invalid frame size {width}x{height}; re-export the file")

    rotation = 0
    if frame is not None:
        rotation = int(round(frame.rotation)) % 360
        rotation = (round(rotation / 90) * 90) % 360
    f_prim = frame.color_primaries if frame is not None else None
    f_trc = frame.color_trc if frame is not None else None
    f_mat = frame.colorspace if frame is not None else None
    f_rng = frame.color_range if frame is not None else None
    color_range = _color_name(COLOR_RANGES, ctx.color_range, f_rng)
    if color_range is None and pix_fmt.startswith("yuvj"):
        color_range = "pc"

    audio = tuple(
        AudioStreamInfo(
            index=s.index,
            codec=_codec_id_name(s),
            channels=int(s.codec_context.channels) if s.codec_context is not None else 0,
            sample_rate=int(s.codec_context.sample_rate or 0) if s.codec_context is not None else 0,
            language=_language(s),
            title=s.metadata.get("title") or None,
        )
        for s in container.streams.audio
    )
    subtitles = tuple(
        SubtitleStreamInfo(
            index=s.index,
            codec=_codec_id_name(s),
            language=_language(s),
            title=s.metadata.get("title") or None,
        )
        for s in container.streams.subtitles
    )
    sar = sample_aspect(stream, path)
    info = VideoInfo(
        path=str(path),
        size_bytes=path.stat().st_size,
        container=container.format.name,
        duration=duration,
        stream_index=stream.index,
        codec=_codec_id_name(stream),
        width=int(width),
        height=int(height),
        frame_count=frame_count,
        avg_fps=avg_fps,
        real_fps=real_fps,
        is_vfr=detect_vfr(pts),
        time_base_num=time_base.numerator,
        time_base_den=time_base.denominator,
        start_pts=start_pts,
        end_pts=end_pts,
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(pix_fmt),
        color_primaries=_color_name(COLOR_PRIMARIES, ctx.color_primaries, f_prim),
        color_transfer=_color_name(COLOR_TRANSFERS, ctx.color_trc, f_trc),
        color_matrix=_color_name(COLOR_MATRICES, ctx.colorspace, f_mat),
        color_range=color_range,
        rotation=rotation,
        interlaced=scan.interlaced,
        audio_streams=audio,
        subtitle_streams=subtitles,
        sample_aspect_num=sar.numerator,
        sample_aspect_den=sar.denominator,
        warnings=scan.warnings,
    )
    logger.debug("probe: %s -> %s", path.name, info)
    return info
