"""Temporal coherence: remove the frame-to-frame flicker an image upscaler adds, without ghosting.

An image super-resolution network sees one frame at a time, so the detail it invents (texture, grain, ringing,
edge contrast) changes from frame to frame even where the source does not: the video shimmers. This pass blends
each upscaled frame ``hr_t`` with the previous *output* frame brought onto it, only where that is safe:

``flow``
    Optical flow (OpenCV DIS, both ways) on the low-resolution source frames ``lr_{t-1}``, ``lr_t`` (cheap, and
    the source has no invented detail to mislead it), resized to the output size; the previous output
    ``out_{t-1}`` is warped onto frame ``t`` (bilinear) and clamped, per channel, to the mean plus or minus half
    a standard deviation of ``hr_t``'s 3x3 neighbourhood (variance clipping, as in temporal anti-aliasing: an
    old edge or colour cannot be painted where the current frame has nothing like it). A confidence mask keeps
    pixels where the source flow is forward-backward consistent and lands inside the frame (eroded by one
    source pixel), where the warped previous source matches the current source either absolutely or to within
    a few tenths of an output pixel of misalignment on edges and texture (residual over local gradient), and
    where the clamped history's locally averaged signed difference from ``hr_t`` is small (structure the model
    changed on its own shows at once). An output pixel whose source pixel fails gets no weight: the mask is
    upsampled as the smaller of its bilinear and nearest-neighbour resizes. ``out = hr*(1-w) + history*w`` with
    ``w = strength * mask``: the recursion is an exponential average along motion trajectories. See
    :mod:`stages.ops.cohere.flowblend`.
    Where it still gives up: pixels where the source pair itself disagrees under the flow (motion blur, parallax
    of out-of-focus backgrounds, water whose ripples move at other speeds than the flow); blending there would
    ghost, so the model's frame is kept.
    Measured (``python -m benchmarks.coherence_real``, strength 0.6; E_warp with the source pair's flow and
    occlusion mask, see :mod:`stages.quality.metrics`; "gap" = the model's E_warp minus a lanczos upscale's),
    realesr-general-x4v3: real clips downscaled from ../shared (the original as reference), car on asphalt x2 55%
    of the gap closed (+0.96 dB PSNR-Y), street with motion blur x2 19% (+0.73 dB); Vid4 x4 calendar 35%, city
    50% (+0.25, +0.31 dB); generated water, foliage, grass x2 56%, 52%, 48% (-0.11 to +0.23 dB). The pass it
    replaced closed 12-37% of those gaps. No change on occluded pixels, no ghost of a fast square; 0.16-0.26 s
    per 1920x1080 frame on 2 shared CPUs (docs/coherence.md).
``ema``
    No flow: ``out = a*out_{t-1} + (1-a)*hr`` with ``a = alpha * gate``, where the gate is 1 where the source
    did not change (largest ``|lr_t - lr_{t-1}|`` over R, G, B, dilated, upsampled, soft threshold) and 0 where
    it moved. Only static content is smoothed; cheaper than ``flow`` (no flow, no warp) but does nothing for
    panning shots (Vid4: E_warp -0 to -3%).
``none``
    Identity (one flag away: ``--temporal none``).
``auto``
    The default everywhere: :func:`choose_method` picks ``flow`` (``ema`` above 4K when memory is short).
``seedvr2``
    Listed so interfaces can show it disabled with :data:`SEEDVR2_UNAVAILABLE`; never runs.

State is the previous output frame and the previous source frame (or, for a frame without one, its stand-in:
see :data:`PROXY_LONG_SIDE`), both exactly as stored in chunk files, so a chunk started with
:meth:`TemporalFilter.from_state` from the previous chunk's last frames gives the same bytes as one pass over
the whole video. Caching stays valid as long as a coherent chunk's key includes the previous coherent chunk's
key (and the ``cohere`` entry of stages.store.versions). A scene cut resets the state; the caller says where cuts
are (a cut it misses is caught by the source tests: nothing is blended across it).

Frames are ``HxWx3`` RGB arrays, uint8 or uint16 (``lr`` may have another depth than ``hr``); all arithmetic is
float32 in [0, 1], rounded once to the output dtype. Settings: :mod:`stages.ops.cohere.settings`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import (
    frame_dtype,
    last_frame,
    read_frames,
    storage_depth,
)
from stages.media.pipelining import prefetch
from stages.ops.cohere.flowblend import blend, flow_step
from stages.ops.cohere.pixels import colour_change, resize_to, soft_below, to_float
from stages.ops.cohere.settings import (
    METHODS,
    RUNNABLE_METHODS,
    SEEDVR2_UNAVAILABLE,
    TemporalSettings,
    available_methods,
)
from stages.ops.writer import ChunkSink

log = logging.getLogger(__name__)

__all__ = [
    "AUTO_EMA_MIN_PIXELS",
    "EMA_BYTES_PER_PIXEL",
    "FLOW_BYTES_PER_PIXEL",
    "METHODS",
    "PROXY_LONG_SIDE",
    "SEEDVR2_UNAVAILABLE",
    "CoherentChunk",
    "TemporalFilter",
    "TemporalSettings",
    "available_methods",
    "choose_method",
    "cohere_chunk",
    "last_frame",
]

PROXY_LONG_SIDE = 480
"""Long side (pixels) of the stand-in for the source frame when none is given (frames made by interpolation):
the upscaled frame is downscaled (area) to it and flow is computed there. DIS at this size costs a few ms, and
the output's invented detail, which misleads flow, is averaged away. A fixed size (not the neighbouring source
frames' size) keeps the stand-in a function of its own frame, so chunk boundaries can resume exactly."""

