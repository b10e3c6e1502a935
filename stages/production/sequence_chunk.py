"""A sequence chunk: output frames of a planned timeline decoded into a lossless chunk (:mod:`stages.media.chunkio`).

The timeline comes from :func:`stages.production.sequence.plan_timeline`; each file is decoded by
:func:`stages.production.images.read_image`, so the frames get its bit depths and EXR display transform.

Alpha: a chunk holds RGB only; when frames carry alpha, :func:`write_sequence_chunk` can write the alpha plane to
a sibling chunk of the same size and depth, the grey alpha value repeated in its three channels.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import SettingsError
from stages.media.chunkio import ChunkWriter
from stages.production.images import _STORAGE_DEPTHS, ImageFrame, read_image
from stages.production.sequence import SequenceTimeline
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import fsync_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequenceChunk:
    """A chunk written by :func:`write_sequence_chunk`: frame count, size, storage bit depth (8/16), whether any
    frame had alpha, the chunk's path and the alpha chunk's path (None when no alpha chunk was written)."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    alpha_present: bool
    path: str
    alpha_path: str | None


def _temp_path(final: Path) -> Path:
    # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_sequence_chunk(
    timeline: SequenceTimeline,
    start: int,
    count: int,
    out_path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    storage_depth: int,
    progress: Callable[[int, int], None] | None = None,
    alpha_out: str | os.PathLike[str] | None = None,
) -> SequenceChunk:
    """Decode output frames ``[start, start + count)`` of ``timeline`` into a lossless chunk at ``out_path``.

    Frames are ``width`` x ``height`` RGB at ``storage_depth`` bits (8 or 16, :mod:`stages.media.chunkio`). A run of
    the same file (held frames) is decoded once. With ``alpha_out``, when any frame has alpha the alpha planes go
    to a second chunk there (same size and depth, the alpha value in all three channels; frames without alpha
    are fully opaque); when no frame has alpha, nothing is written there. Without ``alpha_out`` alpha is dropped.
    ``progress(done, count)`` is called after each frame. Both files are written to temporary names in their
    folders and renamed at the end; on any error nothing is left at ``out_path`` or ``alpha_out``.

    Raises:
        SettingsError: the range is outside the timeline, or the size or depth is invalid.
        InputError: a frame does not decode or has another size.
        ChunkError: the chunk cannot be written.
        DiskFullError: the disk filled up.
    """
    total = len(timeline.paths)
    if start < 0 or count < 1 or start + count > total:
        raise SettingsError(
            f"sequence: frames {start}..{start + count - 1} are outside the timeline of {total} frames of "
            f"{timeline.pattern}; plan chunks inside 0..{total - 1}"
        )
    if storage_depth not in _STORAGE_DEPTHS:
        raise SettingsError(f"sequence: storage depth {storage_depth} is not supported; use 8 or 16")
    if width <= 0 or height <= 0:
        raise SettingsError(f"sequence: frame size {width}x{height} is invalid; give the sequence's size")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    alpha_final = Path(alpha_out) if alpha_out is not None else None
    if alpha_final is not None:
        alpha_final.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    alpha_present = False
    try:
        tmp = _temp_path(out)
        temps.append(tmp)
        alpha_tmp = None
        if alpha_final is not None:
            alpha_tmp = _temp_path(alpha_final)
            temps.append(alpha_tmp)
        written, alpha_present = _write_frames(timeline.paths[start:start + count], tmp, alpha_tmp, width, height,
                                               storage_depth, progress)
        _fsync_file(tmp)
        if alpha_tmp is not None and alpha_final is not None and alpha_present:
            _fsync_file(alpha_tmp)
            os.replace(alpha_tmp, alpha_final)
            fsync_dir(alpha_final.parent)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException as exc:
        raise_if_disk_full(exc, f"sequence chunk {out.name}", out.parent)
        raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    if alpha_present and alpha_final is None:
        logger.info("sequence: frames of %s carry alpha, dropped (no alpha chunk asked for)", timeline.pattern)
    kept_alpha = alpha_present and alpha_final is not None
    logger.debug("sequence: wrote %s (%d frames from %d of %s)", out, written, start, timeline.pattern)
    return SequenceChunk(frame_count=written, width=width, height=height, bit_depth=storage_depth,
                         alpha_present=alpha_present, path=str(out),
                         alpha_path=str(alpha_final) if kept_alpha else None)


def _write_frames(
    paths: Iterable[str],
    tmp: Path,
    alpha_tmp: Path | None,
    width: int,
    height: int,
    storage_depth: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[int, bool]:
    """Write the frames of ``paths`` to ``tmp`` (and their alpha to ``alpha_tmp``); frames written, alpha seen."""
    paths = list(paths)
    alpha_present = False
    alpha_output = ChunkWriter(alpha_tmp, width, height, storage_depth) if alpha_tmp is not None else nullcontext()
    with ChunkWriter(tmp, width, height, storage_depth) as writer, alpha_output as alpha_writer:
        opaque = np.full((height, width, 3), (1 << storage_depth) - 1,
                         dtype=np.uint8 if storage_depth == 8 else np.uint16)
        previous: str | None = None
        frame: ImageFrame | None = None
        alpha_rgb = opaque
        for done, path in enumerate(paths, 1):
            if frame is None or path != previous:
                frame = read_image(path, expect=(width, height), storage_depth=storage_depth)
                previous = path
                alpha_rgb = opaque if frame.alpha is None else np.repeat(frame.alpha[:, :, None], 3, axis=2)
                alpha_present = alpha_present or frame.alpha is not None
            writer.write(frame.rgb)
            if alpha_writer is not None:
                alpha_writer.write(alpha_rgb)
            if progress is not None:
                progress(done, len(paths))
    return writer.frames, alpha_present
