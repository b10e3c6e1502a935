"""Deinterlacing: the mode a run uses, the timeline of the frames it gives, and FFmpeg's bwdif on PyAV's filter graph.

Modes (``--deinterlace``, the run config's ``chunk_plan.deinterlace``):

- ``auto`` (default): ``frame`` when the probe says the source is interlaced, else ``off``;
- ``off``: the frames as decoded (an interlaced source keeps its combs);
- ``frame``: bwdif, one progressive frame per frame: same frame count, same timestamps;
- ``field``: bwdif, one progressive frame per field: twice the frames at twice the rate (25i -> 50p), smoother
  motion. The first field of a frame at ``p`` keeps its time, the second comes half that frame's duration later; to
  hold both on whole ticks the decoded frames use a time base twice as fine (``pts * 2`` and ``pts * 2 + d``, ``d``
  the frame's duration in source ticks), so VFR and the end of the last frame stay exact.

The pipeline works on the decoded frames, so the chunk plan, the scene cuts, the chain's steps, the encode and the
report all see the field-rate timeline (:func:`decoded_view`); audio and subtitles keep the source's clock, so they
stay in sync. Nothing here knows about Dagster.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stages.errors import ChunkError, SettingsError
from stages.media.probe import VideoInfo

DEINTERLACE_MODES = ("auto", "off", "frame", "field")


def resolve_deinterlace(mode: str, info: VideoInfo) -> str:
    """What ``mode`` does on the source ``info``: ``"off"``, ``"frame"`` or ``"field"`` (``auto`` -> ``frame``
    when ``info.interlaced``, else ``off``).

    Raises:
        SettingsError: ``mode`` is not one of :data:`DEINTERLACE_MODES`.
    """
    if mode not in DEINTERLACE_MODES:
        raise SettingsError(f"deinterlace: unknown mode {mode!r}; use one of {', '.join(DEINTERLACE_MODES)} "
                            "(auto: one frame per frame when the source is interlaced)")
    if mode == "auto":
        return "frame" if info.interlaced else "off"
    return mode


def decoded_view(info: VideoInfo, mode: str) -> VideoInfo:
    """The :class:`VideoInfo` of the frames the pipeline decodes from the source ``info`` with ``mode`` (``auto``
    is resolved here): ``info`` itself for ``off``; marked ``deinterlace="frame"`` for ``frame`` (same timing); for
    ``field`` twice the frames, twice the rates, a time base half as long and every pts doubled. An info that is
    already a decoded view is returned as it is.

    Raises:
        SettingsError: an unknown ``mode``.
    """
    if info.deinterlace != "off":
        return info
    resolved = resolve_deinterlace(mode, info)
    if resolved == "off":
        return info
    if resolved == "frame":
        return replace(info, deinterlace="frame")
    base = info.time_base / 2
    return replace(info, deinterlace="field", time_base_num=base.numerator, time_base_den=base.denominator,
                   start_pts=2 * info.start_pts, end_pts=2 * info.end_pts, frame_count=2 * info.frame_count,
                   avg_fps=2 * info.avg_fps, real_fps=2 * info.real_fps)


def source_view(info: VideoInfo) -> VideoInfo:
    """The source's own :class:`VideoInfo` behind a decoded view (the inverse of :func:`decoded_view`)."""
    if info.deinterlace == "off":
        return info
    if info.deinterlace == "frame":
        return replace(info, deinterlace="off")
    base = info.time_base * 2
    return replace(info, deinterlace="off", time_base_num=base.numerator, time_base_den=base.denominator,
                   start_pts=info.start_pts // 2, end_pts=info.end_pts // 2, frame_count=info.frame_count // 2,
                   avg_fps=info.avg_fps / 2, real_fps=info.real_fps / 2)


def field_pts(pts: np.ndarray, end_pts: int) -> np.ndarray:
    """The pts (on the doubled time base) of the two fields of frames at ``pts`` (source ticks, increasing) whose
    last one ends at ``end_pts``: ``2p`` and ``2p + d`` for each, ``d`` the frame's duration (at least one tick)."""
    pts = np.asarray(pts, dtype=np.int64)
    if len(pts) == 0:
        return pts
    durations = np.maximum(1, np.diff(np.append(pts, max(int(end_pts), int(pts[-1]) + 1))))
    return np.stack([2 * pts, 2 * pts + durations], axis=1).reshape(-1)


def decoded_timestamps(source_pts: np.ndarray, view: VideoInfo) -> np.ndarray:
    """The pts of the decoded frames of ``view`` from the source's frame pts: the same, or for ``field`` the two
    fields' pts of every frame (:func:`field_pts`)."""
    if view.deinterlace != "field":
        return np.asarray(source_pts, dtype=np.int64)
    return field_pts(np.asarray(source_pts, dtype=np.int64), source_view(view).end_pts)


