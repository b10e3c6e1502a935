"""Temporal coherence: remove the frame-to-frame flicker an image upscaler adds, without ghosting.

An image super-resolution network sees one frame at a time, so the detail it invents (texture, grain, ringing)
changes from frame to frame even where the source does not: the video shimmers. This pass blends each upscaled
frame ``hr_t`` with the previous *output* frame brought onto it, only where that is safe:

``flow``
    Optical flow (OpenCV DIS, both ways) on the low-resolution source frames ``lr_{t-1}``, ``lr_t`` (cheap, and
    the source has no invented detail to mislead it), resized to the output size with :func:`resize_flow`; the
    previous output ``out_{t-1}`` is warped onto frame ``t`` (bilinear). A confidence mask keeps pixels where
    the flow is forward-backward consistent and lands inside the frame, where the warped previous source matches
    the current source (flow failures), and where the warped previous output matches the current upscale, both
    in structure (local mean of the signed difference: a moving object the flow missed) and in detail (local
    mean of the absolute luma difference: texture the flow cannot align exactly). The mask is eroded by one
    source pixel, then eroded and smoothed at the output size so no weight leaks into rejected pixels: moving
    edges and disocclusions fall back to the current frame (no ghosting). ``out = hr*(1-w) + warp(out_{t-1})*w``
    with ``w = strength * mask``; the recursion makes this an exponential average along motion trajectories.
    Measured (strength 0.6; E_warp with the source pair's flow, see :mod:`stages.quality.metrics`): Vid4 x4 by
    realesr-animevideov3, E_warp -22% (calendar) and -63% (city) for +0.05 dB PSNR-Y; a panning photo with
    per-frame noise and gain flicker, -52% for +1.7 dB; a fast colour square: no ghost.
``ema``
    No flow: ``out = a*out_{t-1} + (1-a)*hr`` with ``a = alpha * gate``, where the gate is 1 where the source
    did not change (largest ``|lr_t - lr_{t-1}|`` over R, G, B, dilated, upsampled, soft threshold) and 0 where
    it moved. Only static content is smoothed; cheaper than ``flow`` (no flow, no warp) but does nothing for
    panning shots (Vid4: E_warp -0 to -3%).
``none``
    Identity.
``auto``
    :func:`choose_method` picks ``flow`` (``ema`` for very large outputs when memory is short).
``seedvr2``
    Listed so interfaces can show it disabled with :data:`SEEDVR2_UNAVAILABLE`; never runs.

State is the previous output frame and the previous source frame (or, for a frame without one, its stand-in:
see :data:`PROXY_LONG_SIDE`), both exactly as stored in chunk files, so a chunk started with
:meth:`TemporalFilter.from_state` from the previous chunk's last frames gives the same bytes as one pass over
the whole video. Caching stays valid as long as a coherent chunk's key includes the previous coherent chunk's
key (and the ``cohere`` entry of stages.store.versions). A scene cut resets the state; the caller says where cuts are.

Frames are ``HxWx3`` RGB arrays, uint8 or uint16 (``lr`` may have another depth than ``hr``); all arithmetic is
float32 in [0, 1], rounded once to the output dtype.
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
from stages.flow import DIS_PRESETS, consistency_mask, dis_flow, resize_flow, warp
from stages.media.chunkio import (
    frame_dtype,
    last_frame,
    read_frames,
    storage_depth,
)
from stages.media.pipelining import prefetch
from stages.ops.writer import ChunkSink
from stages.quality.metrics import luma

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

METHODS = ("none", "ema", "flow", "auto", "seedvr2")
RUNNABLE_METHODS = ("none", "ema", "flow")

SEEDVR2_UNAVAILABLE = (
    "SeedVR2 is a 3B/7B-parameter diffusion video restorer: it needs a large GPU (tens of GB) and weights this "
    "project cannot obtain or run yet; use flow"
)

PROXY_LONG_SIDE = 480
"""Long side (pixels) of the stand-in for the source frame when none is given (frames made by interpolation):
the upscaled frame is downscaled (area) to it and flow is computed there. DIS at this size costs a few ms, and
the output's invented detail, which misleads flow, is averaged away. A fixed size (not the neighbouring source
frames' size) keeps the stand-in a function of its own frame, so chunk boundaries can resume exactly."""