# Memory model of one filter step, per output pixel: tracemalloc peak of a 1920x1080 step measured 79 B from a
# 480x270 source and 88 B from a 960x540 one (flow: hr, previous output and its warped, clamped copy as float RGB,
# the neighbourhood mean and spread, a blurred difference, the flow and remap grids, masks) and 31.5-33 B (ema);
# the state and the decoded frames add about 9 B (8-bit) to 18 B (16-bit).
FLOW_BYTES_PER_PIXEL = 100
EMA_BYTES_PER_PIXEL = 40
AUTO_MEMORY_HEADROOM = 4
"""auto wants this many times the per-step estimate free: decode/write queues hold frames too, and the model
(or the next stage) shares the machine."""
AUTO_EMA_MIN_PIXELS = 3840 * 2160
"""auto only falls back to ema above 4K UHD: up to 4K a flow step takes at most about 0.8 GB, which any machine
able to run an upscaler has, so memory is never a reason to give up flow there."""

ProgressFn = Callable[[int, int], None]


def choose_method(
    requested: str, device_kind: str, width: int, height: int, free_memory_bytes: int
) -> tuple[str, str]:
    """Resolve ``requested`` to a runnable method; returns ``(method, reason)`` for the run log.

    ``width``x``height`` is the output size. The pass runs on the CPU (OpenCV) whatever the model's device, so
    ``free_memory_bytes`` is the host memory available; ``device_kind`` only goes into the reason. ``auto``
    picks ``flow``; it picks ``ema`` only when the output is above 4K UHD (:data:`AUTO_EMA_MIN_PIXELS`) *and*
    free memory is below :data:`AUTO_MEMORY_HEADROOM` times flow's per-step estimate. It never picks ``none``:
    when even ema looks short of memory it still picks ema and says so.

    Raises:
        SettingsError: ``requested`` is unknown or seedvr2.
    """
    TemporalSettings(method=requested).validate()
    if requested != "auto":
        return requested, f"{requested} (requested)"
    pixels = width * height
    flow_need = FLOW_BYTES_PER_PIXEL * pixels * AUTO_MEMORY_HEADROOM
    where = f"{width}x{height} output, {free_memory_bytes / 2**30:.1f} GiB free, model on {device_kind}"
    if pixels <= AUTO_EMA_MIN_PIXELS or free_memory_bytes >= flow_need:
        return "flow", f"flow (auto: {where}; flow needs about {flow_need / 2**30:.1f} GiB)"
    ema_need = EMA_BYTES_PER_PIXEL * pixels * AUTO_MEMORY_HEADROOM
    note = "" if free_memory_bytes >= ema_need else f"; even ema wants {ema_need / 2**30:.1f} GiB, expect swapping"
    return "ema", (f"ema (auto: {where}; flow would need about {flow_need / 2**30:.1f} GiB, "
                   f"so motion-gated averaging instead{note})")


def _proxy_of(hr: np.ndarray) -> np.ndarray:
    """Stand-in for a missing source frame: ``hr`` area-downscaled to a long side of :data:`PROXY_LONG_SIDE`."""
    height, width = hr.shape[:2]
    long_side = max(width, height)
    if long_side <= PROXY_LONG_SIDE:
        return hr
    factor = PROXY_LONG_SIDE / long_side
    return cv2.resize(hr, (max(1, round(width * factor)), max(1, round(height * factor))),
                      interpolation=cv2.INTER_AREA)


