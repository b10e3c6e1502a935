"""Lossless chunk files: RGB frames in a lossless intra-only codec inside NUT (ffmpeg's own container).

8-bit frames are stored as FFVHuff ``rgb24`` (read back as ``rgb24``, ``uint8``); frames above 8 bits as
FFV1 ``gbrp16le`` with 4 slices (read back as ``rgb48le``, ``uint16``). Why not FFV1 for 8-bit too: at
1920x1080 on this project's reference CPU FFV1 costs about 90 ms of CPU to write and 95 ms to read a frame,
FFVHuff about 15 ms each (files about 1.8x larger), and on a 2-core machine those milliseconds are taken from
the model (``benchmarks/side_by_side.py`` shows the effect end to end). Matroska cannot hold FFVHuff through
PyAV, NUT can. Frame timing is *not* taken from the container; the exact source timestamps live in the chunk
manifest. Chunk integrity is the chunk store's sha256, not the codec's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from stages.errors import ChunkError

# bit depth -> (codec, stored pix_fmt, array format, dtype, codec options)
_STORE_FORMAT = {
    8: ("ffvhuff", "rgb24", "rgb24", np.uint8, {}),
    16: ("ffv1", "gbrp16le", "rgb48le", np.uint16, {"slicecrc": "1", "context": "1", "g": "1", "slices": "4"}),
}
CHUNK_SUFFIX = ".nut"
CHUNK_FORMAT_VERSION = "nut-ffvhuff8-ffv1_16/2"


def frame_dtype(bit_depth: int) -> type[np.generic]:
    """Numpy dtype of a frame stored at ``bit_depth`` (8 -> uint8, 16 -> uint16)."""
    return _STORE_FORMAT[storage_depth(bit_depth)][3]


def storage_depth(source_bit_depth: int) -> int:
    """Bit depth of the intermediate for a source of ``source_bit_depth`` bits: 8 or 16."""
    return 8 if source_bit_depth <= 8 else 16


class ChunkWriter:
    """Writes ``HxWx3`` RGB frames (uint8 or uint16) to a lossless chunk file (see the module docstring).

    Use as a context manager; ``close()`` returns the number of frames written. On an exception inside the
    ``with`` block the file is closed and removed, so no partial chunk is left behind.
    """

    def __init__(self, path: str | Path, width: int, height: int, bit_depth: int = 8) -> None:
        if width <= 0 or height <= 0:
            raise ChunkError(f"chunk writer: invalid frame size {width}x{height}; frames must be at least 1x1")
        self.path = Path(path)
        self.width, self.height = width, height
        self.bit_depth = storage_depth(bit_depth)
        codec, pix_fmt, self._array_format, self._dtype, options = _STORE_FORMAT[self.bit_depth]
        self._container = av.open(str(self.path), mode="w", format="nut")
        stream = self._container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.options = dict(options)
        stream.thread_type = "AUTO"
        self._stream = stream
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, shape ``(height, width, 3)``, dtype matching the bit depth."""
        if frame.shape != (self.height, self.width, 3):
            raise ChunkError(
                f"chunk writer: frame of shape {frame.shape} does not match {self.height}x{self.width}x3"
            )
        if frame.dtype != self._dtype:
            raise ChunkError(f"chunk writer: frame dtype {frame.dtype} does not match {np.dtype(self._dtype)}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self._array_format)
        vf.pts = self.frames
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> int:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        return self.frames

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is removed anyway
                pass
            self._container = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _open_chunk(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, str]:
    """The open chunk container, its video stream and the array format of its frames (rgb24 / rgb48le).

    Raises:
        ChunkError: the file is missing or cannot be opened.
    """
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise ChunkError(f"chunk reader: cannot open {path}: {exc}; delete it so it is redone") from exc
    try:
        stream = container.streams.video[0]
    except IndexError:
        container.close()
        raise ChunkError(f"chunk reader: {path} has no video stream; delete it so it is redone") from None
    return container, stream, "rgb48le" if "16" in (stream.codec_context.pix_fmt or "") else "rgb24"


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a chunk file as ``HxWx3`` arrays (uint8, or uint16 for 16-bit chunks).

    Raises:
        ChunkError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    container, stream, array_format = _open_chunk(path)
    with container:
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=array_format)
        except av.error.FFmpegError as exc:
            raise ChunkError(f"chunk reader: {path} is corrupt ({exc}); delete it so it is redone") from exc


def count_frames(path: str | Path) -> int:
    """Count the frames of a chunk file by demuxing (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def first_frame(path: str | Path) -> np.ndarray:
    """The first frame of a chunk file (decodes only that frame; the file is closed on return).

    Raises:
        ChunkError: the file is missing, empty or cannot be decoded.
    """
    frames = read_frames(path)
    try:
        frame = next(frames, None)
    finally:
        frames.close()
    if frame is None:
        raise ChunkError(f"chunk reader: chunk {path} has no frames; delete it so it is redone")
    return frame


def last_frame(path: str | Path) -> np.ndarray:
    """The last frame of a chunk file (``HxWx3`` uint8/uint16), decoding only its last packet (chunks are
    intra-only): the state a chunk stage carries into the next chunk.

    Raises:
        ChunkError: the file is missing, empty or cannot be decoded.
    """
    path = Path(path)
    container, stream, array_format = _open_chunk(path)
    with container:
        try:
            last = None
            for packet in container.demux(stream):
                if packet.size:
                    last = packet
            if last is None:
                raise ChunkError(f"chunk reader: chunk {path} has no frames; delete it so it is redone")
            frames = list(stream.codec_context.decode(last)) + list(stream.codec_context.decode(None))
        except av.error.FFmpegError as exc:
            raise ChunkError(f"chunk reader: {path} is corrupt ({exc}); delete it so it is redone") from exc
    if not frames:
        raise ChunkError(f"chunk reader: the last frame of {path} does not decode; delete it so it is redone")
    return frames[-1].to_ndarray(format=array_format)
