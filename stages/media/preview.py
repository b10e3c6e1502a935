"""Small helpers for looking at videos: the first seconds of a clip as a file of its own (the page's Preview
runs the whole pipeline on it), and one frame at a chosen time (the page's before/after slider)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
import cv2
import numpy as np

from stages.errors import InputError, SettingsError
from stages.media.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)


def cut_head(source: str | Path, target: str | Path, seconds: float = 5.0) -> Path:
    """Write the first ``seconds`` of ``source`` (first video stream, audio if any) to ``target`` (.mp4).

    The video is re-encoded (x264 CRF 12, veryfast) so the cut is frame-exact whatever the source's keyframes;
    the frame rate, size and timing are kept. The file appears under its name only once complete.

    Raises:
        SettingsError: ``seconds`` is not above 0. EncodeError: ffmpeg failed (message from ffmpeg).
    """
    if not seconds > 0:
        raise SettingsError(f"preview: length {seconds} s must be above 0; use 5")
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        run_ffmpeg(
            ["-i", str(source), "-t", f"{seconds:.3f}", "-map", "0:v:0", "-map", "0:a:0?",
             "-c:v", "libx264", "-crf", "12", "-preset", "veryfast", "-pix_fmt", "yuv420p",
             "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
             "-fps_mode", "passthrough", "-c:a", "aac", "-b:a", "192k", "-f", "mp4", str(partial)],
            what="preview: cut",
        )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def frame_at(path: str | Path, seconds: float) -> np.ndarray:
    """The RGB frame (``HxWx3`` uint8) shown at ``seconds`` into the first video stream of ``path``.

    Times past the end give the last frame; rotation metadata is not applied (the pipeline keeps it as
    metadata too, so both sides of a comparison match).

    Raises:
        InputError: the file cannot be opened or has no decodable video frame.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start = stream.start_time or 0
            target_pts = start + int(max(seconds, 0.0) / float(stream.time_base)) if stream.time_base else start
            if seconds > 0 and stream.time_base:
                container.seek(target_pts, stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                if chosen is not None and frame.pts is not None and frame.pts > target_pts:
                    break
                chosen = frame
            if chosen is None:
                raise InputError(f"frame: {Path(path).name} has no decodable video frame")
            return chosen.to_ndarray(format="rgb24")
    except (av.FFmpegError, IndexError) as exc:
        raise InputError(f"frame: cannot read a frame of {Path(path).name} ({exc}); is it a video file?") from exc


def resize_to(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` resized to ``width``x``height`` with Lanczos (the baseline the report compares against)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)
