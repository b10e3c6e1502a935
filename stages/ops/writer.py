"""The one writer thread of the chunk ops, and the per-frame chunk helper built on it.

:class:`ChunkSink` writes frames to a lossless chunk file (stages.media.chunkio.ChunkWriter) in a background thread fed
by a bounded queue, so the model or filter never waits on encoding while the queue has room. :func:`map_chunk`
decodes a chunk in another background thread, maps its frames in batches and writes them through a sink, with
the frame-count checks every op needs; on any failure nothing is left at the output path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import ChunkError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.media.pipelining import prefetch

log = logging.getLogger(__name__)

# maps a batch of frames (and the chunk-relative index of its first frame) to as many output frames
BatchFn = Callable[[list[np.ndarray], int], Sequence[np.ndarray]]
ProgressFn = Callable[[int, int], None]


class ChunkSink:
    """Writes frames to a chunk file in a background thread. ``put`` takes a list of frames; a writer error is
    raised in the caller at the next ``put`` or at ``finish``; ``abort`` stops the thread and removes the file."""

    def __init__(self, path: str | Path, bit_depth: int, *, depth: int = 2, name: str = "chunk-write") -> None:
        self.path, self._bit_depth = Path(path), bit_depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self.writer: ChunkWriter | None = None
        self.frames = 0
        self.wait_seconds = 0.0  # time the caller was blocked because the queue was full (encoding too slow)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                for frame in batch:
                    if self.writer is None:
                        self.writer = ChunkWriter(self.path, frame.shape[1], frame.shape[0], self._bit_depth)
                    self.writer.write(frame)
                    self.frames += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc
            while self._queue.get() is not None:  # drain so the producer never blocks on a dead writer
                pass

    def put(self, frames: Sequence[np.ndarray]) -> None:
        if self._error is not None:
            raise self._error
        started = time.perf_counter()
        self._queue.put(list(frames))
        self.wait_seconds += time.perf_counter() - started

    def finish(self) -> ChunkWriter | None:
        """Wait for every queued frame to be written and close the file (None when nothing was written);
        re-raise a writer error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self.writer is not None:
            self.writer.close()
        return self.writer

    def abort(self) -> None:
        """Stop the thread and remove the partial file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.writer is not None:
            self.writer.abort()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class MappedChunk:
    """What :func:`map_chunk` wrote: frames, size and bit depth of the output, wall time, time inside the map
    function and time spent waiting on the writer."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    seconds: float
    map_seconds: float = 0.0
    write_wait_seconds: float = 0.0


def map_chunk(
    in_path: str | Path,
    out_path: str | Path,
    fn: BatchFn,
    *,
    batch: int = 1,
    expected_frames: int | None = None,
    bit_depth: int = 8,
    what: str = "op",
    progress: ProgressFn | None = None,
) -> MappedChunk:
    """Map every frame of the lossless chunk ``in_path`` into a new chunk at ``out_path``.

    Decoding (a background thread), ``fn`` (here, on batches of up to ``batch`` frames) and writing (the sink's
    thread) overlap. ``fn(frames, first_index)`` returns one output frame per input frame; outputs may change the
    size but not the count. ``what`` names the step in messages. On failure no file is left at ``out_path``.

    Raises:
        ChunkError: the input chunk is unreadable or empty, ``fn`` returned another number of frames, or the
            count differs from ``expected_frames``.
    """
    if batch < 1:
        raise ValueError(f"{what}: batch {batch} must be at least 1")
    started = time.perf_counter()
    sink = ChunkSink(out_path, bit_depth, name=f"{what}-write")
    done = 0
    map_seconds = 0.0
    try:
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal done, map_seconds
            t0 = time.perf_counter()
            outputs = fn(list(pending), done)
            map_seconds += time.perf_counter() - t0
            if len(outputs) != len(pending):
                raise ChunkError(f"{what}: {len(pending)} frames in, {len(outputs)} out; a chunk op must return one "
                                 "frame per input frame")
            sink.put(outputs)
            done += len(pending)
            pending.clear()
            if progress:
                progress(done, expected_frames or done)

        for frame in prefetch(read_frames(in_path), depth=max(2, batch * 2), name=f"{what}-decode"):
            pending.append(frame)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        writer = sink.finish()
        if writer is None:
            raise ChunkError(f"{what}: chunk {in_path} has no frames; delete it so it is made again")
        if expected_frames is not None and done != expected_frames:
            raise ChunkError(f"{what}: chunk {in_path} has {done} frames, its manifest says {expected_frames}; "
                             "delete it so it is made again")
    except BaseException:
        sink.abort()
        raise
    seconds = time.perf_counter() - started
    log.debug("%s: chunk %s: %d frames in %.2f s (map %.2f s, waited on the writer %.2f s)",
              what, in_path, done, seconds, map_seconds, sink.wait_seconds)
    return MappedChunk(frame_count=done, width=writer.width, height=writer.height, bit_depth=writer.bit_depth,
                       seconds=seconds, map_seconds=map_seconds, write_wait_seconds=sink.wait_seconds)
