"""The chunk stage: :func:`interpolate_chunk` streams one lossless chunk and writes its share of the output plan.

Each output frame is a copy of a source frame or made by an interpolator (:mod:`stages.ops.interpolate.interpolators`,
or RIFE) from a pair; the last pairs of a chunk use the next chunk's first frame.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import ChunkError
from stages.media.chunkio import ChunkWriter, read_frames, storage_depth
from stages.media.pipelining import prefetch
from stages.ops.interpolate.interpolators import Interpolator
from stages.ops.interpolate.timing import OutputFrame
from stages.store.fsutil import atomic_output

logger = logging.getLogger(__name__)

__all__ = [
    "InterpolatedChunk",
    "interpolate_chunk",
]

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class InterpolatedChunk:
    """What :func:`interpolate_chunk` wrote: output frames (``interpolated`` of them synthesized)."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    seconds: float
    interpolated: int


class _FrameSource:
    """Sequential access by source index to a chunk's frames plus the next chunk's first frame."""

    def __init__(self, frames: Iterator[np.ndarray], first_index: int, next_first_frame: np.ndarray | None,
                 name: str) -> None:
        self._frames = frames
        self._next_index = first_index
        self._first_index = first_index
        self._next_first = next_first_frame
        self._held: dict[int, np.ndarray] = {}
        self._exhausted = False
        self._name = name
        self.shape: tuple[int, ...] | None = None

    def get(self, index: int) -> np.ndarray:
        if index in self._held:
            return self._held[index]
        if index < self._next_index:
            raise ChunkError(f"interpolate: the plan for {self._name} goes back to frame {index}; "
                             "pass the chunk's output frames in plan order")
        while self._next_index <= index and not self._exhausted:
            try:
                frame = next(self._frames)
            except StopIteration:
                self._exhausted = True
                break
            if self.shape is None:
                self.shape = frame.shape
            if self._next_index == index:
                self._held[index] = frame
            self._next_index += 1
        if index in self._held:
            return self._held[index]
        if index == self._next_index and self._next_first is not None:
            self._held[index] = self._next_first
            return self._next_first
        last = self._next_index - 1
        raise ChunkError(
            f"interpolate: the plan needs source frame {index}, {self._name} has frames {self._first_index}-{last}"
            f"{' and no next-chunk frame' if index == self._next_index else ''}; plan the chunks again with "
            "chunk_output_frames"
        )

    def release_before(self, index: int) -> None:
        for key in [k for k in self._held if k < index]:
            del self._held[key]


def interpolate_chunk(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    frames_plan: Sequence[OutputFrame],
    first_index: int,
    next_first_frame: np.ndarray | None,
    interpolator: Interpolator,
    bit_depth: int = 8,
    progress: ProgressFn | None = None,
) -> InterpolatedChunk:
    """Write the output frames ``frames_plan`` (one chunk's share of the plan, see :func:`chunk_output_frames`)
    of the lossless chunk ``in_path``, whose first frame is source frame ``first_index``, to ``out_path``.

    Source frames are decoded in a background thread and only the current pair is held in memory; consecutive
    output frames of one pair go to the interpolator in one call (the flow is computed once). Copies are the
    source frame bit for bit. ``next_first_frame`` (``HxWx3``, the chunk's dtype) is the next chunk's first
    frame, used by pairs that cross into it. Output frames are written in plan order at ``bit_depth``
    (``storage_depth``: 8 or 16) under a temporary name and renamed at the end: on any failure nothing is left
    at ``out_path``.

    Raises:
        ChunkError: the plan references a frame the chunk (and ``next_first_frame``) does not have, the plan is
            out of order, the input is unreadable, or ``next_first_frame`` does not match the chunk's frames.
    """
    started = time.perf_counter()
    source_path, out = Path(in_path), Path(out_path)
    total = len(frames_plan)
    written = interpolated = 0
    width = height = 0
    frames = prefetch(read_frames(source_path), depth=4, name="interpolate-decode")
    source = _FrameSource(frames, first_index, next_first_frame, source_path.name)
    writer: ChunkWriter | None = None
    try:
        with atomic_output(out) as tmp, contextlib.ExitStack() as writers:  # the writer comes at the first frame
            plan = list(frames_plan)
            if any(later.index <= earlier.index for earlier, later in itertools.pairwise(plan)):
                raise ChunkError(f"interpolate: the plan for {source_path.name} is not in output order; pass it "
                                 "as chunk_output_frames gives it")
            position = 0
            while position < len(plan):
                frame = plan[position]
                group = [frame]
                if not frame.is_copy:
                    while (position + len(group) < len(plan) and not plan[position + len(group)].is_copy
                           and (plan[position + len(group)].a, plan[position + len(group)].b) == (frame.a, frame.b)):
                        group.append(plan[position + len(group)])
                source.release_before(frame.a)
                first = source.get(frame.a)
                if writer is None:
                    height, width = first.shape[:2]
                    writer = writers.enter_context(ChunkWriter(tmp, width, height, bit_depth=bit_depth))
                if frame.is_copy:
                    outputs = [first]
                else:
                    second = source.get(frame.b)
                    if second.shape != first.shape or second.dtype != first.dtype:
                        raise ChunkError(
                            f"interpolate: frame {frame.b} ({second.shape} {second.dtype}) does not match frame "
                            f"{frame.a} ({first.shape} {first.dtype}); pass the next chunk's first frame at the same "
                            "size and depth"
                        )
                    outputs = interpolator.interpolate(first, second, [f.t for f in group])
                    interpolated += len(outputs)
                for image in outputs:
                    writer.write(image)
                written += len(outputs)
                position += len(group)
                if progress is not None:
                    progress(written, total)
            if writer is None:
                raise ChunkError(f"interpolate: the plan for {source_path.name} has no frames; plan the chunks again "
                                 "with chunk_output_frames")
    finally:
        frames.close()
    seconds = time.perf_counter() - started
    logger.debug("interpolate: %s: %d frames (%d synthesized by %s) in %.2f s", source_path.name, written,
                 interpolated, getattr(interpolator, "name", type(interpolator).__name__), seconds)
    return InterpolatedChunk(frame_count=written, width=width, height=height, bit_depth=storage_depth(bit_depth),
                             seconds=seconds, interpolated=interpolated)