# Memory model of one filter step, per output pixel: tracemalloc peak of a 1920x1080 step from a 480x270
# source measured 68 B (flow: hr, previous output and its warped copy as float RGB, a blurred difference, the
# flow and remap grids, masks) and 31.5 B (ema); the state and the decoded frames add about 9 B (8-bit) to 18 B (16-bit).
FLOW_BYTES_PER_PIXEL = 80
EMA_BYTES_PER_PIXEL = 40
AUTO_MEMORY_HEADROOM = 4
"""auto wants this many times the per-step estimate free: decode/write queues hold frames too, and the model
(or the next stage) shares the machine."""
AUTO_EMA_MIN_PIXELS = 3840 * 2160
"""auto only falls back to ema above 4K UHD: up to 4K a flow step takes at most about 0.7 GB, which any machine
able to run an upscaler has, so memory is never a reason to give up flow there."""

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class TemporalSettings:
    """What decides the bytes of a coherent chunk (with the input chunks and the carried state).

    Args:
        method: one of :data:`METHODS`.
        strength: ``flow``: largest weight of the warped previous output (0..1, exclusive). 0.6 is the knee of
            a sweep over 0.4-0.8 (figures in the module docstring): 0.7 lowers E_warp a few points more but
            costs 0.3 dB on the panning photos and brings Vid4 city's flicker to the lanczos baseline's
            (ratio 0.99: smoothing more than a plain resize would be over-smoothing).
        ema_alpha: ``ema``: weight of the previous output on static pixels (0..1, exclusive).
        motion_low, motion_high: ``ema``: source change (largest absolute difference over R, G, B, in [0,1]
            units) below which a pixel counts as static (gate 1) and above which as moving (gate 0); linear in
            between.
        source_error_low, source_error_high: ``flow``: soft threshold on ``|warp(lr_{t-1}) - lr_t|`` (largest over
            R, G, B, as every change here) after a Gaussian blur of ``source_error_sigma`` source pixels (without
            the blur, sampling differences of fine texture reject most textured pixels: E_warp fell 5% instead of
            24% on Vid4 calendar). Without this test PSNR fell 0.5-0.8 dB on the panning photos.
        output_error_low, output_error_high: ``flow``: soft threshold on the signed difference
            ``warp(out_{t-1}) - hr_t`` averaged by a Gaussian of ``output_error_sigma`` source pixels, largest
            absolute value over R, G, B: a change only the model made (the source did not change there), which
            must show at once rather than fade in.
        detail_error_low, detail_error_high: ``flow``: soft threshold on ``|Y(warp(out_{t-1})) - Y(hr_t)|``
            averaged by the same Gaussian: fine detail the flow does not align exactly (blending would blur
            it). Without it PSNR on a fast pan fell 0.6 dB more.
        flow_preset: DIS preset (see :data:`stages.flow.DIS_PRESETS`).
    """

    method: str = "none"
    strength: float = 0.6
    ema_alpha: float = 0.5
    motion_low: float = 0.01
    motion_high: float = 0.04
    source_error_low: float = 0.02
    source_error_high: float = 0.06
    output_error_low: float = 0.03
    output_error_high: float = 0.08
    detail_error_low: float = 0.04
    detail_error_high: float = 0.10
    output_error_sigma: float = 0.5
    source_error_sigma: float = 0.7
    flow_preset: str = "medium"

    def validate(self) -> None:
        """Raises SettingsError for an unknown or unavailable method or impossible parameters."""
        if self.method == "seedvr2":
            raise SettingsError(f"temporal: seedvr2 is not available: {SEEDVR2_UNAVAILABLE}")
        if self.method not in METHODS:
            raise SettingsError(
                f"temporal: unknown method {self.method!r}; use one of {', '.join(m for m in METHODS if m != 'seedvr2')}"
            )
        if not 0.0 <= self.strength < 1.0:
            raise SettingsError(f"temporal: strength {self.strength} must be in [0, 1); use 0.6")
        if not 0.0 <= self.ema_alpha < 1.0:
            raise SettingsError(f"temporal: ema_alpha {self.ema_alpha} must be in [0, 1); use 0.5")
        for name in ("motion", "source_error", "output_error", "detail_error"):
            low, high = getattr(self, f"{name}_low"), getattr(self, f"{name}_high")
            if not 0.0 <= low < high:
                raise SettingsError(f"temporal: {name}_low {low} must be >= 0 and below {name}_high {high}")
        for name, default in (("output_error_sigma", 0.5), ("source_error_sigma", 0.7)):
            if getattr(self, name) < 0:
                raise SettingsError(f"temporal: {name} {getattr(self, name)} is negative; use {default}")
        if self.flow_preset not in DIS_PRESETS:
            raise SettingsError(
                f"temporal: unknown flow preset {self.flow_preset!r}; use one of {', '.join(DIS_PRESETS)}"
            )


def available_methods() -> dict[str, str | None]:
    """Every method with ``None`` when it can run here, else the reason it cannot (for disabled UI choices)."""
    return {method: (SEEDVR2_UNAVAILABLE if method == "seedvr2" else None) for method in METHODS}


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


def _to_float(frame: np.ndarray) -> np.ndarray:
    """``HxWxC`` integer frame -> new float32 array in [0, 1] (float frames are copied as float32)."""
    if np.issubdtype(frame.dtype, np.integer):
        return np.multiply(frame, np.float32(1.0 / np.iinfo(frame.dtype).max), dtype=np.float32)
    return frame.astype(np.float32)


