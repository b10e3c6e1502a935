"""Small, real-looking sample clips for tests and the demo.

A photo from ``skimage.data`` is filmed by a synthetic camera (smooth sub-pixel pan and a slight zoom), so
upscalers, flicker metrics and scene detection see real content. Options cover the cases the pipeline must
handle: odd sizes, 10-bit, VFR, a scene cut, rotation metadata, audio and subtitles.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from stages.errors import SettingsError
from stages.media.encode import check_frame_size
from stages.media.ffmpeg import run_ffmpeg

logger = logging.getLogger(__name__)

_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_ENCODERS = {"h264": "libx264", "h265": "libx265"}
_SECOND_IMAGE = {"coffee": "chelsea"}
_VFR_PATTERN = (1.0, 1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.5, 0.5, 1.0)
_AUDIO_RATE = 48000
_AUDIO_FRAME = 1024
_VFR_TIME_BASE = Fraction(1, 90000)


def make_sample_clip(
    path: str | os.PathLike[str],
    *,
    width: int = 320,
    height: int = 180,
    seconds: float = 2.0,
    fps: float | Fraction = 24,
    audio: bool = True,
    subtitles: bool = False,
    bit_depth: int = 8,
    vfr: bool = False,
    scene_cut_at: float | None = None,
    rotation: int = 0,
    codec: str = "h264",
    image: str = "astronaut",
    color_tags: bool = True,
) -> Path:
    """Write a short clip of a photo filmed with a moving camera and return its path.

    The container follows the suffix (``.mp4``, ``.mov``, ``.mkv``). Video is H.264 (libx264) or H.265
    (libx265), ``yuv420p`` (``yuv420p10le`` for ``bit_depth=10``); odd sizes, which 4:2:0 cannot hold, use
    ``yuv444p``/``yuv444p10le``. ``color_tags`` tags BT.709 primaries/transfer/matrix and limited range;
    without it the clip is untagged and converted with the untagged default (BT.709 from 720 lines, else
    BT.601). ``vfr`` gives irregular frame intervals (1/90000 time base); ``scene_cut_at`` (seconds) switches
    to a second photo; ``rotation`` (0/90/180/270, counter-clockwise) is stored as a display matrix; audio is
    a 440 Hz tone with a little noise (AAC, 48 kHz stereo); subtitles are two SRT cues (``mov_text`` in
    MP4/MOV, ``subrip`` in MKV). ``image`` is a ``skimage.data`` photo, or ``"cartoon"`` for a generated
    drawing (:func:`cartoon_image`: animation-like content). Writes to a temporary file next to ``path`` and
    renames it at the end.

    Raises:
        SettingsError: an option is out of range (unknown suffix, codec or image, size below 2x2 or, for
            H.265, below 16x32; seconds or fps not positive, bit depth other than 8/10, rotation not a
            multiple of 90).
        EncodeError: muxing the subtitles with ffmpeg failed.
    """
    out = Path(path)
    fmt = _CONTAINERS.get(out.suffix.lower())
    if fmt is None:
        raise SettingsError(f"samples: unknown suffix {out.suffix!r} for {out.name}; use .mp4, .mov or .mkv")
    if codec not in _ENCODERS:
        raise SettingsError(f"samples: unknown codec {codec!r}; use 'h264' or 'h265'")
    if width < 2 or height < 2:
        raise SettingsError(f"samples: size {width}x{height} is too small; use at least 2x2")
    if codec == "h265":
        check_frame_size(codec, width, height, bit_depth)
    if not (math.isfinite(seconds) and seconds > 0):
        raise SettingsError(f"samples: seconds must be a positive number, got {seconds}")
    if bit_depth not in (8, 10):
        raise SettingsError(f"samples: bit_depth {bit_depth} is not supported; use 8 or 10")
    if rotation % 90 != 0:
        raise SettingsError(f"samples: rotation {rotation} is not a multiple of 90; use 0, 90, 180 or 270")
    rate = _as_rate(fps)
    photo = _load_photo(image)
    second = _load_photo(_SECOND_IMAGE.get(image, "coffee")) if scene_cut_at is not None else None

    times = _frame_times(seconds, rate, vfr)
    if vfr:
        time_base = _VFR_TIME_BASE
        pts = [round(t / time_base) for t in times]
    else:
        time_base = 1 / rate
        pts = list(range(len(times)))
    odd = width % 2 or height % 2
    pix_fmt = ("yuv444p" if odd else "yuv420p") + ("10le" if bit_depth == 10 else "")
    matrix = "bt709" if color_tags or height >= 720 else "smpte170m"

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f"{out.suffix}.part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(tmp), mode="w", format=fmt, options=options) as container:
            container.metadata["title"] = f"Video Upscaler Pro sample ({image})"
            stream = _add_video_stream(container, codec, width, height, rate, time_base, pix_fmt, color_tags)
            if rotation % 360:
                stream.set_display_rotation(rotation % 360)
            audio_stream = None
            if audio:
                audio_stream = container.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
                audio_stream.bit_rate = 96000
                audio_stream.metadata["language"] = "eng"
            frames = _camera_frames(photo, second, times, scene_cut_at, width, height, bit_depth)
            for frame_rgb, frame_pts in zip(frames, pts, strict=True):
                frame = _to_video_frame(frame_rgb, pix_fmt, matrix)
                frame.pts = frame_pts
                frame.time_base = time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if audio_stream is not None:
                end = float(times[-1] + _last_interval(times, rate))
                _write_audio(container, audio_stream, end)
        if subtitles:
            _mux_subtitles(tmp, out, fmt, float(times[-1] + _last_interval(times, rate)))
        else:
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("samples: wrote %s (%dx%d, %d frames, %s)", out, width, height, len(times), pix_fmt)
    return out


def _as_rate(fps: float | Fraction) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, int | float | Fraction) or not fps > 0:
        raise SettingsError(f"samples: fps must be a positive number, got {fps!r}")
    if isinstance(fps, Fraction):
        return fps
    if isinstance(fps, float) and not fps.is_integer():
        ntsc = fps * 1001 / 1000
        if abs(ntsc - round(ntsc)) < 1e-3:
            return Fraction(round(ntsc) * 1000, 1001)
        return Fraction(fps).limit_denominator(1001)
    return Fraction(int(fps))


def _frame_times(seconds: float, rate: Fraction, vfr: bool) -> list[Fraction]:
    """Presentation times (seconds, exact fractions) of every frame; at least one frame."""
    interval = 1 / rate
    if not vfr:
        count = max(1, round(seconds * rate))
        return [i * interval for i in range(count)]
    times: list[Fraction] = []
    t = Fraction(0)
    index = 0
    while t < seconds or not times:
        times.append(t)
        t += interval * Fraction(_VFR_PATTERN[index % len(_VFR_PATTERN)])
        index += 1
    return times


def _last_interval(times: list[Fraction], rate: Fraction) -> Fraction:
    return times[-1] - times[-2] if len(times) > 1 else 1 / rate


CARTOON = "cartoon"
"""The image name of a generated drawing (flat fills, cel shading, black outlines) instead of a photo."""


def cartoon_image(width: int = 1024, height: int = 768, seed: int = 0) -> np.ndarray:
    """A drawing like a cel-animation background (uint8 RGB): flat colour shapes, each with a darker cel-shade
    and a black outline, over a flat sky and ground. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[: height * 3 // 5] = (120, 180, 235)
    image[height * 3 // 5:] = (110, 170, 90)
    line = max(2, round(min(width, height) / 200))
    for _ in range(14):
        colour = tuple(int(c) for c in rng.integers(30, 240, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 30, width // 5)), int(rng.integers(height // 30, height // 5)))
        angle = float(rng.integers(0, 180))
        cv2.ellipse(image, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
        shade = tuple(int(c * 0.7) for c in colour)
        cv2.ellipse(image, (centre[0] + axes[0] // 4, centre[1] + axes[1] // 4), (axes[0] // 2, axes[1] // 2),
                    angle, 0, 360, shade, -1, cv2.LINE_AA)
        cv2.ellipse(image, centre, axes, angle, 0, 360, (15, 15, 20), line, cv2.LINE_AA)
    return image


@functools.lru_cache(maxsize=8)
def _load_photo(name: str) -> np.ndarray:
    """RGB float32 photo in [0, 1], shape (H, W, 3), read-only (``cartoon``: :func:`cartoon_image`)."""
    import skimage.data

    if name == CARTOON:
        drawing = cartoon_image().astype(np.float32) / 255.0
        drawing.setflags(write=False)
        return drawing

    loader = getattr(skimage.data, name, None)
    if loader is None or name.startswith("_") or not callable(loader):
        raise SettingsError(f"samples: unknown image {name!r}; use a skimage.data photo such as 'astronaut'")
    try:
        array = np.asarray(loader())
    except Exception as exc:
        raise SettingsError(f"samples: image {name!r} is not available offline ({exc}); use 'astronaut'") from exc
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] < 3:
        raise SettingsError(f"samples: image {name!r} is not a photo (shape {array.shape}); use 'astronaut'")
    array = array[..., :3]
    if array.dtype == bool:
        photo = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        photo = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    else:
        photo = np.clip(array.astype(np.float32), 0.0, 1.0)
    photo.setflags(write=False)
    return photo


def _camera_frames(
    photo: np.ndarray,
    second: np.ndarray | None,
    times: list[Fraction],
    scene_cut_at: float | None,
    width: int,
    height: int,
    bit_depth: int,
) -> Iterator[np.ndarray]:
    """Yield RGB frames (uint8, or uint16 for 10-bit) of a camera panning and zooming over the photo.

    The camera eases (cosine) across the clip: a horizontal pan of 12 % of the photo, a slight tilt and a 6 %
    zoom-in, so every frame moves by a sub-pixel amount. From ``scene_cut_at`` on it films ``second``.
    """
    total = float(times[-1]) if len(times) > 1 else 1.0
    first_view = _fit(photo, width, height)
    second_view = _fit(second, width, height) if second is not None else None
    for t in times:
        cut = second_view is not None and scene_cut_at is not None and t >= scene_cut_at
        view = second_view if cut else first_view
        progress = 0.5 - 0.5 * math.cos(math.pi * float(t) / total)
        zoom = 1.0 + 0.06 * progress
        view_h, view_w = view.shape[:2]
        cx = view_w * (0.44 + 0.12 * progress)
        cy = view_h * (0.42 - 0.05 * progress)
        matrix = np.array(
            [[zoom, 0.0, width / 2.0 - zoom * cx], [0.0, zoom, height / 2.0 - zoom * cy]], dtype=np.float64
        )
        frame = cv2.warpAffine(view, matrix, (width, height), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT_101)
        frame = np.clip(frame, 0.0, 1.0)
        if bit_depth > 8:
            yield np.rint(frame * 65535.0).astype(np.uint16)
        else:
            yield np.rint(frame * 255.0).astype(np.uint8)


def _fit(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """The photo resized so that a ``width`` x ``height`` frame covers about 80 % of it at zoom 1."""
    ph, pw = photo.shape[:2]
    cover = max(width / (0.8 * pw), height / (0.8 * ph))
    size = (max(2, round(pw * cover)), max(2, round(ph * cover)))
    interpolation = cv2.INTER_AREA if cover < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(photo), size, interpolation=interpolation)


def _add_video_stream(
    container: av.container.OutputContainer,
    codec: str,
    width: int,
    height: int,
    rate: Fraction,
    time_base: Fraction,
    pix_fmt: str,
    color_tags: bool,
) -> av.video.stream.VideoStream:
    stream = container.add_stream(_ENCODERS[codec], rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    ctx = stream.codec_context
    ctx.time_base = time_base
    ctx.gop_size = max(1, round(rate))
    if codec == "h264":
        ctx.options = {"preset": "veryfast", "crf": "20"}
    else:
        ctx.options = {"preset": "ultrafast", "crf": "24", "x265-params": "log-level=error"}
    if color_tags:
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 1, 1, 1, 1
    return stream


def _to_video_frame(rgb: np.ndarray, pix_fmt: str, matrix: str) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    space = Colorspace.ITU709 if matrix == "bt709" else Colorspace.ITU601
    return frame.reformat(
        format=pix_fmt,
        dst_colorspace=space,
        dst_color_range=ColorRange.MPEG,
        interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND,
    )


def _write_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, end: float) -> None:
    rng = np.random.default_rng(1234)
    total = max(_AUDIO_FRAME, round(end * _AUDIO_RATE))
    for start in range(0, total, _AUDIO_FRAME):
        count = min(_AUDIO_FRAME, total - start)
        t = (np.arange(count) + start) / _AUDIO_RATE
        tone = 0.2 * np.sin(2 * np.pi * 440.0 * t)
        samples = np.stack([tone + 0.01 * rng.standard_normal(count), tone + 0.01 * rng.standard_normal(count)])
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="fltp", layout="stereo")
        frame.sample_rate = _AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, _AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def _mux_subtitles(media: Path, out: Path, fmt: str, end: float) -> None:
    """Add two SRT cues to ``media`` with ffmpeg and write the result to ``out`` (atomically)."""
    cues = [(0.0, end * 0.45, "Video Upscaler Pro sample"), (end * 0.5, end * 0.95, "Second cue: the camera pans")]
    srt = "".join(f"{i}\n{_srt_time(a)} --> {_srt_time(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f"{out.suffix}.part", dir=out.parent)
    os.close(fd)
    srt_path = media.with_name(media.name + ".srt")
    tmp = Path(tmp_name)
    try:
        srt_path.write_text(srt, encoding="utf-8")
        sub_codec = "srt" if fmt == "matroska" else "mov_text"
        extra = ["-movflags", "+faststart"] if fmt in ("mp4", "mov") else []
        run_ffmpeg(
            ["-i", str(media), "-i", str(srt_path), "-map", "0", "-map", "1", "-c", "copy", "-c:s", sub_codec,
             "-metadata:s:s:0", "language=eng", *extra, "-f", fmt, str(tmp)],
            what="samples: subtitles",
        )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        srt_path.unlink(missing_ok=True)


def make_sample_sequence(
    folder: str | os.PathLike[str],
    pattern: str = "shot_####.png",
    *,
    count: int = 12,
    width: int = 64,
    height: int = 48,
    bit_depth: int | None = None,
    missing: tuple[int, ...] | list[int] | set[int] | frozenset[int] | range = (),
    start_number: int = 1,
    alpha: bool = False,
    linear: bool = False,
    offset: int = 0,
) -> list[Path]:
    """Write a numbered image sequence into ``folder`` and return the paths written, in frame order.

    Frames ``start_number .. start_number + count - 1`` are named by ``pattern`` (a file name, no folder part:
    ``shot_####.png`` -> ``shot_0001.png``, ``shot_%d.dpx`` -> ``shot_1.dpx``; a ``*`` becomes the number zero
    padded to 4 digits: ``graded_scene_001_*.exr`` -> ``graded_scene_001_0001.exr``); numbers in ``missing`` are
    not written. The format follows the extension (``stages.production.images.write_image``, PyAV encoders):
    ``bit_depth`` 8 (default) or 16 for PNG/TIFF, 8 for JPEG, 8 (default), 10, 12 or 16 for DPX; EXR is always
    32-bit float.

    Content of frame ``n``, as display values in [0, 1] with ``x = col / (width - 1)``, ``y = row / (height - 1)``:
    a gradient ``R = 0.15 + 0.7 x``, ``G = 0.15 + 0.7 y``, ``B = 0.6 - 0.4 x y``, and a square of side
    ``s = max(2, min(width, height) // 6)`` at value 0.95 in all channels whose top-left corner is at column
    ``(3 n + 5 offset) % (width - s + 1)``, row ``(2 n + 3 offset) % (height - s + 1)``. With ``alpha`` an alpha
    plane ``A = 0.25 + 0.75 x`` is added (not for JPEG or 10/12-bit DPX). Integer formats store
    ``round(v * (2**bits - 1))``. EXR stores the display values as they are, or with ``linear=True`` their
    scene-linear equivalent (``stages.production.images.display_to_linear``), so that reading them back with the EXR display
    transform gives the display values again. Every file is written atomically.

    Raises:
        SettingsError: a bad pattern, count, size, number, or a depth / alpha / ``linear`` the format cannot take.
    """
    from stages.production.images import display_to_linear, write_image
    from stages.production.sequence import frame_file_name

    if os.path.dirname(pattern):
        raise SettingsError(f"samples: pattern {pattern!r} has a folder part; give a file name and pass the folder")
    if count < 1 or width < 2 or height < 2 or start_number < 0:
        raise SettingsError(
            f"samples: count {count}, size {width}x{height}, start {start_number}: use count >= 1, a size of at "
            "least 2x2 and a start number >= 0"
        )
    names = {n: frame_file_name(pattern, n) for n in range(start_number, start_number + count)}
    skip = set(missing)
    outside = sorted(skip - set(names))
    if outside:
        raise SettingsError(
            f"samples: missing frame {outside[0]} is outside {start_number}..{start_number + count - 1}; "
            "name missing frames inside the range"
        )
    fmt = Path(names[start_number]).suffix.lower()
    if linear and fmt != ".exr":
        raise SettingsError(f"samples: linear=True only applies to EXR, not {fmt}; drop it or write .exr")
    depth = 32 if fmt == ".exr" else (bit_depth if bit_depth is not None else 8)
    if fmt == ".exr" and bit_depth not in (None, 32):
        raise SettingsError(f"samples: EXR frames are 32-bit float, not {bit_depth}-bit; leave bit_depth out")

    x = np.linspace(0.0, 1.0, width)[None, :].repeat(height, axis=0)
    y = np.linspace(0.0, 1.0, height)[:, None].repeat(width, axis=1)
    base = np.stack([0.15 + 0.7 * x, 0.15 + 0.7 * y, 0.6 - 0.4 * x * y], axis=-1)
    side = max(2, min(width, height) // 6)
    coverage = 0.25 + 0.75 * x
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for number, name in names.items():
        if number in skip:
            continue
        display = base.copy()
        left = (3 * number + 5 * offset) % (width - side + 1)
        top = (2 * number + 3 * offset) % (height - side + 1)
        display[top:top + side, left:left + side, :] = 0.95
        if alpha:
            display = np.concatenate([display, coverage[:, :, None]], axis=-1)
        if depth == 32:
            pixels = display.astype(np.float32)
            if linear:
                pixels[:, :, :3] = display_to_linear(pixels[:, :, :3])
        else:
            pixels = np.rint(display * ((1 << depth) - 1)).astype(np.uint8 if depth == 8 else np.uint16)
        written.append(write_image(folder_path / name, pixels, bit_depth=depth))
    logger.debug("samples: wrote %d frames of %s in %s", len(written), pattern, folder_path)
    return written
