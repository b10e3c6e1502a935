"""Checks before any work: the input, every setting, the output path and the disk space of an enhance request."""

from __future__ import annotations

import logging
from pathlib import Path

from orchestration.graphs.retries import max_runtime_seconds
from orchestration.launch.diskcheck import check_request_space
from orchestration.launch.request import OUTPUT_SUFFIXES, EnhanceRequest
from stages.device import validate_device_settings
from stages.errors import InputError, SettingsError
from stages.media.codecs import check_container, encoder_options, output_pix_fmt_for
from stages.media.deinterlace import decoded_view, describe_deinterlace
from stages.media.encode import output_geometry
from stages.media.probe import MIN_VIDEO_SIDE, VideoInfo, ignored_streams, probe_video
from stages.ops.interpolate.timing import rational_fps
from stages.ops.upscale.engine import MAX_OUTPUT_LONG_SIDE, MAX_OUTPUT_SHORT_SIDE, output_size

log = logging.getLogger(__name__)


def validate_request(request: EnhanceRequest) -> VideoInfo:
    """Check the input and every setting before any work; returns the probe.

    Once everything passed, logs a warning for what the run will do to the input unasked: leave out other video
    streams (cover art only at info level), deinterlace an interlaced source (or not, as ``--deinterlace`` says),
    use a file the probe found incomplete but whose video decodes to its end (``info.warnings``: what is missing).

    Raises:
        InputError / ProbeError: the input cannot be used (also: smaller than MIN_VIDEO_SIDE either way).
        SettingsError: a setting is impossible.
    """
    info = probe_video(request.input)
    name = Path(request.input).name
    if min(info.width, info.height) < MIN_VIDEO_SIDE:
        raise InputError(
            f"input: {name} is {info.width}x{info.height}, too small to enhance; give a video of at least "
            f"{MIN_VIDEO_SIDE}x{MIN_VIDEO_SIDE} pixels"
        )
    settings = request.upscale.to_settings()
    settings.validate()
    out_w, out_h = output_size(info.width, info.height, settings.scale)
    encode = request.encode.to_settings()
    encode.validate()
    if encode.square_pixels and info.sample_aspect != 1:
        sq_w, sq_h, _ = output_geometry(info, out_w, out_h, square_pixels=True)
        if max(sq_w, sq_h) > MAX_OUTPUT_LONG_SIDE or min(sq_w, sq_h) > MAX_OUTPUT_SHORT_SIDE:
            raise SettingsError(
                f"output: with --square-pixels the {out_w}x{out_h} frames become {sq_w}x{sq_h}, above the 8K limit "
                f"({MAX_OUTPUT_LONG_SIDE}x{MAX_OUTPUT_SHORT_SIDE}); choose a smaller --scale, or drop "
                "--square-pixels to keep the pixel aspect")
    encoder_options(encode.codec, encode.crf, encode.preset)  # AV1: SettingsError when this build has no encoder
    if encode.codec not in ("h264", "h265"):  # ProRes/AV1/FFV1: an odd size their pixel format cannot hold
        output_pix_fmt_for(encode.codec, encode.pix_fmt, info.bit_depth > 8, out_w, out_h)
    request.temporal.to_settings().validate()
    view = decoded_view(info, request.chunk.deinterlace)  # SettingsError for an unknown mode
    request.interpolate.to_settings().validate(rational_fps(view.avg_fps))
    if request.metrics.reference_path:
        probe_video(request.metrics.reference_path)  # a missing or unreadable reference fails here, before any work
    if request.chunk.chunk_seconds <= 0:
        raise SettingsError(f"chunks: --chunk-seconds {request.chunk.chunk_seconds} must be above 0; use 10")
    validate_device_settings(request.device, request.precision)
    max_runtime_seconds(request.max_runtime_hours)
    if request.output is not None:
        out = request.output.expanduser()
        if out.suffix.lower() not in OUTPUT_SUFFIXES:
            raise SettingsError(f"output: {out.name} must end in {', '.join(OUTPUT_SUFFIXES)}; e.g. {out.stem}.mp4")
        check_container(request.encode.codec, out.suffix)  # e.g. ProRes in .mp4: name it .mov
        if out.exists() and out.resolve() == request.input.expanduser().resolve():
            raise SettingsError("output: the output path is the input file; choose another name")
        if out.is_dir():
            raise SettingsError(f"output: {out} is a folder; give a file name such as {out / 'result.mp4'}")
    check_request_space(request, info)  # DiskSpaceError with the numbers when the job does not fit
    for warning in info.warnings:  # accepted with something missing, e.g. the last audio packets of a cut copy
        log.warning("%s", warning)
    for other in ignored_streams(request.input):
        what = f"#{other.index} ({other.codec} {other.width}x{other.height})"
        if other.cover_art:
            log.info("input: %s: cover art %s is left out; the video stream #%d is enhanced", name, what,
                     info.stream_index)
        else:
            log.warning("input: %s has another video stream %s; only video stream #%d (%dx%d) is enhanced, extract "
                        "the other with `ffmpeg -i %s -map 0:%d -c copy other.mkv` to enhance it too", name, what,
                        info.stream_index, info.width, info.height, name, other.index)
    if info.interlaced or view.deinterlace != "off":
        log.warning("input: %s is %s: %s", name,
                    "interlaced" if info.interlaced else "not flagged interlaced", describe_deinterlace(view))
    return info
