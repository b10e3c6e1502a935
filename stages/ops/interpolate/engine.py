"""Frame interpolation: settings, the output timing plan, pair interpolators and the chunk stage.

Frames are ``HxWx3`` RGB arrays, ``uint8`` (8-bit chunks) or ``uint16`` (16-bit chunks). Three layers:

* **Timing** (pure functions): :func:`plan_output_frames` maps a constant output rate onto the real source
  timestamps (VFR included), never interpolating across a scene cut; :func:`find_duplicates` finds repeated
  frames (animation on twos, pulldown) so they can be dropped from the timeline; :func:`chunk_output_frames`
  splits the plan along the source chunks so the joined chunks are exactly the whole-video plan.
* **Pair interpolators** share one interface, ``interpolate(a, b, times) -> frames``: :class:`FlowInterpolator`
  (DIS optical flow, forward splatting, occlusion-aware blend; no trained weights), :class:`BlendInterpolator`
  (cross-fade baseline) and :class:`MinterpolateInterpolator` (ffmpeg ``minterpolate`` baseline). RIFE lives in
  ``stages/models/rife`` and plugs in through :func:`make_interpolator`'s ``rife_factory``.
* **The chunk stage** :func:`interpolate_chunk` streams one lossless chunk and writes the planned output frames.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import cv2
import numpy as np

from stages.errors import ChunkError, InputError, SettingsError
from stages.flow import (
    DIS_PRESETS,
    consistency_mask,
    resize_flow,
    to_gray8,
    warp,
)
from stages.media.chunkio import ChunkWriter, read_frames, storage_depth
from stages.media.ffmpeg import run_ffmpeg
from stages.media.pipelining import prefetch
from stages.store.fsutil import atomic_output
from stages.store.versions import stage_version

logger = logging.getLogger(__name__)

__all__ = [
    "CODE_VERSION",
    "DEFAULT_DEDUP_THRESHOLD",
    "MAX_OUTPUT_FPS",
    "METHODS",
    "SUPPORTED_FACTORS",
    "BlendInterpolator",
    "FlowInterpolator",
    "InterpolatedChunk",
    "InterpolationSettings",
    "Interpolator",
    "MinterpolateInterpolator",
    "OutputFrame",
    "choose_method",
    "chunk_output_frames",
    "find_duplicates",
    "interpolate_chunk",
    "make_interpolator",
    "minterpolate_video",
    "plan_output_frames",
    "rational_fps",
    "timeline_seconds",
]

CODE_VERSION = stage_version("interpolate")  # part of the interpolators' keys
METHODS = ("none", "auto", "rife", "flow", "blend", "minterpolate")
SUPPORTED_FACTORS = (2, 4, 8)
MAX_OUTPUT_FPS = Fraction(120)
DEFAULT_DEDUP_THRESHOLD = 0.002
DEFAULT_MAX_DUPLICATE_RUN = 3
DEFAULT_SNAP_SECONDS = 0.0005
_REGULAR_GRID_TOLERANCE_SECONDS = 0.001
_NTSC_BASES = (24, 25, 30, 48, 50, 60, 72, 90, 96, 100, 120)

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------------- settings


def rational_fps(fps: float | Fraction | str) -> Fraction:
    """An exact frame rate: ``23.976...`` -> ``24000/1001``, ``29.97`` -> ``30000/1001``, ``60.0`` -> ``60``.

    Fractions, ints and ``"p/q"`` strings are taken as they are. A float within 0.002 of ``n*1000/1001`` (an
    NTSC rate) or of an integer snaps to it; anything else becomes the nearest fraction with a denominator up
    to 1001.

    Raises:
        SettingsError: the rate is not a positive finite number.
    """
    try:
        if isinstance(fps, Fraction | int):
            value = Fraction(fps)
        elif isinstance(fps, str):
            value = Fraction(fps.strip())
        else:
            number = float(fps)
            if not math.isfinite(number):
                raise ValueError(number)
            value = _snap_float_fps(number)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise SettingsError(f"interpolate: frame rate {fps!r} is not a number; give e.g. 60 or 60000/1001") from exc
    if value <= 0:
        raise SettingsError(f"interpolate: frame rate {fps!r} is not positive; give e.g. 60 or 60000/1001")
    return value


def _snap_float_fps(number: float) -> Fraction:
    if abs(number - round(number)) < 0.002:
        return Fraction(round(number))
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(number - float(ntsc)) < 0.002:
            return ntsc
    return Fraction(number).limit_denominator(1001)


def _fmt_fps(fps: Fraction) -> str:
    text = f"{float(fps):.3f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class InterpolationSettings:
    """What decides the bytes of an interpolated chunk (besides the interpolator's weights and device).

    ``method``: one of :data:`METHODS` (``"auto"`` is resolved with :func:`choose_method`). Exactly one of
    ``factor`` (2, 4 or 8 times the source rate) and ``target_fps`` (an exact rate, e.g. ``Fraction(60)``) is
    set unless the method is ``"none"``. ``dedup`` drops repeated frames (mean absolute luma difference below
    ``dedup_threshold`` of full scale, see :func:`find_duplicates`) before planning. ``flow_preset`` is the
    DIS preset of the flow method.
    """

    method: str = "none"
    factor: int | None = None
    target_fps: Fraction | None = None
    dedup: bool = False
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    flow_preset: str = "medium"

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    def validate(self, source_fps: Fraction | float | str) -> Fraction:
        """Check the settings against a source rate and return the output rate (see :meth:`output_fps`).

        Raises:
            SettingsError: unknown method or preset, factor and target rate both or neither set, a factor
                other than 2/4/8, a target below the source rate, an output above 120 fps, a bad threshold.
        """
        source = rational_fps(source_fps)
        if self.method not in METHODS:
            raise SettingsError(f"interpolate: unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.flow_preset not in DIS_PRESETS:
            raise SettingsError(
                f"interpolate: unknown flow preset {self.flow_preset!r}; use one of {', '.join(DIS_PRESETS)}"
            )
        if not 0 < self.dedup_threshold < 1:
            raise SettingsError(
                f"interpolate: dedup threshold {self.dedup_threshold} is outside (0, 1); use about "
                f"{DEFAULT_DEDUP_THRESHOLD}"
            )
        if self.method == "none":
            if self.factor is not None or self.target_fps is not None:
                raise SettingsError(
                    "interpolate: a factor or target fps is set but the method is none; pick a method "
                    "(--interp-method auto) or drop --interpolate/--fps"
                )
            return source
        if (self.factor is None) == (self.target_fps is None):
            which = "both" if self.factor is not None else "neither"
            raise SettingsError(
                f"interpolate: {which} a factor and a target fps are set; give one, e.g. --interpolate 2 or --fps 60"
            )
        if self.factor is not None:
            if self.factor not in SUPPORTED_FACTORS:
                raise SettingsError(f"interpolate: factor {self.factor} is not supported; use 2, 4 or 8")
            out = source * self.factor
            if out > MAX_OUTPUT_FPS:
                fits = [f for f in SUPPORTED_FACTORS if source * f <= MAX_OUTPUT_FPS]
                fix = f"use --interpolate {fits[-1]} or --fps 120" if fits else "use --fps 120"
                raise SettingsError(
                    f"interpolate: {_fmt_fps(source)} fps x{self.factor} = {_fmt_fps(out)} fps is above the "
                    f"120 fps limit; {fix}"
                )
            return out
        out = rational_fps(self.target_fps)  # type: ignore[arg-type]
        if out > MAX_OUTPUT_FPS:
            raise SettingsError(f"interpolate: --fps {_fmt_fps(out)} is above the 120 fps limit; use --fps 120")
        if out < source:
            raise SettingsError(
                f"interpolate: --fps {_fmt_fps(out)} is below the source's {_fmt_fps(source)} fps; interpolation "
                f"only adds frames, use --fps {_fmt_fps(source)} or more"
            )
        return out

    def output_fps(self, source_fps: Fraction | float | str) -> Fraction:
        """The exact output rate: the source rate (method none), ``source * factor``, or ``target_fps``.

        ``24000/1001`` x2 is ``48000/1001``; ``--fps 60`` is exactly ``60``. Raises like :meth:`validate`.
        """
        return self.validate(source_fps)


def choose_method(requested: str, rife_available: bool, device_kind: str) -> tuple[str, str]:
    """Resolve ``requested`` into the method to run and a one-line reason for the log.

    ``"auto"`` picks RIFE whenever its weights are present, on any device: it is the better interpolator,
    and even on a CPU (about a second per 1080p frame) it costs less than the AI upscaling it follows; without
    weights it picks ``"flow"``, which needs none. Other methods are returned as they are.

    Raises:
        SettingsError: unknown method, or ``"rife"`` requested without its weights.
    """
    if requested not in METHODS:
        raise SettingsError(f"interpolate: unknown method {requested!r}; use one of {', '.join(METHODS)}")
    if requested == "rife" and not rife_available:
        raise SettingsError(
            "interpolate: RIFE weights are not available; download them (vup models download) or use "
            "--interp-method flow"
        )
    if requested != "auto":
        return requested, f"{requested} as requested"
    if rife_available:
        if device_kind == "cpu":
            return "rife", "auto: RIFE weights present; running on the CPU, which is slow but still the best quality"
        return "rife", f"auto: RIFE weights present and a {device_kind} device"
    return "flow", "auto: no RIFE weights; using optical-flow interpolation (no weights needed)"


# --------------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class OutputFrame:
    """Output frame ``index`` at ``time`` seconds: frame ``a`` when ``t == 0`` (then ``b == a``), else the
    frame at fraction ``t`` in (0, 1) of the way from source frame ``a`` to source frame ``b``."""

    index: int
    time: float
    a: int
    b: int
    t: float

    @property
    def is_copy(self) -> bool:
        return self.t == 0.0


def timeline_seconds(
    pts: Sequence[int] | np.ndarray,
    time_base: Fraction,
    end_pts: int,
    *,
    nominal_fps: Fraction | None = None,
) -> tuple[np.ndarray, float]:
    """Frame times in seconds from the first frame, and the end time of the last frame.

    ``pts`` are the source pts in presentation order (``stages.media.probe.frame_timestamps``), ``end_pts`` the pts
    just after the last frame (``VideoInfo.end_pts``). With ``nominal_fps`` given, the times snap to the exact
    grid ``k / nominal_fps`` when every timestamp (and the end) lies within 1 ms of it: containers with a
    millisecond time base store 23.976 fps as 0, 42, 83, 125 ms..., and the exact grid lets integer factors copy
    every source frame instead of interpolating at ``t = 0.01``. A VFR source stays on its real timestamps.

    Raises:
        InputError: ``pts`` is empty, not increasing, or ``end_pts`` is not after the last pts.
    """
    values = np.asarray(pts, dtype=np.int64)
    if values.ndim != 1 or len(values) == 0:
        raise InputError("interpolate: no frame timestamps; probe the video first, it has no frames")
    if np.any(np.diff(values) <= 0) or end_pts <= values[-1]:
        raise InputError("interpolate: frame timestamps are not increasing; pass them in presentation order")
    base = float(Fraction(time_base))
    times = (values - values[0]).astype(np.float64) * base
    end = float(end_pts - values[0]) * base
    if nominal_fps is not None:
        step = 1.0 / float(Fraction(nominal_fps))
        grid = np.arange(len(values), dtype=np.float64) * step
        grid_end = len(values) * step
        if (np.max(np.abs(grid - times)) <= _REGULAR_GRID_TOLERANCE_SECONDS
                and abs(grid_end - end) <= _REGULAR_GRID_TOLERANCE_SECONDS):
            return grid, grid_end
    return times, end


def plan_output_frames(
    source_times: Sequence[float] | np.ndarray,
    end_time: float,
    out_fps: Fraction,
    cuts: Sequence[int] = (),
    duplicates: Collection[int] | None = None,
    *,
    keep: Iterable[int] = (),
    snap_seconds: float = DEFAULT_SNAP_SECONDS,
) -> list[OutputFrame]:
    """The output frames of a whole video at a constant ``out_fps``.

    ``source_times`` are the seconds of each source frame (increasing, any spacing: VFR works), ``end_time``
    the end of the last frame. Output frame ``n`` is at ``source_times[0] + n / out_fps`` for
    ``n < round((end_time - source_times[0]) * out_fps)`` (at least one), so the output lasts as long as the
    input within half an output frame. Frames in ``duplicates`` are dropped from the timeline first, except
    frame 0, scene cuts and ``keep`` (pass the chunk starts, so every chunk's first frame stays a key frame).
    Each output time then takes the bracketing kept frames ``a <= time < b`` and ``t = (time - time_a) /
    (time_b - time_a)``:

    * within ``snap_seconds`` of ``time_a`` (or ``time_b``) the frame is copied (``t = 0``, ``a = b``), so
      integer factors copy every source frame exactly;
    * if a scene cut lies in ``(a, b]`` nothing is interpolated: the nearer frame is copied (``t < 0.5``: ``a``);
    * after the last frame, the last frame is copied.

    Raises:
        InputError: empty or non-increasing ``source_times``, or ``end_time`` not after the last one.
        SettingsError: ``out_fps`` not positive.
    """
    times = np.asarray(source_times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0:
        raise InputError("interpolate: no source frame times; probe the video first, it has no frames")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise InputError("interpolate: source frame times are not strictly increasing; pass them in presentation order")
    if not math.isfinite(end_time) or end_time <= times[-1]:
        raise InputError(
            f"interpolate: end time {end_time} is not after the last frame ({times[-1]}); pass the end of the last frame"
        )
    fps = Fraction(out_fps)
    if fps <= 0:
        raise SettingsError(f"interpolate: output rate {out_fps} is not positive; use e.g. 60")
    count = len(times)
    cut_array = np.asarray(sorted({int(c) for c in cuts if 0 < int(c) < count}), dtype=np.int64)
    protected = {0, *(int(c) for c in cut_array), *(int(k) for k in keep)}
    dropped = {int(d) for d in (duplicates or ()) if 0 <= int(d) < count} - protected
    kept = np.asarray([i for i in range(count) if i not in dropped], dtype=np.int64)
    kept_times = times[kept]

    start = float(times[0])
    total = max(1, math.floor((end_time - start) * float(fps) + 0.5))
    out_times = start + np.arange(total, dtype=np.float64) * fps.denominator / fps.numerator
    pos = np.clip(np.searchsorted(kept_times, out_times, side="right") - 1, 0, len(kept) - 1)
    has_next = pos + 1 < len(kept)
    next_pos = np.minimum(pos + 1, len(kept) - 1)
    a_idx, b_idx = kept[pos], kept[next_pos]
    ta, tb = kept_times[pos], kept_times[next_pos]
    span = np.where(has_next, tb - ta, 1.0)
    frac = np.where(has_next, (out_times - ta) / span, 0.0)
    # a cut c in (a, b] means b starts a new scene
    cut_between = np.zeros(total, dtype=bool)
    if len(cut_array):
        first_cut_after_a = np.searchsorted(cut_array, a_idx, side="right")
        in_range = first_cut_after_a < len(cut_array)
        cut_between = in_range & (cut_array[np.minimum(first_cut_after_a, len(cut_array) - 1)] <= b_idx)
    snap_a = ~has_next | (out_times - ta <= snap_seconds) | (frac <= 1e-9)
    snap_b = has_next & ~snap_a & ((tb - out_times <= snap_seconds) | (frac >= 1 - 1e-9))
    nearer_b = has_next & ~snap_a & ~snap_b & cut_between & (frac >= 0.5)
    copy_a = snap_a | (cut_between & ~snap_b & ~nearer_b)
    copy_b = snap_b | nearer_b

    plan: list[OutputFrame] = []
    for n in range(total):
        if copy_a[n]:
            plan.append(OutputFrame(n, float(out_times[n]), int(a_idx[n]), int(a_idx[n]), 0.0))
        elif copy_b[n]:
            plan.append(OutputFrame(n, float(out_times[n]), int(b_idx[n]), int(b_idx[n]), 0.0))
        else:
            plan.append(OutputFrame(n, float(out_times[n]), int(a_idx[n]), int(b_idx[n]), float(frac[n])))
    return plan


def find_duplicates(
    frames: Iterable[np.ndarray],
    threshold: float = DEFAULT_DEDUP_THRESHOLD,
    *,
    max_run: int = DEFAULT_MAX_DUPLICATE_RUN,
    analysis_width: int = 256,
) -> set[int]:
    """Indices of frames that repeat the frame before them (never 0), Flowframes-style.

    ``frames`` are ``HxWx3`` RGB (any integer depth) or ``HxW`` grey frames in order; each is shrunk to
    ``analysis_width`` pixels wide (averaging away most encoding noise) and turned into luma. Frame ``i`` is a
    duplicate when the mean absolute luma difference, as a fraction of full scale, between it and the last
    non-duplicate frame is below ``threshold``. Comparing with the last kept frame (rather than with frame ``i - 1``) keeps a slow pan or
    fade from being dropped frame by frame. The default 0.002 (half an 8-bit level) is above the noise of a
    lossy re-encode of a repeated frame and below real motion. Runs of more than ``max_run`` consecutive
    duplicates are a real still shot, not a repeated animation frame (twos, threes) or pulldown, and are kept:
    dropping them would spread the next motion over the whole still.

    Raises:
        SettingsError: ``threshold`` outside (0, 1) or ``max_run`` < 1.
    """
    if not 0 < threshold < 1:
        raise SettingsError(f"interpolate: dedup threshold {threshold} is outside (0, 1); use about 0.002")
    if max_run < 1:
        raise SettingsError(f"interpolate: max duplicate run {max_run} must be at least 1; use 3")
    marked: list[bool] = []
    reference: np.ndarray | None = None
    for frame in frames:
        grey = _small_luma(frame, analysis_width)
        duplicate = (reference is not None and reference.shape == grey.shape
                     and float(np.mean(np.abs(grey - reference))) < threshold)
        if not duplicate:
            reference = grey
        marked.append(bool(duplicate))
    result: set[int] = set()
    run: list[int] = []
    for index, duplicate in enumerate([*marked, False]):
        if duplicate:
            run.append(index)
            continue
        if 0 < len(run) <= max_run:
            result.update(run)
        run = []
    return result


def _small_luma(frame: np.ndarray, width: int) -> np.ndarray:
    """``HxW`` float32 luma in [0, 1] (BT.709) of an RGB or grey frame, area-shrunk to at most ``width`` wide."""
    peak = float(np.iinfo(frame.dtype).max) if np.issubdtype(frame.dtype, np.integer) else 1.0
    image = frame.astype(np.float32) / peak
    height, full_width = image.shape[:2]
    if full_width > width:
        image = cv2.resize(image, (width, max(1, round(height * width / full_width))), interpolation=cv2.INTER_AREA)
    if image.ndim == 3:
        image = cv2.transform(image, np.array([[0.2126, 0.7152, 0.0722]], dtype=np.float32))
    return image.reshape(image.shape[0], image.shape[1])


def chunk_output_frames(plan: Sequence[OutputFrame], chunk_starts: Sequence[int]) -> list[list[OutputFrame]]:
    """Split a whole-video plan along the source chunks.

    ``chunk_starts`` is the source index of each chunk's first frame (increasing, the first is 0). An output
    frame belongs to the chunk that holds its ``a`` frame; the last pairs of a chunk have the next chunk's
    first frame as ``b`` (``interpolate_chunk`` gets it as ``next_first_frame``), so concatenating the chunks'
    outputs gives ``plan`` exactly, with no missing or doubled frame.

    Raises:
        ChunkError: ``chunk_starts`` does not start at 0 or is not increasing, or an output frame pairs a frame
            with one beyond the next chunk's first frame (pass the chunk starts as ``keep`` to
            :func:`plan_output_frames` when dropping duplicates).
    """
    starts = [int(s) for s in chunk_starts]
    if not starts or starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        raise ChunkError(f"interpolate: chunk starts {starts[:5]}... must begin at 0 and increase; pass the "
                         "start_frame of each ChunkSpec in order")
    out: list[list[OutputFrame]] = [[] for _ in starts]
    for frame in plan:
        chunk = bisect.bisect_right(starts, frame.a) - 1
        limit = starts[chunk + 1] if chunk + 1 < len(starts) else None
        if limit is not None and frame.b > limit:
            raise ChunkError(
                f"interpolate: output frame {frame.index} pairs frame {frame.a} with {frame.b}, beyond the first "
                f"frame {limit} of the next chunk; pass the chunk starts as keep= to plan_output_frames"
            )
        out[chunk].append(frame)
    return out


# --------------------------------------------------------------------------------------------------- interpolators


@runtime_checkable
class Interpolator(Protocol):
    """Makes frames between two frames.

    ``interpolate(a, b, times)``: ``a`` and ``b`` are ``HxWx3`` frames of one dtype (uint8 or uint16) and
    shape; ``times`` are fractions strictly inside (0, 1); returns one frame per time, same dtype and shape.
    The interpolators here also carry ``name`` (for logs) and ``key`` (the method and every parameter that
    changes its output, for the chunk store); :func:`interpolate_chunk` needs only ``interpolate``.
    """

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]: ...


def _check_pair(a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> None:
    if a.shape != b.shape or a.dtype != b.dtype or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(
            f"interpolate: frames of shape {a.shape} {a.dtype} and {b.shape} {b.dtype} cannot be paired; "
            "pass two HxWx3 frames of one size and dtype"
        )
    if a.dtype not in (np.uint8, np.uint16):
        raise InputError(f"interpolate: frames of dtype {a.dtype} are not supported; pass uint8 or uint16")
    for t in times:
        if not 0 < t < 1:
            raise SettingsError(f"interpolate: time {t} is outside (0, 1); copy the source frame instead")


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    peak = float(np.iinfo(dtype).max)
    return np.clip(image + 0.5, 0, peak).astype(dtype)


class BlendInterpolator:
    """Linear cross-fade ``(1 - t) a + t b``: the baseline every motion-compensated method must beat."""

    name = "blend"

    @property
    def key(self) -> str:
        return "blend"

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        _check_pair(a, b, times)
        fa, fb = a.astype(np.float32), b.astype(np.float32)
        return [_to_dtype(fa * (1 - t) + fb * t, a.dtype) for t in times]


class FlowInterpolator:
    """Optical-flow interpolation without trained weights (DIS flow, forward splatting, occlusion-aware blend).

    For a pair ``a``, ``b`` (computed once for all times):

    1. DIS flow both ways on 8-bit luma, ``F01 = flow(a -> b)`` and ``F10 = flow(b -> a)``, with the finest
       pyramid level at full resolution (see ``_interpolation_flow``), on a copy shrunk to ``max_flow_side``
       pixels on the long side when the frame is larger (then brought back with ``resize_flow``); forward-backward consistency gives, per source pixel, whether it is visible in the
       other frame (``m0``, ``m1``, slightly blurred so their edges are soft).
    2. For each ``t``, every pixel ``x`` of ``a`` is splatted (bilinear, forward) to ``x + t F01(x)`` carrying
       the vector ``-t F01(x)``; the result is the backward flow ``Ft0`` from the intermediate frame to ``a``.
       Consistent pixels weigh 1 and occluded ones 0.001, so where a moving object and the background it
       covers land on the same spot the object wins (a z-buffer without depth), yet background that only
       ``a`` shows still fills its place. ``Ft1`` is made the same way from ``b`` with ``(1 - t) F10``. Holes
       (nothing landed) are filled from their neighbourhood by push-pull.
       Why splatting rather than the linear approximation of Super SloMo (``Ft0 = -(1-t) t F01 + t^2 F10``):
       that approximation mixes the flows of different objects at motion boundaries, which the SloMo network
       then repairs; without a network, splatting puts each pixel where it really is at ``t``.
    3. ``a`` is warped with ``Ft0`` and ``b`` with ``Ft1`` (``cv2.remap``, bicubic) and blended with weights
       ``(1 - t) vis0`` and ``t vis1``, where ``vis`` is the splatted density of consistent pixels (clipped to
       1) plus a small floor where only occluded pixels landed; where neither frame sees the spot the blend
       falls back to ``(1 - t), t``. The weight map is smoothed a little so no seam shows.
    """

    name = "flow"

    def __init__(self, preset: str = "medium", max_flow_side: int = 1024) -> None:
        if preset not in DIS_PRESETS:
            raise SettingsError(f"interpolate: unknown flow preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
        if max_flow_side < 16:
            raise SettingsError(f"interpolate: max_flow_side {max_flow_side} is too small; use 1024")
        self.preset = preset
        self.max_flow_side = max_flow_side

    @property
    def key(self) -> str:
        return f"flow:{self.preset}:{self.max_flow_side}:v{CODE_VERSION}"

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        _check_pair(a, b, times)
        if not times:
            return []
        height, width = a.shape[:2]
        grey_a, grey_b = to_gray8(a), to_gray8(b)
        scale = min(1.0, self.max_flow_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey_a = cv2.resize(grey_a, size, interpolation=cv2.INTER_AREA)
            grey_b = cv2.resize(grey_b, size, interpolation=cv2.INTER_AREA)
        flow_ab = _interpolation_flow(grey_a, grey_b, self.preset)
        flow_ba = _interpolation_flow(grey_b, grey_a, self.preset)
        visible_a = _soft_mask(consistency_mask(flow_ab, flow_ba))
        visible_b = _soft_mask(consistency_mask(flow_ba, flow_ab))
        fa, fb = a.astype(np.float32), b.astype(np.float32)
        frames = []
        for t in times:
            flow_t0, vis0, landed0 = _splat_flow(flow_ab, t, visible_a)
            flow_t1, vis1, landed1 = _splat_flow(flow_ba, 1.0 - t, visible_b)
            w0 = (1.0 - t) * (vis0 + _OCCLUDED_FLOOR * landed0)
            w1 = t * (vis1 + _OCCLUDED_FLOOR * landed1)
            total = w0 + w1
            alpha = np.where(total > 1e-6, w0 / np.maximum(total, 1e-6), 1.0 - t).astype(np.float32)
            alpha = cv2.GaussianBlur(alpha, (0, 0), _WEIGHT_BLUR_SIGMA)
            if scale < 1.0:
                flow_t0 = resize_flow(flow_t0, width, height)
                flow_t1 = resize_flow(flow_t1, width, height)
                alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
            warped_a = warp(fa, flow_t0, cv2.INTER_CUBIC)
            warped_b = warp(fb, flow_t1, cv2.INTER_CUBIC)
            alpha = alpha[..., None]
            frames.append(_to_dtype(warped_a * alpha + warped_b * (1.0 - alpha), a.dtype))
        return frames


_OCCLUDED_SPLAT_WEIGHT = 1e-3
_MIN_FLOW_SIDE = 16
_OCCLUDED_FLOOR = 0.05
_MASK_BLUR_SIGMA = 1.0
_WEIGHT_BLUR_SIGMA = 1.0
_LANDED_MIN = 1e-7


def _interpolation_flow(grey_a: np.ndarray, grey_b: np.ndarray, preset: str) -> np.ndarray:
    """DIS flow ``a -> b`` (``HxWx2`` float32) of two ``HxW`` uint8 frames, tuned for interpolation.

    The preset with its finest pyramid level at full resolution: OpenCV's presets stop at half resolution and
    upsample the flow, which loses fine texture (Vid4 ``city``, middle frame of each triplet from its
    neighbours: 27.9 -> 28.7 dB) for about twice the time. Larger patches (16 px) gave ``city`` 32.4 dB but
    lose large motions (80 px at 1024x576: 32.7 -> 25.4 dB) because DIS builds fewer pyramid levels for them.
    """
    height, width = grey_a.shape
    pad_y, pad_x = max(0, _MIN_FLOW_SIDE - height), max(0, _MIN_FLOW_SIDE - width)
    if pad_y or pad_x:  # DIS refuses frames smaller than a few patches
        grey_a = cv2.copyMakeBorder(grey_a, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        grey_b = cv2.copyMakeBorder(grey_b, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    dis.setFinestScale(0)
    return np.ascontiguousarray(dis.calc(grey_a, grey_b, None)[:height, :width])


def _soft_mask(mask: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), _MASK_BLUR_SIGMA)


def _splat_flow(flow: np.ndarray, t: float, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward-splat ``flow`` (``HxWx2``, source frame -> other frame) to time ``t``.

    Returns ``(flow_back, vis, landed)``: the backward flow from the frame at ``t`` to the source frame
    (``HxWx2``, holes filled), the splatted density of visible pixels clipped to [0, 1] (``HxW``), and 1 where
    any pixel landed, else 0 (``HxW``).
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    tx = (grid_x + t * flow[..., 0]).ravel()
    ty = (grid_y + t * flow[..., 1]).ravel()
    x0 = np.floor(tx)
    y0 = np.floor(ty)
    fx, fy = tx - x0, ty - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    vis = visible.ravel()
    weight = vis + _OCCLUDED_SPLAT_WEIGHT * (1.0 - vis)
    indices, bilinear = [], []
    for dx, dy, corner in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        indices.append(np.where(inside, yi * width + xi, 0))
        bilinear.append(np.where(inside, corner, 0.0))
    idx = np.concatenate(indices)
    bw = np.concatenate(bilinear)
    size = height * width
    weight4 = np.tile(weight, 4) * bw
    den = np.bincount(idx, weights=weight4, minlength=size)
    num_x = np.bincount(idx, weights=weight4 * np.tile(flow[..., 0].ravel(), 4), minlength=size)
    num_y = np.bincount(idx, weights=weight4 * np.tile(flow[..., 1].ravel(), 4), minlength=size)
    density = np.bincount(idx, weights=np.tile(vis, 4) * bw, minlength=size)
    landed = den > _LANDED_MIN
    safe = np.where(landed, den, 1.0)
    splatted = np.stack([num_x / safe, num_y / safe], axis=1).reshape(height, width, 2).astype(np.float32)
    splatted = _fill_holes(splatted, landed.reshape(height, width))
    vis_t = np.clip(density, 0.0, 1.0).reshape(height, width).astype(np.float32)
    return -t * splatted, vis_t, landed.reshape(height, width).astype(np.float32)


def _fill_holes(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill ``values`` (``HxWxC`` float32) where ``valid`` is False by push-pull over an area pyramid."""
    if valid.all():
        return values
    if not valid.any():
        return np.zeros_like(values)
    weight = valid.astype(np.float32)
    levels = [(values * weight[..., None], weight)]
    while max(levels[-1][1].shape) > 1:
        num, den = levels[-1]
        h, w = den.shape
        size = (max(1, (w + 1) // 2), max(1, (h + 1) // 2))
        small_num = cv2.resize(num, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
        small_den = cv2.resize(den, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0])
        levels.append((small_num, small_den))
    num, den = levels[-1]
    estimate = num / np.maximum(den, 1e-12)[..., None]
    for num, den in reversed(levels[:-1]):
        h, w = den.shape
        up = cv2.resize(estimate, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        alpha = np.clip(den, 0.0, 1.0)[..., None]
        estimate = alpha * (num / np.maximum(den, 1e-12)[..., None]) + (1.0 - alpha) * up
    return np.where(valid[..., None], values, estimate).astype(np.float32)


def minterpolate_video(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fps: Fraction | int | str,
    *,
    input_fps: Fraction | int | str | None = None,
    bit_depth: int = 8,
    max_frames: int | None = None,
    ffmpeg: str | None = None,
) -> Path:
    """Baseline: interpolate a video file to ``fps`` with ffmpeg's ``minterpolate`` filter.

    Settings: ``mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none`` (motion-compensated, overlapped
    blocks, bidirectional estimation, variable-size blocks; scene-change detection off, cuts are the planner's
    job). ``input_fps`` overrides the input's frame rate (``-r`` before ``-i``). ``minterpolate`` stops at the
    last input frame but one, so the input's last frame is held (``tpad``) and the output is cut at
    ``round(frames * fps / input rate)`` frames: the same duration as the input (``max_frames`` overrides the
    count). The result is a lossless chunk file in the :mod:`stages.media.chunkio` format (8-bit FFVHuff or 16-bit
    FFV1 by ``bit_depth``), readable with ``read_frames``; it is written under a temporary name and renamed, so
    ``out_path`` is never partial. A baseline for benchmarks only: block-based, slow, and it smears motion
    boundaries.

    Raises:
        InputError: the input cannot be read.
        SettingsError: no ffmpeg binary.
        EncodeError: ffmpeg failed (its message is included).
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    depth = storage_depth(bit_depth)
    pix_fmt, codec = ("gbrp16le", "ffv1") if depth == 16 else ("rgb24", "ffvhuff")
    rate = rational_fps(fps)
    in_rate = rational_fps(input_fps) if input_fps is not None else None
    if max_frames is None:
        count, stream_rate = _count_video_frames(Path(in_path))
        source_rate = in_rate or stream_rate
        max_frames = max(1, math.floor(count * rate / source_rate + Fraction(1, 2)))
    filters = (f"tpad=stop_mode=clone:stop=2,minterpolate=fps={rate.numerator}/{rate.denominator}:mi_mode=mci:"
               f"mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none,format={pix_fmt}")
    args: list[str] = []
    if in_rate is not None:
        args += ["-r", f"{in_rate.numerator}/{in_rate.denominator}"]
    args += ["-i", str(in_path), "-map", "0:v:0", "-an", "-sn", "-vf", filters, "-c:v", codec,
             "-frames:v", str(max_frames)]
    with atomic_output(out) as tmp:
        run_ffmpeg([*args, "-f", "nut", str(tmp)], ffmpeg=ffmpeg, what="interpolate: minterpolate")
    return out


def _count_video_frames(path: Path) -> tuple[int, Fraction]:
    """Frames (demuxed packets) and average rate of the first video stream of ``path``."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate
    except (OSError, IndexError, av.error.FFmpegError) as exc:
        raise InputError(f"interpolate: cannot read the video {path.name} ({exc}); check the file") from exc
    if not count or not rate:
        raise InputError(f"interpolate: {path.name} has no frames or no frame rate; pass input_fps and max_frames")
    return count, Fraction(rate)


class MinterpolateInterpolator:
    """The pair interface over ffmpeg's ``minterpolate`` (a baseline for benchmarks; slow).

    The pair is written as a four-frame lossless clip ``a, a, b, b`` at 1 fps (``minterpolate`` needs a frame
    on each side of the interval) and interpolated to ``q`` fps, where ``q`` is the common denominator of the
    times (each rounded to a fraction with denominator up to ``max_denominator``); output frame ``q + p`` is
    the one at ``t = p / q``. Times with no small common denominator are done in one run per denominator.
    """

    name = "minterpolate"

    def __init__(self, ffmpeg: str | None = None, max_denominator: int = 64) -> None:
        self.ffmpeg = ffmpeg
        self.max_denominator = max_denominator

    @property
    def key(self) -> str:
        return f"minterpolate:aobmc-bidir-vsbmc:{self.max_denominator}:v{CODE_VERSION}"

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        _check_pair(a, b, times)
        fractions = [Fraction(t).limit_denominator(self.max_denominator) for t in times]
        common = math.lcm(*(f.denominator for f in fractions)) if fractions else 1
        groups = [common] if common <= self.max_denominator else sorted({f.denominator for f in fractions})
        results: dict[Fraction, np.ndarray] = {}
        depth = 16 if a.dtype == np.uint16 else 8
        height, width = a.shape[:2]
        with tempfile.TemporaryDirectory(prefix="vup-minterpolate-") as tmp_dir:
            clip = Path(tmp_dir) / "pair.nut"
            with ChunkWriter(clip, width, height, bit_depth=depth) as writer:
                for frame in (a, a, b, b):
                    writer.write(frame)
            for rate in groups:
                wanted = {f: rate + int(f * rate) for f in fractions if rate % f.denominator == 0}
                out = Path(tmp_dir) / f"out-{rate}.nut"
                minterpolate_video(clip, out, rate, input_fps=1, bit_depth=depth,
                                   max_frames=max(wanted.values()) + 1, ffmpeg=self.ffmpeg)
                by_index = {index: f for f, index in wanted.items()}
                for index, frame in enumerate(read_frames(out)):
                    if index in by_index:
                        results[by_index[index]] = frame
        missing = [f for f in fractions if f not in results]
        if missing:
            raise ChunkError(f"interpolate: minterpolate gave no frame for t={float(missing[0]):.3f}; "
                             "use another method")
        return [results[f] for f in fractions]


def make_interpolator(
    method: str,
    *,
    flow_preset: str = "medium",
    max_flow_side: int = 1024,
    rife_factory: Callable[[], Interpolator] | None = None,
    ffmpeg: str | None = None,
) -> Interpolator:
    """The interpolator for a resolved ``method`` (``"flow"``, ``"blend"``, ``"minterpolate"`` or ``"rife"``).

    ``rife_factory`` builds the RIFE interpolator (``stages/models/rife``) when the method is ``"rife"``.

    Raises:
        SettingsError: ``"none"``/``"auto"`` (resolve with :func:`choose_method`, skip the stage for none), an
            unknown method, or ``"rife"`` without a factory.
    """
    if method == "flow":
        return FlowInterpolator(preset=flow_preset, max_flow_side=max_flow_side)
    if method == "blend":
        return BlendInterpolator()
    if method == "minterpolate":
        return MinterpolateInterpolator(ffmpeg=ffmpeg)
    if method == "rife":
        if rife_factory is None:
            raise SettingsError("interpolate: RIFE needs its model loader; pass rife_factory or use method flow")
        return rife_factory()
    if method in ("none", "auto"):
        raise SettingsError(f"interpolate: method {method!r} has no interpolator; resolve it with choose_method "
                            "first (none: skip the stage)")
    raise SettingsError(f"interpolate: unknown method {method!r}; use one of {', '.join(METHODS)}")


# --------------------------------------------------------------------------------------------------- chunk stage


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
