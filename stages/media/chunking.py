"""Scene detection, chunk planning and frame-exact chunk extraction.

A video is cut into chunks of about ``chunk_seconds`` of real time (from the frame timestamps, so VFR works),
boundaries moved onto a scene cut when one is near. Each chunk is decoded once, converted to RGB with the
source's own matrix and range, deinterlaced when the run's decoded view says so (stages.media.deinterlace), and
stored losslessly with :class:`stages.media.chunkio.ChunkWriter`; the exact pts of its frames travel with it
(:class:`ExtractedChunk`).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from stages.errors import ChunkError, InputError, SettingsError
from stages.media.chunkio import ChunkWriter, storage_depth
from stages.media.deinterlace import decoded_view, deinterlace_frames, source_view
from stages.media.probe import VideoInfo, probe_video

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

DEFAULT_SCENE_THRESHOLD = 0.15
DEFAULT_SNAP_FRACTION = 0.25
_TAIL_MERGE_FRACTION = 0.25
_SCENE_HISTORY = 8
_SCENE_RATIO = 2.5
_SCENE_MIN_GAP_SECONDS = 0.2
_HIST_BINS = 16
_SEEK_MARGINS_SECONDS = (1.0, 5.0, 30.0)

_RGB_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_MATRICES = {
    "bt709": Colorspace.ITU709,
    "smpte170m": Colorspace.ITU601,
    "bt470bg": Colorspace.ITU601,
    "bt2020nc": Colorspace.BT2020,
    "bt2020c": Colorspace.BT2020,
    "fcc": Colorspace.FCC,
    "smpte240m": Colorspace.SMPTE240M,
}
_DEFAULT_PRIMARIES = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470bg", "bt2020nc": "bt2020",
                      "bt2020c": "bt2020", "fcc": "bt470m", "smpte240m": "smpte240m"}
_DEFAULT_TRANSFERS = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "smpte170m", "bt2020nc": "bt2020-10",
                      "bt2020c": "bt2020-10", "fcc": "smpte170m", "smpte240m": "smpte240m"}


@dataclass(frozen=True)
class ChunkSpec:
    """Frames ``[start_frame, end_frame)`` of a video, i.e. pts in ``[start_pts, end_pts)``.

    ``end_pts`` is None for the last chunk (to the end of the video).
    """

    index: int
    start_frame: int
    end_frame: int
    start_pts: int
    end_pts: int | None

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class ExtractedChunk:
    """What :func:`extract_chunk` wrote: frame count, exact source pts of each frame, size, storage depth (8/16)."""

    frame_count: int
    pts: tuple[int, ...]
    width: int
    height: int
    bit_depth: int


@dataclass(frozen=True)
class ColorConversion:
    """How YUV maps to RGB for a source, and the tags an encode of it should carry.

    ``matrix`` and ``range`` (``"tv"``/``"pc"``) drive the conversion; ``primaries``/``transfer`` are the
    source's tags, or the ones that go with the matrix when the source is untagged. All FFmpeg names.
    """

    matrix: str
    range: str
    primaries: str
    transfer: str

    @property
    def sws_colorspace(self) -> Colorspace:
        return _MATRICES.get(self.matrix, Colorspace.ITU709)

    @property
    def sws_range(self) -> ColorRange:
        return ColorRange.JPEG if self.range == "pc" else ColorRange.MPEG


def color_conversion(info: VideoInfo) -> ColorConversion:
    """The conversion to use for ``info``: its tags, else BT.709 from 720 lines up and BT.601 below; limited
    range unless tagged full (or a ``yuvj*`` pixel format)."""
    matrix = info.color_matrix
    if matrix not in _MATRICES:
        if matrix not in (None, "gbr"):
            logger.warning("chunking: colour matrix %s is not supported; using the default for %d lines",
                           matrix, info.height)
        matrix = "bt709" if info.height >= 720 else "smpte170m"
    color_range = "pc" if info.color_range == "pc" or info.pix_fmt.startswith("yuvj") else "tv"
    return ColorConversion(
        matrix=matrix,
        range=color_range,
        primaries=info.color_primaries or _DEFAULT_PRIMARIES[matrix],
        transfer=info.color_transfer or _DEFAULT_TRANSFERS[matrix],
    )


def frame_to_rgb(frame: av.VideoFrame, conversion: ColorConversion, bit_depth: int) -> np.ndarray:
    """Convert a decoded frame to RGB with ``conversion``.

    Returns:
        ``(H, W, 3)`` array: ``uint8`` when ``bit_depth`` <= 8, else ``uint16`` (full 16-bit scale).
    """
    fmt = "rgb48le" if storage_depth(bit_depth) == 16 else "rgb24"
    rgb = frame.reformat(
        format=fmt,
        src_colorspace=conversion.sws_colorspace,
        src_color_range=conversion.sws_range,
        dst_colorspace=conversion.sws_colorspace,
        dst_color_range=ColorRange.JPEG,
        interpolation=_RGB_FLAGS,
    )
    return rgb.to_ndarray()


def detect_scene_cuts(
    path: str | os.PathLike[str],
    info: VideoInfo,
    *,
    threshold: float = DEFAULT_SCENE_THRESHOLD,
    analysis_width: int = 160,
    progress: ProgressCallback | None = None,
) -> list[int]:
    """Indices of the frames that start a new scene (never 0), in increasing order.

    Every frame is decoded and shrunk to ``analysis_width`` pixels wide. The change score between two frames
    is the mean of their mean absolute grey difference and their colour-histogram distance (both 0..1). A
    frame starts a scene when its score is at least ``threshold``, at least 2.5x the median of the previous
    scores (so fast camera motion is not a cut) and at least 0.2 s after the previous cut.

    Raises:
        SettingsError: ``threshold`` not in (0, 1] or ``analysis_width`` < 8.
        InputError: the video cannot be decoded.
    """
    if not 0 < threshold <= 1:
        raise SettingsError(f"scene detection: threshold {threshold} is outside (0, 1]; use about 0.15")
    if analysis_width < 8:
        raise SettingsError(f"scene detection: analysis_width {analysis_width} is too small; use 160")
    width = min(analysis_width, info.width)
    height = max(1, round(width * info.height / info.width))
    min_gap = max(2, round(_SCENE_MIN_GAP_SECONDS * (info.real_fps or 24)))
    cuts: list[int] = []
    history: list[float] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    total = info.frame_count
    for index, frame in enumerate(_decode_all(path, info)):
        small = frame.reformat(width=width, height=height, format="rgb24", interpolation=Interpolation.AREA)
        features = _scene_features(small.to_ndarray())
        if previous is not None:
            score = _scene_score(previous, features)
            baseline = float(np.median(history[-_SCENE_HISTORY:])) if history else 0.0
            far_enough = not cuts or index - cuts[-1] >= min_gap
            if score >= threshold and score >= _SCENE_RATIO * baseline and far_enough:
                logger.debug("scene detection: cut at frame %d (score %.3f, baseline %.3f)", index, score, baseline)
                cuts.append(index)
            else:
                history.append(score)
        previous = features
        if progress is not None:
            progress(index + 1, total)
    return cuts


def _decode_all(path: str | os.PathLike[str], info: VideoInfo) -> Iterator[av.VideoFrame]:
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise InputError(f"scene detection: cannot open {Path(path).name} ({exc}); probe the file again") from exc
    with container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "AUTO"
        try:
            yield from container.decode(stream)
        except av.error.FFmpegError as exc:
            raise InputError(
                f"scene detection: decoding {Path(path).name} failed ({exc}); the file is damaged, re-export it"
            ) from exc


def _scene_features(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grey = rgb.astype(np.float32).mean(axis=2) / 255.0
    bins = (rgb.reshape(-1, 3) // (256 // _HIST_BINS)).astype(np.int64)
    hist = np.stack([np.bincount(bins[:, c], minlength=_HIST_BINS) for c in range(3)]).astype(np.float32)
    hist /= max(1, bins.shape[0])
    return grey, hist


def _scene_score(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    grey_change = float(np.mean(np.abs(a[0] - b[0])))
    hist_change = float(0.5 * np.abs(a[1] - b[1]).sum(axis=1).mean())
    return 0.5 * grey_change + 0.5 * hist_change


def plan_chunks(
    timestamps: Sequence[int] | np.ndarray,
    time_base: Fraction,
    chunk_seconds: float,
    scene_cuts: Sequence[int] = (),
    snap_seconds: float | None = None,
) -> list[ChunkSpec]:
    """Split the frames with pts ``timestamps`` (presentation order) into chunks of about ``chunk_seconds``.

    Every frame lies in exactly one chunk, chunks are in order and never empty. A boundary falls on the frame
    nearest to ``chunk_seconds`` of real time after the chunk's first frame, or on the nearest scene cut within
    ``snap_seconds`` of that time (default: a quarter of ``chunk_seconds``). A remainder shorter than a quarter
    of ``chunk_seconds`` joins the last chunk instead of making a tiny one.

    Raises:
        SettingsError: ``chunk_seconds`` or ``snap_seconds`` is not a positive finite number (snap may be 0).
        InputError: ``timestamps`` is empty or not strictly increasing.
    """
    if not isinstance(chunk_seconds, int | float) or not math.isfinite(chunk_seconds) or chunk_seconds <= 0:
        raise SettingsError(f"chunk plan: chunk_seconds must be a positive number of seconds, got {chunk_seconds!r}")
    snap = DEFAULT_SNAP_FRACTION * chunk_seconds if snap_seconds is None else float(snap_seconds)
    if not math.isfinite(snap) or snap < 0:
        raise SettingsError(f"chunk plan: snap_seconds must be 0 or more, got {snap_seconds!r}")
    pts = np.asarray(timestamps, dtype=np.int64)
    if pts.ndim != 1 or len(pts) == 0:
        raise InputError("chunk plan: no frame timestamps; probe the video first, it has no frames")
    if len(pts) > 1 and np.any(np.diff(pts) <= 0):
        raise InputError("chunk plan: frame timestamps are not strictly increasing; pass them in presentation order")
    count = len(pts)
    seconds = (pts - pts[0]).astype(np.float64) * float(Fraction(time_base))
    interval = float(np.median(np.diff(seconds))) if count > 1 else chunk_seconds
    end_time = float(seconds[-1]) + interval
    cuts = np.asarray(sorted({int(c) for c in scene_cuts if 0 < int(c) < count}), dtype=np.int64)

    boundaries = [0]
    while True:
        start = boundaries[-1]
        target = float(seconds[start]) + chunk_seconds
        boundary = _snap_to_cut(seconds, cuts, start, target, snap)
        if boundary is None:
            right = int(np.searchsorted(seconds, target, side="left"))
            if right >= count:
                break
            left = right - 1
            boundary = left if left > start and target - seconds[left] < seconds[right] - target else right
            if end_time - float(seconds[boundary]) < _TAIL_MERGE_FRACTION * chunk_seconds:
                break
        boundaries.append(boundary)
    boundaries.append(count)

    return [
        ChunkSpec(
            index=i,
            start_frame=a,
            end_frame=b,
            start_pts=int(pts[a]),
            end_pts=int(pts[b]) if b < count else None,
        )
        for i, (a, b) in enumerate(zip(boundaries[:-1], boundaries[1:], strict=True))
    ]


def decoded_plan(specs: Sequence[ChunkSpec], cuts: Sequence[int], view: VideoInfo) -> tuple[list[ChunkSpec], list[int]]:
    """The chunk plan ``specs`` and scene ``cuts`` of the source, in the frames and ticks of its decoded ``view``
    (:func:`stages.media.deinterlace.decoded_view`): the same, or for field-rate deinterlacing every frame index and
    pts doubled (each source frame gives two; a chunk still starts on a whole source frame)."""
    if view.deinterlace != "field":
        return list(specs), list(cuts)
    return ([ChunkSpec(s.index, 2 * s.start_frame, 2 * s.end_frame, 2 * s.start_pts,
                       None if s.end_pts is None else 2 * s.end_pts) for s in specs], [2 * c for c in cuts])


def source_spec(spec: ChunkSpec, view: VideoInfo) -> ChunkSpec:
    """The source's frames and ticks behind ``spec`` of the decoded ``view`` (the inverse of :func:`decoded_plan`).

    Raises:
        ChunkError: a field-rate spec that starts or ends between the two fields of a frame.
    """
    if view.deinterlace != "field":
        return spec
    values = (spec.start_frame, spec.end_frame, spec.start_pts, spec.end_pts or 0)
    if any(v % 2 for v in values):
        raise ChunkError(f"extract: chunk {spec.index} starts or ends between the two fields of a frame ({spec}); "
                         "plan field-rate chunks with decoded_plan")
    return ChunkSpec(spec.index, spec.start_frame // 2, spec.end_frame // 2, spec.start_pts // 2,
                     None if spec.end_pts is None else spec.end_pts // 2)


def _snap_to_cut(seconds: np.ndarray, cuts: np.ndarray, start: int, target: float, snap: float) -> int | None:
    candidates = cuts[cuts > start]
    if len(candidates) == 0:
        return None
    distance = np.abs(seconds[candidates] - target)
    best = int(np.argmin(distance))
    return int(candidates[best]) if distance[best] <= snap else None


def extract_chunk(
    source_path: str | os.PathLike[str],
    info: VideoInfo,
    spec: ChunkSpec,
    out_path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
) -> ExtractedChunk:
    """Decode the frames of ``spec`` and write them, as RGB, to the lossless chunk file ``out_path``.

    Seeks to the keyframe before ``spec.start_pts`` (further back when the decoder starts late), keeps exactly
    the frames whose pts lies in ``[start_pts, end_pts)``, converts them with :func:`color_conversion` of
    ``info`` and stores them at ``chunkio.storage_depth(info.bit_depth)`` (``(H, W, 3)`` uint8, or uint16 for
    sources above 8 bits). Rotation is not applied, nor the pixel aspect (the frames keep the source's grid).

    ``info`` is the probe, or its decoded view (:func:`stages.media.deinterlace.decoded_view`), which says how to
    deinterlace (``info.deinterlace``): ``frame`` gives one bwdif frame per frame (same pts); ``field`` one per
    field, ``spec`` and the pts written being on the view's doubled timeline (:func:`decoded_plan`). The file is
    written under a temporary name and renamed at the end, so ``out_path`` never holds a partial chunk.

    Raises:
        InputError: the source cannot be opened or decoded.
        ChunkError: no frame of the chunk could be decoded, or the chunk file cannot be written.
    """
    source = Path(source_path)
    out = Path(out_path)
    view = decoded_view(info, "off")
    probe = source_view(view)
    within = source_spec(spec, view)
    conversion = color_conversion(info)
    depth = storage_depth(info.bit_depth)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    written: list[int] = []
    damaged: list[int] = []
    try:
        with ChunkWriter(tmp, info.width, info.height, bit_depth=depth) as writer:
            frames = _noting_damage(_frames_in_range(source, probe, within), damaged)
            if view.deinterlace != "off":
                end = within.end_pts if within.end_pts is not None else probe.end_pts
                frames = deinterlace_frames(frames, view, end)
            for frame in frames:
                if frame.width != info.width or frame.height != info.height:
                    logger.warning("extract: frame at pts %s is %dx%d, the video is %dx%d; scaling it",
                                   frame.pts, frame.width, frame.height, info.width, info.height)
                    frame = frame.reformat(width=info.width, height=info.height, interpolation=Interpolation.BICUBIC)
                writer.write(frame_to_rgb(frame, conversion, depth))
                written.append(int(frame.pts))
                if progress is not None:
                    progress(len(written), spec.frame_count)
            if not written:
                raise ChunkError(
                    f"extract: chunk {spec.index} of {source.name} (frames {spec.start_frame}-{spec.end_frame - 1}) "
                    "decoded to no frame; the source is damaged there, re-export it"
                )
        _fsync(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if len(written) != spec.frame_count:
        logger.warning("extract: chunk %d of %s has %d decodable frames, the plan says %d",
                       spec.index, source.name, len(written), spec.frame_count)
    if damaged:
        logger.warning("extract: %s has %d damaged frame(s) from %.3f s (chunk %d); the decoder concealed the damage "
                       "and they are kept, re-export or copy the source again if they show blocks",
                       source.name, len(damaged), float((damaged[0] - probe.start_pts) * probe.time_base), spec.index)
    return ExtractedChunk(
        frame_count=len(written), pts=tuple(written), width=info.width, height=info.height, bit_depth=depth
    )


def _noting_damage(frames: Iterator[av.VideoFrame], damaged: list[int]) -> Iterator[av.VideoFrame]:
    """``frames`` unchanged; the pts of those the decoder flags corrupt (damage it concealed) go to ``damaged``."""
    for frame in frames:
        if frame.is_corrupt:
            damaged.append(int(frame.pts))
        yield frame


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _frames_in_range(source: Path, info: VideoInfo, spec: ChunkSpec) -> Iterator[av.VideoFrame]:
    """Frames with pts in ``[spec.start_pts, spec.end_pts)`` in presentation order.

    The first attempt seeks to ``start_pts``. When the first frame in range is not the frame at ``start_pts``
    or is flagged corrupt (a seek that landed late, MPEG-TS seeking onto a keyframe's own pts, leading frames
    of an open GOP), or no frame comes at all, the next attempt seeks further back; the last one decodes from
    the start of the file.

    Raises:
        ChunkError: a frame has no pts, or frames come out of timestamp order.
    """
    end = math.inf if spec.end_pts is None else spec.end_pts
    margins = [0.0, *_SEEK_MARGINS_SECONDS] if spec.start_frame > 0 and spec.start_pts > info.start_pts else []
    for margin in [*margins, None]:
        target = None if margin is None else spec.start_pts - round(margin / info.time_base)
        if target is not None and target <= info.start_pts:
            target = None
        frames = _decode_from(source, info, target)
        started = False
        previous: int | None = None
        try:
            for frame in frames:
                if frame.pts is None:
                    raise ChunkError(f"extract: {source.name} has a frame without pts; remux the file first")
                if previous is not None and frame.pts <= previous:
                    raise ChunkError(
                        f"extract: {source.name} decodes to frames out of timestamp order (pts {frame.pts} after "
                        f"{previous}; an AVI with B-frames?); the file's timestamps cannot be trusted, re-encode "
                        f"it, e.g. `ffmpeg -i {source.name} -c:v libx264 -crf 16 -c:a copy fixed.mkv`"
                    )
                previous = frame.pts
                if frame.pts >= end:
                    break
                if frame.pts < spec.start_pts:
                    continue
                if not started:
                    if target is not None and (frame.pts != spec.start_pts or frame.is_corrupt):
                        logger.debug("extract: seek to %d in %s gave pts %d (corrupt: %s) for %d; seeking back",
                                     target, source.name, frame.pts, frame.is_corrupt, spec.start_pts)
                        break
                    started = True
                yield frame
        finally:
            frames.close()
        if started or target is None:
            return
        logger.debug("extract: seek to %d in %s missed pts %d; seeking further back", target, source.name,
                     spec.start_pts)


def _decode_from(source: Path, info: VideoInfo, target: int | None) -> Iterator[av.VideoFrame]:
    try:
        container = av.open(str(source))
    except (OSError, av.error.FFmpegError) as exc:
        raise InputError(f"extract: cannot open {source.name} ({exc}); check the path or probe it again") from exc
    with container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "AUTO"
        try:
            if target is not None:
                container.seek(int(target), stream=stream, backward=True, any_frame=False)
            yield from container.decode(stream)
        except av.error.FFmpegError as exc:
            raise InputError(
                f"extract: decoding {source.name} failed ({exc}); the file is damaged, re-export it"
            ) from exc


def decode_video_rgb(path: str | Path, bit_depth: int | None = None) -> Iterator[np.ndarray]:
    """Every frame of the first video stream of ``path`` as RGB (``uint8``, or ``uint16`` above 8 bits), with the
    file's own colour matrix and range (as the chunks are made), in decode order.

    Raises:
        InputError / ProbeError: the file is missing or not a video (see :func:`stages.media.probe.probe_video`).
    """
    info = probe_video(path)
    conversion = color_conversion(info)
    depth = info.bit_depth if bit_depth is None else bit_depth
    with av.open(str(path)) as container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame_to_rgb(frame, conversion, depth)