def deinterlace_key(view: VideoInfo) -> dict[str, str]:
    """The content-key part of the decode for ``view`` ({} when nothing is deinterlaced). ``bwdif`` (frame rate,
    only the frames flagged interlaced) is the key decoded chunks of interlaced sources always had."""
    if view.deinterlace == "frame":
        return {"deinterlace": "bwdif" if view.interlaced else "bwdif:all"}
    if view.deinterlace == "field":
        return {"deinterlace": "bwdif:field"}
    return {}


def describe_deinterlace(view: VideoInfo) -> str:
    """One sentence for the log and the report: what was done to the fields of ``view``'s source."""
    if view.deinterlace == "frame":
        which = "the frames flagged interlaced" if view.interlaced else "every frame, as asked"
        return f"deinterlaced with bwdif, one frame per frame ({_fps(view.avg_fps)} fps, same timing; {which})"
    if view.deinterlace == "field":
        return (f"deinterlaced with bwdif, one frame per field ({_fps(view.avg_fps)} fps, twice the source's "
                f"{_fps(view.avg_fps / 2)} fps)")
    if view.interlaced:
        return "not deinterlaced, as asked (the frames keep their combs)"
    return "not deinterlaced (progressive source)"


def _fps(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def deinterlace_frames(frames: Iterator[av.VideoFrame], view: VideoInfo, end_pts: int) -> Iterator[av.VideoFrame]:
    """``frames`` (the source's, pts in its time base, in order) through FFmpeg's bwdif, as ``view.deinterlace``
    says: ``frame`` gives one progressive frame per frame with the same pts (``mode=send_frame``; only the frames
    flagged interlaced are filtered when the probe saw the flag, every frame when it did not and the user asked);
    ``field`` gives two per frame (``mode=send_field``, every frame) with the pts of :func:`field_pts` on the
    doubled time base, ``end_pts`` (source ticks) being where the last given frame ends. The field order comes from
    the frames' flags (``parity=auto``). At the first and last frame the missing neighbour is the frame itself.

    Raises:
        ChunkError: the filter fails (e.g. a frame of another format mid-stream it cannot take).
    """
    field = view.deinterlace == "field"
    deint = "interlaced" if view.deinterlace == "frame" and view.interlaced else "all"
    args = f"mode={'send_field' if field else 'send_frame'}:parity=auto:deint={deint}"
    graph: av.filter.Graph | None = None
    shape: tuple[int, int, str] | None = None
    pending = _PendingPts(field)
    try:
        for frame in frames:
            current = (frame.width, frame.height, frame.format.name)
            if graph is not None and current != shape:
                yield from _drain(graph, pending, flush=True, end=frame.pts)
                graph = None
            if graph is None:
                graph, shape = _bwdif_graph(frame, view, args), current
            pending.add(frame.pts, frame.time_base)
            graph.push(frame)
            yield from _drain(graph, pending, flush=False, end=None)
        if graph is not None:
            yield from _drain(graph, pending, flush=True, end=end_pts)
    except (av.error.FFmpegError, ValueError) as exc:
        name = Path(view.path).name
        raise ChunkError(f"extract: deinterlacing {name} failed ({exc}); deinterlace it first, e.g. "
                         f"`ffmpeg -i {name} -vf bwdif -c:v libx264 -crf 16 progressive.mkv`, or use --deinterlace off"
                         ) from exc


class _PendingPts:
    """The source pts of the frames given to the filter and not yet given back; hands out the output pts (bwdif
    counts in fields and gives back the last frames only at the flush, so the pts are ours, not the filter's)."""

    def __init__(self, field: bool) -> None:
        self.field = field
        self.items: deque[tuple[int | None, Fraction | None]] = deque()
        self.second = False  # field mode: the first field of the head frame was given back

    def add(self, pts: int | None, time_base: Fraction | None) -> None:
        self.items.append((pts, time_base))

    def take(self, end: int | None) -> tuple[int | None, Fraction | None]:
        if not self.items:
            raise ChunkError("extract: the deinterlacer gave more frames than it was given; report this as a bug")
        pts, base = self.items[0]
        if not self.field:
            self.items.popleft()
            return pts, base
        half = base / 2 if base else None
        if pts is None:
            first, second = None, None
        else:
            following = self.items[1][0] if len(self.items) > 1 else end
            duration = max(1, (following if following is not None else pts + 1) - pts)
            first, second = 2 * pts, 2 * pts + duration
        if not self.second:
            self.second = True
            return first, half
        self.second = False
        self.items.popleft()
        return second, half


def _bwdif_graph(frame: av.VideoFrame, view: VideoInfo, args: str) -> av.filter.Graph:
    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                              time_base=frame.time_base or view.time_base)
    bwdif = graph.add("bwdif", args)
    sink = graph.add("buffersink")
    source.link_to(bwdif)
    bwdif.link_to(sink)
    graph.configure()
    return graph


def _drain(graph: av.filter.Graph, pending: _PendingPts, *, flush: bool, end: int | None) -> Iterator[av.VideoFrame]:
    if flush:
        graph.push(None)
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        frame.pts, frame.time_base = pending.take(end if flush else None)
        yield frame
