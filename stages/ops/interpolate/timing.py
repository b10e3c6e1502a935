"""Frame-interpolation settings and the output timing plan: pure functions, no frames are made here.

* **Settings**: :func:`rational_fps` (exact frame rates), :class:`InterpolationSettings` (what decides the bytes of
  an interpolated chunk) and :func:`choose_method` (``auto`` resolved to RIFE or optical flow).
* **Timing**: :func:`timeline_seconds` (source frame times, snapped to the exact grid when regular);
  :func:`plan_output_frames` maps a constant output rate onto the real source timestamps (VFR included), never
  interpolating across a scene cut; :func:`find_duplicates` finds repeated frames (animation on twos, pulldown)
  so they can be dropped from the timeline; :func:`chunk_output_frames` splits the plan along the source chunks
  so the joined chunks are exactly the whole-video plan.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from stages.errors import ChunkError, InputError, SettingsError
from stages.flow import DIS_PRESETS

__all__ = [
    "DEFAULT_DEDUP_THRESHOLD",
    "MAX_OUTPUT_FPS",
    "METHODS",
    "SUPPORTED_FACTORS",
    "InterpolationSettings",
    "OutputFrame",
    "choose_method",
    "chunk_output_frames",
    "find_duplicates",
    "plan_output_frames",
    "rational_fps",
    "timeline_seconds",
]

METHODS = ("none", "auto", "rife", "flow", "blend", "minterpolate")
SUPPORTED_FACTORS = (2, 4, 8)
MAX_OUTPUT_FPS = Fraction(120)
DEFAULT_DEDUP_THRESHOLD = 0.002
DEFAULT_MAX_DUPLICATE_RUN = 3
DEFAULT_SNAP_SECONDS = 0.0005
_REGULAR_GRID_TOLERANCE_SECONDS = 0.001
_NTSC_BASES = (24, 25, 30, 48, 50, 60, 72, 90, 96, 100, 120)


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