class TemporalFilter:
    """Temporal coherence of one video, frame by frame, stateful across chunks (see the module docstring).

    Args:
        settings: a validated :class:`TemporalSettings` whose method is ``none``, ``ema`` or ``flow`` (resolve
            ``auto`` with :func:`choose_method` first).

    Raises:
        SettingsError: invalid settings, or ``auto``/``seedvr2``.
    """

    def __init__(self, settings: TemporalSettings) -> None:
        settings.validate()
        if settings.method not in RUNNABLE_METHODS:
            raise SettingsError(
                f"temporal: method {settings.method!r} must be resolved first; call choose_method() and pass "
                "the method it returns"
            )
        self.settings = settings
        self._prev_out: np.ndarray | None = None
        self._prev_lr: np.ndarray | None = None
        self.frames = 0
        self.resets = 0
        self.last_weight = 0.0
        """Mean blend weight of the previous output in the last frame (0 = passed through)."""

    @classmethod
    def from_state(
        cls,
        settings: TemporalSettings,
        prev_out: np.ndarray | None,
        prev_lr: np.ndarray | None = None,
        *,
        prev_hr: np.ndarray | None = None,
    ) -> TemporalFilter:
        """A filter that continues after a frame whose output was ``prev_out`` (``HxWx3``, as stored).

        That frame's analysis frame is ``prev_lr`` (its source frame, ``hxwx3``) when it had one; when it had
        none (an interpolated frame), pass its upscaled frame as ``prev_hr`` instead and the stand-in is derived
        from it exactly as :meth:`process` does. Either way the output is bit-identical to one pass over both
        chunks. With neither, the stand-in is derived from ``prev_out`` (close, not identical).
        ``from_state(settings, *filt.state())`` always continues exactly.
        """
        filt = cls(settings)
        if prev_out is None:
            return filt
        filt._prev_out = np.array(prev_out, copy=True)
        if prev_lr is not None:
            filt._prev_lr = np.array(prev_lr, copy=True)
        else:
            filt._prev_lr = _proxy_of(prev_hr if prev_hr is not None else filt._prev_out)
        return filt

    def state(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(previous output frame, previous source frame)``; ``(None, None)`` before the first frame or after
        a reset."""
        return self._prev_out, self._prev_lr

    def reset(self) -> None:
        """Forget the previous frame (at a scene cut): the next frame passes through unchanged."""
        if self._prev_out is not None:
            self.resets += 1
        self._prev_out = None
        self._prev_lr = None

    def process(self, hr: np.ndarray, lr: np.ndarray | None = None, *, cut: bool = False) -> np.ndarray:
        """The coherent version of ``hr``; updates the state.

        Args:
            hr: the upscaled frame, ``HxWx3`` uint8 or uint16.
            lr: the matching source frame, ``hxwx3`` uint8 or uint16 (any size up to ``hr``'s), or None when
                there is none (an interpolated frame): ``hr`` area-downscaled to a long side of
                :data:`PROXY_LONG_SIDE` stands in for it. When consecutive analysis frames differ in size, the
                previous one is resized to the current one.
            cut: ``hr`` is the first frame of a scene: the state is reset first, so it passes through.

        Returns:
            ``HxWx3`` array of ``hr``'s dtype.

        Raises:
            ValueError: ``hr`` is not ``HxWx3`` integer, or its size changed without a cut.
        """
        if hr.ndim != 3 or hr.shape[2] != 3 or not np.issubdtype(hr.dtype, np.integer):
            raise ValueError(f"temporal: frame of shape {hr.shape} and dtype {hr.dtype}; expected HxWx3 uint8/uint16")
        if cut:
            self.reset()
        if lr is None:
            lr = _proxy_of(hr)
        prev_out, prev_lr = self._prev_out, self._prev_lr
        if prev_out is not None and prev_out.shape != hr.shape:
            raise ValueError(
                f"temporal: frame size changed from {prev_out.shape[:2]} to {hr.shape[:2]} without a cut; "
                "pass cut=True at the first frame of the new size"
            )
        method = self.settings.method
        if method == "none" or prev_out is None or prev_lr is None:
            out = hr
            weight_mean = 0.0
        else:
            if prev_lr.shape[:2] != lr.shape[:2]:
                prev_lr = resize_to(prev_lr, lr.shape[1], lr.shape[0], cv2.INTER_AREA)
            if method == "ema":
                out, weight_mean = self._ema(hr, lr, prev_out, prev_lr)
            else:
                out, weight_mean = self._flow(hr, lr, prev_out, prev_lr)
        self.frames += 1
        self.last_weight = weight_mean
        if method != "none":
            self._prev_out = np.array(out, copy=True) if out is hr else out
            self._prev_lr = np.array(lr, copy=True)
        return out

    def _ema(self, hr: np.ndarray, lr: np.ndarray, prev_out: np.ndarray,
             prev_lr: np.ndarray) -> tuple[np.ndarray, float]:
        s = self.settings
        change = colour_change(to_float(lr), to_float(prev_lr))
        change = cv2.dilate(change, np.ones((3, 3), np.uint8))  # a moving edge also moves its neighbours
        gate = soft_below(change, s.motion_low, s.motion_high)
        weight = resize_to(gate, hr.shape[1], hr.shape[0]) * np.float32(s.ema_alpha)
        return blend(to_float(hr), to_float(prev_out), weight, hr.dtype), float(weight.mean())

    def _flow(self, hr: np.ndarray, lr: np.ndarray, prev_out: np.ndarray,
              prev_lr: np.ndarray) -> tuple[np.ndarray, float]:
        return flow_step(self.settings, hr, lr, prev_out, prev_lr)


@dataclass(frozen=True)
class CoherentChunk:
    """What :func:`cohere_chunk` did: frames written, output size and bit depth, wall time, and the mean blend
    weight of the previous output over the chunk's pixels and frames (0 = nothing blended)."""

    frame_count: int
    width: int
    height: int
    bit_depth: int
    seconds: float
    blended_fraction: float = 0.0


def _lockstep(hr_path: str | Path, lr_path: str | Path | None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    hr_frames = prefetch(read_frames(hr_path), name="temporal-decode")
    if lr_path is None:
        for hr in hr_frames:
            yield hr, None
        return
    lr_frames = prefetch(read_frames(lr_path), name="temporal-decode")
    hr_count = lr_count = 0
    while True:
        hr = next(hr_frames, None)
        lr = next(lr_frames, None)
        hr_count += hr is not None
        lr_count += lr is not None
        if hr is None or lr is None:
            if hr is not None or lr is not None:
                hr_count += sum(1 for _ in hr_frames)
                lr_count += sum(1 for _ in lr_frames)
                raise ChunkError(
                    f"temporal: upscaled chunk {hr_path} has {hr_count} frames but source chunk {lr_path} has "
                    f"{lr_count}; pass lr_path=None for chunks changed by interpolation, or delete both so they "
                    "are redone"
                )
            return
        yield hr, lr


def cohere_chunk(
    hr_path: str | Path,
    lr_path: str | Path | None,
    out_path: str | Path,
    filt: TemporalFilter,
    *,
    cuts_in_chunk: set[int] | frozenset[int] = frozenset(),
    bit_depth: int = 8,
    progress: ProgressFn | None = None,
    expected_frames: int | None = None,
) -> CoherentChunk:
    """Run ``filt`` over an upscaled chunk and write the coherent chunk to ``out_path``.

    Both chunk files are decoded in background threads and read in lockstep: frame ``i`` of ``hr_path`` (the
    upscaled chunk) with frame ``i`` of ``lr_path`` (its source chunk). ``lr_path=None`` when the chunk's frames
    do not map one-to-one to source frames (interpolation added frames): flow is then computed on downscaled
    copies of the upscaled frames. ``cuts_in_chunk`` holds the chunk-relative indices of frames that start a
    scene (``0`` when the chunk starts at a cut): the filter is reset there. ``filt`` carries its state in and
    out: seed it with :meth:`TemporalFilter.from_state` from the previous chunk's last frames (:func:`last_frame`
    of the previous coherent chunk, and of its source chunk, or with ``prev_hr=`` of its upscaled chunk when it
    had no source). The output is written to a temporary name and renamed at the end: on failure no file is
    left at ``out_path``.

    Raises:
        ChunkError: an input chunk is unreadable or empty, the two chunks' frame counts differ, or the count
            differs from ``expected_frames``.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial{out_path.suffix}")
    dtype = frame_dtype(bit_depth)
    sink = ChunkSink(tmp, bit_depth, name="cohere-write")
    done = 0
    blended = 0.0
    try:
        for index, (hr, lr) in enumerate(_lockstep(hr_path, lr_path)):
            if hr.dtype != dtype:
                raise ChunkError(
                    f"temporal: chunk {hr_path} holds {hr.dtype} frames, bit depth {bit_depth} expects "
                    f"{np.dtype(dtype)}; pass the upscaled chunk's bit depth"
                )
            out = filt.process(hr, lr, cut=index in cuts_in_chunk)
            blended += filt.last_weight
            sink.put((out,))
            done += 1
            if progress:
                progress(done, expected_frames or done)
        if done == 0:
            raise ChunkError(f"temporal: chunk {hr_path} has no frames; delete it so it is upscaled again")
        if expected_frames is not None and done != expected_frames:
            raise ChunkError(
                f"temporal: chunk {hr_path} has {done} frames, its manifest says {expected_frames}; "
                "delete it so it is upscaled again"
            )
        writer = sink.finish()
        tmp.replace(out_path)
    except BaseException:
        sink.abort()
        raise
    seconds = time.perf_counter() - started
    mean_weight = blended / done if done else math.nan
    log.debug("temporal: chunk %s: %d frames, %s, mean blend weight %.3f, %.2f s",
              hr_path, done, filt.settings.method, mean_weight, seconds)
    return CoherentChunk(
        frame_count=done,
        width=writer.width,
        height=writer.height,
        bit_depth=storage_depth(bit_depth),
        seconds=seconds,
        blended_fraction=mean_weight,
    )
