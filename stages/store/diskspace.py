"""Disk space: what a job will write, checked against the free space before it starts; ENOSPC during it.

A job writes, in the workspace: the lossless chunks of every stage that does work (decoded frames at the source
size; upscaled, interpolated and coherent frames at the output size; see stages/media/chunkio.py: FFVHuff RGB in NUT,
FFV1 16-bit above 8 bits), the encode (the video stream and the muxed file exist side by side for a moment, in
``outputs/.cache``), the report and the Dagster instance's events. The output itself is a hard link to the cached
encode when it lies on the workspace's disk, else a copy on its own disk.

How big a lossless chunk is depends on the picture, so the estimate measures it: a few frames of the source
(keyframes at 10%, 50% and 90% of the video) go through the chunk writer, and the largest bytes per pixel seen
prices every chunk stage, at its own frame size and count, times a margin: 1.15 for the decoded frames (the
samples are three frames of many), 1.65 for the upscaled, interpolated and coherent ones, never above the codec's
worst case. The margins come from real runs (``python -m benchmarks.faults --disk``): on photos filmed by a
moving camera, Vid4 and ffmpeg's testsrc2 the output-size chunks cost 0.78-1.07 times the source's bytes per pixel,
but on a noisy source they cost 1.62 times (the network turns noise into texture), and the sampled frames came out
up to 9% below the mean of all decoded frames. The encode is priced from the CRF (0.5 bit per pixel at CRF 18,
doubling every 6 CRF steps down; the 64x48 x4 test clip measured 0.22 with x264 veryfast); it is a few percent
of the chunks at most.

Chunks a previous attempt at the same job already stored need no new space: the caller passes the share of each
stage that is done (``done``; orchestration.launch.diskcheck reads it from the earlier runs), and it is subtracted.

During a job, an ``OSError`` with ``errno`` ENOSPC (or EDQUOT, or SQLite's "database or disk is full") becomes a
:class:`~stages.errors.DiskFullError` that says what was being written where (:func:`disk_full_error`).
Plain Python: no Dagster import.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stages.errors import DiskFullError, DiskSpaceError

if TYPE_CHECKING:
    from stages.media.probe import VideoInfo

log = logging.getLogger(__name__)

WORKSPACE_HINT = "choose a workspace on a larger disk (--workspace / VUP_WORKSPACE)"
DISK_FULL_ADVICE = "free space and rerun: finished chunks are kept and reused"
CHECK_ENV = "VUP_DISK_CHECK"  # "0" turns the check before a job off

# Bytes per pixel of the chunk codec at worst (and where sampling the source fails): FFVHuff's median prediction
# on noise needs more than the 3 raw bytes of an RGB pixel (3.33 measured on an upscaled noise clip); FFV1 16-bit
# stores a 10-bit source's converted frames at 6.4.
_CEILING_BYTES_PER_PIXEL = {8: 3.5, 16: 7.0}
FRAMES_MARGIN = 1.15  # decoded frames: three sampled keyframes against all frames
OUTPUT_MARGIN = 1.65  # frames made by the chain's ops (upscaled, interpolated, coherent) against the source's
_SAMPLE_POSITIONS = (0.1, 0.5, 0.9)
# Encoded video: bits per pixel at CRF 18 (x264/x265), doubling for every 6 CRF steps below (an upper bound: the
# test clip measured 0.22; small frames cost more per pixel than large ones).
_BITS_PER_PIXEL_CRF18 = 0.5
_LOSSLESS_BITS_PER_PIXEL = 12.0  # CRF 0 is lossless: at most about the raw 4:2:0 size
_AUDIO_FALLBACK_BITS_PER_SECOND = 512_000  # per audio stream whose bit rate the container does not give
# Dagster's instance (SQLite, the first run creates about 1 MB of tables), step outputs, the report folder.
_FIXED_OVERHEAD_BYTES = 2 * 1024 * 1024
_PER_CHUNK_OVERHEAD_BYTES = 16 * 1024  # events and logs per chunk per stage
_PER_FRAME_OVERHEAD_BYTES = 256  # the report's per-frame Parquet table


@dataclass(frozen=True)
class StageSize:
    """The chunks one op of the chain writes: its name (the store folder), frames and frame size."""

    name: str
    frames: int
    width: int
    height: int


@dataclass(frozen=True)
class JobShape:
    """What decides the space a job needs.

    ``frames``/``width``/``height``: the source (its decoded chunks); ``stages``: each op of the chain that writes
    chunks, in order, with its output (derived from the chain, orchestration.graphs.chain.plan_shapes); ``chunks``:
    chunks per stage.
    """

    width: int
    height: int
    frames: int
    bit_depth: int
    duration: float
    stages: tuple[StageSize, ...]
    chunks: int
    crf: int = 18
    high_bit_depth_output: bool = False
    audio_bits_per_second: float = 0.0

    @property
    def output(self) -> StageSize:
        """What the encode gets: the last stage's frames, or the decoded source's."""
        return self.stages[-1] if self.stages else StageSize("frames", self.frames, self.width, self.height)


@dataclass(frozen=True)
class SpaceEstimate:
    """Bytes a job will add. ``chunks``: per chunk stage, after subtracting what is already stored;
    ``encode``: the cached encode plus its temporary video stream (in the workspace); ``output``: the delivered
    file (new bytes only where it lies on another disk than the workspace); ``other``: instance, report."""

    chunks: Mapping[str, int]
    encode: int
    output: int
    other: int
    bytes_per_pixel: float
    credited: int = 0

    @property
    def chunk_bytes(self) -> int:
        return sum(self.chunks.values())

    @property
    def workspace_bytes(self) -> int:
        """Bytes on the workspace's disk: chunks, the encode and the rest."""
        return self.chunk_bytes + self.encode + self.other


