"""Encoding a deliverable: the finished master (lossless chunks) -> one distribution or archive file.

The master, the deliverable kinds, codecs and specs are in :mod:`stages.production.deliverables`; the thumbnail and
the contact sheet are in :mod:`stages.production.stills`.

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
else ``libaom-av1``, else ``librav1e`` (the fastest first, stages.media.codecs.AV1_ENCODERS; libaom takes the same
CRF number, rav1e a quantizer scaled from it: not the same quality per CRF); the result's ``encoder`` and ``notes``
say which. None available -> EncodeError.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from stages.errors import ChunkError, EncodeError, InputError, ProbeError, SettingsError
from stages.media.codecs import AV1_ENCODERS, av1_options
from stages.media.encode import YUV_FLAGS, ProgressCallback, check_frame_size
from stages.media.ffmpeg import find_ffmpeg, run_ffmpeg
from stages.media.probe import (
    COLOR_MATRICES,
    COLOR_PRIMARIES,
    COLOR_RANGES,
    COLOR_TRANSFERS,
    probe_video,
)
from stages.production.deliverables import (
    AUDIO_CHANNELS,
    AUDIO_SAMPLE_RATE,
    VIDEO_CODECS,
    DeliverableResult,
    DeliverableSpec,
    VideoCodec,
    _check_fps,
    _check_master,
    _frames,
    _Master,
    default_filename,
)
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import fsync_dir

logger = logging.getLogger(__name__)

_AV1_FFMPEG_ENCODERS = AV1_ENCODERS  # fastest first: libsvtav1, libaom-av1, librav1e


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
    raise EncodeError("deliver: no AV1 encoder: PyAV has no libsvtav1 and ffmpeg has none of "
                      f"{', '.join(_AV1_FFMPEG_ENCODERS)}; install a PyAV or ffmpeg build with one, or deliver mp4 "
                      "with codec h265")


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
    options = av1_options(encoder, int(spec.effective_crf or 0), str(spec.effective_preset))
    args = ["-c:v", encoder]
    for name, value in options.items():
        args += [f"-{name}:v" if name == "b" else f"-{name}", value]
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