def _from_float(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 ``frame`` in [0, 1] rounded to integer ``dtype``; ``frame`` is overwritten (scratch)."""
    peak = float(np.iinfo(dtype).max)
    np.multiply(frame, np.float32(peak), out=frame)
    frame += np.float32(0.5)
    np.clip(frame, 0, peak, out=frame)
    return frame.astype(dtype)


def _soft_below(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 where ``values <= low``, 0 where ``values >= high``, linear in between (float32)."""
    return np.clip((high - values) * np.float32(1.0 / (high - low)), 0.0, 1.0).astype(np.float32, copy=False)


def _change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel change between two float ``HxWx3`` frames: the largest absolute difference over R, G and B
    (``HxW`` float32), so a change of colour at equal brightness counts too."""
    return _channel_max(cv2.absdiff(a, b))


def _channel_max(a: np.ndarray) -> np.ndarray:
    """``HxW`` largest of the three channels of ``HxWx3`` ``a`` (several times faster than ``a.max(axis=2)``)."""
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def _resize(image: np.ndarray, width: int, height: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=interpolation)


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
                prev_lr = _resize(prev_lr, lr.shape[1], lr.shape[0], cv2.INTER_AREA)
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

    def _blend(self, hr_f: np.ndarray, other: np.ndarray, weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """``hr*(1-w) + other*w`` rounded to ``dtype``; ``hr_f`` and ``other`` are float32 ``HxWx3`` in [0, 1]
        (``other`` is overwritten: scratch), ``weight`` ``HxW`` float32."""
        np.subtract(other, hr_f, out=other)
        other *= weight[..., None]
        other += hr_f
        return _from_float(other, dtype)

    def _ema(self, hr: np.ndarray, lr: np.ndarray, prev_out: np.ndarray,
             prev_lr: np.ndarray) -> tuple[np.ndarray, float]:
        s = self.settings
        change = _change(_to_float(lr), _to_float(prev_lr))
        change = cv2.dilate(change, np.ones((3, 3), np.uint8))  # a moving edge also moves its neighbours
        gate = _soft_below(change, s.motion_low, s.motion_high)
        weight = _resize(gate, hr.shape[1], hr.shape[0]) * np.float32(s.ema_alpha)
        return self._blend(_to_float(hr), _to_float(prev_out), weight, hr.dtype), float(weight.mean())

    def _flow(self, hr: np.ndarray, lr: np.ndarray, prev_out: np.ndarray,
              prev_lr: np.ndarray) -> tuple[np.ndarray, float]:
        s = self.settings
        height, width = hr.shape[:2]
        lh, lw = lr.shape[:2]
        # flow on the source: cur -> prev brings the previous frame onto the current one (backward warp)
        flow_cp = dis_flow(lr, prev_lr, s.flow_preset)
        flow_pc = dis_flow(prev_lr, lr, s.flow_preset)
        trusted = consistency_mask(flow_cp, flow_pc).astype(np.float32)
        gx, gy = np.meshgrid(np.arange(lw, dtype=np.float32), np.arange(lh, dtype=np.float32))
        tx, ty = gx + flow_cp[..., 0], gy + flow_cp[..., 1]
        trusted *= ((tx >= 0) & (tx <= lw - 1) & (ty >= 0) & (ty <= lh - 1)).astype(np.float32)
        lr_prev, lr_cur = _to_float(prev_lr), _to_float(lr)
        if s.source_error_sigma > 0:  # sampling/aliasing differences of fine texture are not a flow failure
            lr_prev = cv2.GaussianBlur(lr_prev, (0, 0), s.source_error_sigma)
            lr_cur = cv2.GaussianBlur(lr_cur, (0, 0), s.source_error_sigma)
        trusted *= _soft_below(_change(warp(lr_prev, flow_cp), lr_cur), s.source_error_low, s.source_error_high)
        trusted = cv2.erode(trusted, np.ones((3, 3), np.uint8))  # stop short of occlusion boundaries
        mask = _resize(trusted, width, height)
        scale = max(width / lw, height / lh)
        # bring the previous output onto this frame and compare it with the current upscale twice, both locally
        # averaged so that the model's per-frame noise (what should be smoothed) does not reject by itself:
        # the averaged signed difference (per channel) shows structure the flow missed (a moving object, new
        # content: ghosting); the averaged absolute luma difference shows detail the flow does not align
        # exactly (blending it would blur it)
        hr_f = _to_float(hr)
        warped = warp(_to_float(prev_out), resize_flow(flow_cp, width, height))
        sigma = max(s.output_error_sigma * scale, 0.5)
        signed = cv2.GaussianBlur(cv2.subtract(warped, hr_f), (0, 0), sigma)
        mask *= _soft_below(_channel_max(np.abs(signed, out=signed)), s.output_error_low, s.output_error_high)
        detail = cv2.GaussianBlur(cv2.absdiff(luma(warped), luma(hr_f)), (0, 0), sigma)
        mask *= _soft_below(detail, s.detail_error_low, s.detail_error_high)
        # smooth the mask without spreading weight into rejected pixels: erode by the blur's reach first
        smooth = max(scale / 2, 0.5)
        reach = math.ceil(2 * smooth)
        mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)), (0, 0), smooth)
        weight = mask * np.float32(s.strength)
        return self._blend(hr_f, warped, weight, hr.dtype), float(weight.mean())


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