def human_bytes(size: float) -> str:
    """``3.2 GB``, ``840 MB``, ``12 kB`` (decimal units, like disk tools and file managers)."""
    size = max(0.0, float(size))
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"


def sample_bytes_per_pixel(path: str | os.PathLike[str], info: VideoInfo, *,
                           positions: tuple[float, ...] = _SAMPLE_POSITIONS) -> float:
    """The largest bytes per pixel of the chunk codec on frames of the source (``info``: its VideoInfo).

    Seeks to each position (a share of the duration), takes the first frame the decoder gives there (a
    keyframe), converts it as the chunks are made and writes it with the chunk writer. Falls back to the
    codec's worst case when the source cannot be sampled or no temporary file can be written.
    """
    import av

    from stages.media.chunking import color_conversion, frame_to_rgb
    from stages.media.chunkio import ChunkWriter, storage_depth

    depth = storage_depth(info.bit_depth)
    ceiling = _CEILING_BYTES_PER_PIXEL[depth]
    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams[info.stream_index]
            conversion = color_conversion(info)
            span = max(0, info.end_pts - info.start_pts)
            seen: set[int] = set()
            for share in positions:
                target = info.start_pts + int(span * share)
                container.seek(target, stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if frame.pts not in seen:
                        seen.add(frame.pts)
                        frames.append(frame_to_rgb(frame, conversion, depth))
                    break
        if not frames:
            return ceiling
        with tempfile.TemporaryDirectory(prefix="vup-space-") as folder:
            sizes = []
            for number, rgb in enumerate(frames):
                target_file = Path(folder) / f"{number}.nut"
                with ChunkWriter(target_file, rgb.shape[1], rgb.shape[0], bit_depth=depth) as writer:
                    writer.write(rgb)
                with av.open(str(target_file)) as written:
                    payload = sum(p.size for p in written.demux(written.streams.video[0]) if p.size)
                sizes.append(payload / (rgb.shape[0] * rgb.shape[1]))
        return max(sizes)
    except (OSError, av.error.FFmpegError, ValueError, IndexError) as exc:
        log.info("disk: could not sample %s (%s); pricing chunks at the codec's worst case", path, exc)
        return ceiling


def encoded_bits_per_pixel(crf: int, high_bit_depth: bool = False) -> float:
    """Upper bound of the encoded video's bits per pixel at ``crf`` (x264/x265)."""
    bits = _LOSSLESS_BITS_PER_PIXEL if crf <= 0 else min(_LOSSLESS_BITS_PER_PIXEL,
                                                         _BITS_PER_PIXEL_CRF18 * 2 ** ((18 - crf) / 6))
    return bits * (1.25 if high_bit_depth else 1.0)


def estimate_job_space(shape: JobShape, bytes_per_pixel: float, *, done: Mapping[str, float] | None = None,
                       output_elsewhere: bool = False) -> SpaceEstimate:
    """The bytes ``shape`` will write, with each chunk stage priced from ``bytes_per_pixel`` (of the source's
    frames, see :func:`sample_bytes_per_pixel`) and its margin.

    ``done``: share (0..1) of each stage (``frames``, each of ``shape.stages`` by name, ``encode``)
    already stored by an earlier attempt at the same job; that part needs no new space.
    ``output_elsewhere``: the output lies on another disk than the workspace (a copy, not a hard link).
    """
    done = done or {}
    ceiling = _CEILING_BYTES_PER_PIXEL[8 if shape.bit_depth <= 8 else 16]
    full = {"frames": shape.width * shape.height * shape.frames * min(ceiling, bytes_per_pixel * FRAMES_MARGIN)}
    for stage in shape.stages:
        full[stage.name] = stage.width * stage.height * stage.frames * min(ceiling, bytes_per_pixel * OUTPUT_MARGIN)
    chunks: dict[str, int] = {}
    credited = 0
    for stage, size in full.items():
        need = math.ceil(size)
        share = min(1.0, max(0.0, float(done.get(stage, 0.0))))
        chunks[stage] = math.ceil(need * (1 - share))
        credited += need - chunks[stage]
    out = shape.output
    video = out.width * out.height * out.frames * encoded_bits_per_pixel(shape.crf, shape.high_bit_depth_output) / 8
    audio = shape.audio_bits_per_second * shape.duration / 8
    encode_done = min(1.0, max(0.0, float(done.get("encode", 0.0))))
    # the temporary video stream and the muxed file exist side by side until the mux ends
    encode = math.ceil((2 * video + audio) * (1 - encode_done))
    credited += math.ceil((2 * video + audio) * encode_done)
    output = math.ceil(video + audio) if output_elsewhere else 0
    working_stages = 1 + len(shape.stages)
    other = (_FIXED_OVERHEAD_BYTES + _PER_CHUNK_OVERHEAD_BYTES * shape.chunks * (working_stages + 2)
             + _PER_FRAME_OVERHEAD_BYTES * out.frames)
    return SpaceEstimate(chunks=chunks, encode=encode, output=output, other=other, bytes_per_pixel=bytes_per_pixel,
                         credited=credited)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the folder whose disk the path will be on)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def same_disk(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` (which need not exist yet) lie on the same file system."""
    try:
        return os.stat(_existing(Path(a))).st_dev == os.stat(_existing(Path(b))).st_dev
    except OSError:
        return True


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes (for this user) on the disk of ``path`` (which need not exist yet)."""
    return shutil.disk_usage(_existing(Path(path))).free


def check_disk_space(estimate: SpaceEstimate, workspace: str | os.PathLike[str],
                     output: str | os.PathLike[str] | None = None) -> None:
    """Raise DiskSpaceError when the workspace's disk (or the output's, when it is another) is short.

    The message gives the numbers and what to do, e.g. "disk: this job needs about 3.2 GB in /data (chunks
    2.9 GB, output 0.3 GB) but 1.1 GB is free; free 2.1 GB or choose a workspace on a larger disk (--workspace /
    VUP_WORKSPACE)".
    """
    if os.environ.get(CHECK_ENV, "1") == "0":
        return
    workspace = Path(workspace).expanduser()
    elsewhere = output is not None and not same_disk(workspace, Path(output).parent)
    need = estimate.workspace_bytes
    free = free_bytes(workspace)
    if need > free:
        raise DiskSpaceError(
            f"disk: this job needs about {human_bytes(need)} in {_existing(workspace)} (chunks "
            f"{human_bytes(estimate.chunk_bytes)}, output {human_bytes(estimate.encode)}, other "
            f"{human_bytes(estimate.other)}) but {human_bytes(free)} is free; free {human_bytes(need - free)} "
            f"or {WORKSPACE_HINT}"
        )
    if elsewhere and estimate.output:
        folder = _existing(Path(output).parent)
        free_out = free_bytes(folder)
        if estimate.output > free_out:
            raise DiskSpaceError(
                f"disk: the output needs about {human_bytes(estimate.output)} in {folder} but "
                f"{human_bytes(free_out)} is free; free {human_bytes(estimate.output - free_out)} or write the "
                "output to another folder (-o)"
            )


_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is a full disk (ENOSPC, EDQUOT, SQLite's "disk is
    full", or ffmpeg's "No space left on device" in a message)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if mentions_disk_full(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def mentions_disk_full(text: str) -> bool:
    """Whether an error message says the disk is full (ffmpeg's, the OS's or SQLite's wording)."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in _FULL_TEXTS)


def disk_full_message(what: str, where: str | os.PathLike[str]) -> str:
    """The one line of a DiskFullError: what was being written where, how much is free, what to do."""
    try:
        free = f"{human_bytes(free_bytes(where))} free"
    except OSError:
        free = "free space unknown"
    return f"disk full while writing {what} to {where} ({free}); {DISK_FULL_ADVICE}"


def disk_full_error(exc: BaseException, what: str, where: str | os.PathLike[str]) -> DiskFullError | None:
    """A DiskFullError for ``exc`` when it is a full disk (``exc`` itself when it already is one), else None.
    Raise it ``from None``: its message is the whole story."""
    if isinstance(exc, DiskFullError):
        return exc
    if not isinstance(exc, Exception) or not is_disk_full(exc):  # never turn Ctrl-C or SystemExit into this
        return None
    error = DiskFullError(disk_full_message(what, where))
    error.errno = errno.ENOSPC
    return error


def raise_if_disk_full(exc: BaseException, what: str, where: str | os.PathLike[str]) -> None:
    """Raise the DiskFullError of :func:`disk_full_error` (``from None``) when ``exc`` is a full disk that is not one
    yet; return otherwise, so the caller re-raises ``exc`` as it is. Call it in an ``except`` block."""
    full = disk_full_error(exc, what, where)
    if full is not None and full is not exc:
        raise full from None


def audio_bits_per_second(path: str | os.PathLike[str]) -> float:
    """Sum of the bit rates of the audio streams of ``path`` (512 kbit/s for each one that does not say; the
    encode copies or transcodes them into the output). 0 when there is none or the file cannot be opened."""
    import av

    try:
        with av.open(str(path)) as container:
            return float(sum(stream.bit_rate or stream.codec_context.bit_rate or _AUDIO_FALLBACK_BITS_PER_SECOND
                             for stream in container.streams.audio))
    except (OSError, av.error.FFmpegError):
        return 0.0
