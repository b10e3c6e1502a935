"""Crop, upscale and resize one chunk: each frame's crop taken at native resolution with sub-pixel accuracy,
upscaled by a caller-given model callable in batches, resized to exactly the target and written as a chunk (the
crop boxes and the target come from stages.ops.reframe.crops)."""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import (
    ChunkWriter,
    count_frames,
    frame_dtype,
    read_frames,
    storage_depth,
)
from stages.media.pipelining import prefetch
from stages.ops.reframe.crops import (
    _EDGE_SLACK,
    ASPECT_TOLERANCE,
    CropBox,
    _check_target,
)
from stages.store.fsutil import atomic_output

log = logging.getLogger(__name__)

UpscaleFn = Callable[[list[np.ndarray]], list[np.ndarray]]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ReframedChunk:
    """What :func:`reframe_chunk` wrote: frames, output size, storage bit depth (8 or 16), upscale calls, time."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    model_calls: int
    seconds: float


def _check_frame(frame: np.ndarray, what: str) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype not in (np.uint8, np.uint16):
        raise ChunkError(f"reframe: {what} has shape {frame.shape} and dtype {frame.dtype}; give HxWx3 uint8 or "
                         "uint16 RGB frames")


def crop_frame(frame: np.ndarray, box: CropBox) -> np.ndarray:
    """The region ``box`` of ``frame`` at native resolution, with sub-pixel accuracy.

    The output is ``(round(box.height), round(box.width), 3)`` of the input dtype (uint8 or uint16). A pure
    scale + translation maps the float box exactly onto the output grid (scale ``round(w) / w``, about 1), sampled
    bicubically (OpenCV's 1/32-pixel interpolation grid), so a crop moving 0.3 px per frame moves smoothly; a box
    on whole pixels is copied exactly. Pixels beyond the frame's edge repeat the edge.

    Raises:
        ChunkError: ``frame`` is not ``HxWx3`` uint8/uint16.
        SettingsError: the box has a size of 0 or less, or is not finite.
    """
    _check_frame(frame, "the frame")
    values = (box.x, box.y, box.width, box.height)
    if not all(math.isfinite(v) for v in values) or box.width <= 0 or box.height <= 0:
        raise SettingsError(f"reframe: crop {box} is empty or not finite; give a positive, finite width and height")
    out_w, out_h = box.native_size
    sx, sy = box.width / out_w, box.height / out_h
    # Output pixel j's centre (j + 0.5 in output space) is source position x + (j + 0.5) * sx, i.e. OpenCV's
    # pixel-centre coordinate x + (j + 0.5) * sx - 0.5.
    matrix = np.array([[sx, 0.0, box.x + 0.5 * sx - 0.5], [0.0, sy, box.y + 0.5 * sy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(frame, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _resize_to(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` resized to ``width``x``height``: area averaging when shrinking, Lanczos otherwise; the values
    stay in the dtype's range (OpenCV saturates integer results)."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    interpolation = cv2.INTER_AREA if width <= w and height <= h else cv2.INTER_LANCZOS4
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def _check_upscaled(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
    if len(outputs) != len(inputs):
        raise ChunkError(f"reframe: the upscaler returned {len(outputs)} frames for {len(inputs)}; pass an upscale "
                         "callable that returns one frame per input frame")
    height, width = inputs[0].shape[:2]
    for frame in outputs:
        factor = frame.shape[0] // height if frame.ndim == 3 else 0
        if (frame.dtype != inputs[0].dtype or factor < 1 or frame.shape != (height * factor, width * factor, 3)):
            raise ChunkError(
                f"reframe: the upscaler turned {width}x{height} {inputs[0].dtype} frames into {frame.shape} "
                f"{frame.dtype}; pass an upscale callable that keeps the dtype and scales by a whole factor"
            )


def reframe_chunk(
    in_path: str | Path,
    out_path: str | Path,
    boxes: Sequence[CropBox],
    target: tuple[int, int],
    *,
    upscale: UpscaleFn | None,
    bit_depth: int = 8,
    batch: int = 4,
    progress: ProgressFn | None = None,
    pixel_aspect: float = 1.0,
) -> ReframedChunk:
    """Crop, upscale and resize every frame of a lossless chunk into a new chunk of ``target`` frames.

    Frame ``i`` of ``in_path`` is cropped to ``boxes[i]`` at native resolution (:func:`crop_frame`). Consecutive
    crops of the same native size go to ``upscale`` in batches of up to ``batch`` frames; ``upscale`` takes a list
    of ``hxwx3`` frames (same shape, the chunk's dtype) and returns them scaled by a whole factor in the same dtype
    (orchestration passes ``lambda frames: upscaler.upscale(frames, steps)``); None means no model. Each result
    is then resized to exactly ``target`` = ``(width, height)`` (area averaging when shrinking, Lanczos when
    enlarging, clipped to the dtype's range); when the target's aspect differs from the crop's display aspect (its
    width / height times ``pixel_aspect``, the source's sample aspect ratio), the picture is stretched (a warning is
    logged); the difference a non-square ``pixel_aspect`` makes is the correction to square pixels, not a stretch.
    Frames are written at ``bit_depth`` (8 -> uint8, above 8 -> uint16, as the
    chunk holds them) under a temporary name in ``out_path``'s folder and renamed at the end: on any failure
    nothing is left at ``out_path``.

    Raises:
        ChunkError: the chunk is unreadable or empty, its frame count differs from ``len(boxes)``, its frames are
            not of ``bit_depth``'s dtype, or ``upscale`` returned frames of another count, dtype or shape.
        SettingsError: an impossible ``target`` or ``batch``, or a box that reaches beyond the chunk's frames.
    """
    started = _time.perf_counter()
    target_w, target_h = _check_target(target)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise SettingsError(f"reframe: batch {batch!r} must be a whole number of at least 1; use 4")
    source, out = Path(in_path), Path(out_path)
    depth = storage_depth(bit_depth)
    dtype = np.dtype(frame_dtype(depth))
    total = len(boxes)
    if total == 0:
        raise ChunkError(f"reframe: no crop boxes for chunk {source.name}; plan one per frame with plan_crops")
    try:
        frames_in_chunk = count_frames(source)
    except Exception as exc:
        raise ChunkError(f"reframe: cannot read chunk {source} ({exc}); extract it again") from exc
    if frames_in_chunk != total:
        raise ChunkError(f"reframe: chunk {source.name} has {frames_in_chunk} frames but {total} crop boxes were "
                         "given; plan one box per frame of the chunk (plan_crops with its frame times)")
    shown = boxes[0].aspect * pixel_aspect
    if abs(target_w / target_h / shown - 1) > ASPECT_TOLERANCE:
        log.warning("reframe: the output %dx%d has aspect %.4f but the crop is shown as %.4f; the picture is stretched",
                    target_w, target_h, target_w / target_h, shown)
    frames = prefetch(read_frames(source), depth=max(2, batch * 2), name="reframe-decode")
    calls = done = 0
    pending: list[np.ndarray] = []

    def flush() -> None:
        nonlocal calls, done
        outputs = pending
        if upscale is not None:
            outputs = list(upscale(list(pending)))
            calls += 1
            _check_upscaled(pending, outputs)
        for image in outputs:
            writer.write(_resize_to(image, target_w, target_h))
        done += len(pending)
        pending.clear()
        if progress is not None:
            progress(done, total)

    try:
        with atomic_output(out) as tmp, ChunkWriter(tmp, target_w, target_h, bit_depth=depth) as writer:
            for index, frame in enumerate(frames):
                if index >= total:
                    raise ChunkError(f"reframe: chunk {source.name} has more frames than the {total} crop boxes; plan "
                                     "one box per frame of the chunk")
                if frame.dtype != dtype:
                    raise ChunkError(f"reframe: chunk {source.name} holds {frame.dtype} frames but bit_depth {bit_depth}"
                                     f" means {dtype}; pass the chunk's bit depth")
                box = boxes[index]
                height, width = frame.shape[:2]
                if (box.x < -_EDGE_SLACK or box.y < -_EDGE_SLACK or box.x + box.width > width + _EDGE_SLACK
                        or box.y + box.height > height + _EDGE_SLACK):
                    raise SettingsError(f"reframe: the crop of frame {index} ({box}) reaches beyond the chunk's "
                                        f"{width}x{height} frames; parse the keyframes with this video's frame size")
                crop = crop_frame(frame, box)
                if pending and (len(pending) >= batch or pending[0].shape != crop.shape):
                    flush()
                pending.append(crop)
            if pending:
                flush()
            if done != total:
                raise ChunkError(f"reframe: chunk {source.name} has {done} frames but {total} crop boxes were given; "
                                 "plan one box per frame of the chunk")
    finally:
        frames.close()
    seconds = _time.perf_counter() - started
    log.debug("reframe: %s: %d frames to %dx%d, %d upscale calls, %.2f s", source.name, done, target_w, target_h,
              calls, seconds)
    return ReframedChunk(frame_count=done, width=target_w, height=target_h, bit_depth=depth, model_calls=calls,
                         seconds=seconds)
