"""Objective quality figures, with and without a reference, and their exact definitions.

Every figure's exact definition is a module constant (``*_DEFINITION``, collected in :data:`METRIC_DEFINITIONS`)
and goes into the report next to the numbers. Frames are ``HxWx3`` RGB arrays (uint8 or uint16, scaled to
[0, 1] by their dtype's peak, so 8-bit and 16-bit results compare; float arrays are taken as [0, 1] already).
Y is BT.709 luma of the non-linear (gamma-encoded) R'G'B' values, full range: **not** the BT.601 limited-range Y
(16-235) that many super-resolution papers use (that range alone makes their PSNR-Y about 1.3 dB higher for the
same error), and no border is cropped unless the caller asks (papers often crop ``scale`` pixels).

No reference:

- Flicker score (the product spec's seed formula), for consecutive frames t-1, t:
  ``mean(|Y_t - Y_{t-1}|) / mean((Y_t + Y_{t-1}) / 2)`` over the whole frame (no border crop). The video score
  is the mean over all pairs. Real motion counts as flicker too (Vid4 ground truth scores about 0.107), so the
  report puts the output's score next to the same score of a lanczos upscale of the same source: a ratio near 1
  means no added flicker. Never smooth a video to push it down.
- Warping error E_warp (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): the error left between
  frame t and frame t-1 warped onto it by optical flow, over pixels that are visible in both: the temporal
  metric to optimise. See :data:`WARP_ERROR_DEFINITION`.

Full reference: PSNR and SSIM (scikit-image) on Y and on RGB, VMAF (ffmpeg's libvmaf). PSNR and SSIM reward
blur; report them beside VMAF and E_warp, never pick defaults by them alone.

The grade, the video-level summary, the per-frame plot and the report files are in :mod:`stages.quality.summary`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.errors import InputError, SettingsError
from stages.flow import DIS_PRESETS, consistency_mask, dis_flow, resize_flow, warp
from stages.media.ffmpeg import filter_value, find_ffmpeg, run_ffmpeg

log = logging.getLogger(__name__)

FLICKER_DEFINITION = (
    "flicker(t) = mean|Y_t - Y_{t-1}| / mean((Y_t + Y_{t-1})/2), Y = BT.709 luma of non-linear RGB in [0,1], "
    "whole frame, no crop; video score = mean over consecutive pairs"
)
PSNR_DATA_RANGE = 1.0
"""Frames are scaled to [0, 1] by their dtype's peak before PSNR/SSIM, so the data range is 1."""
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_BORDER = 5
"""scikit-image averages the SSIM map without the (window - 1) / 2 = 5 pixels next to each border."""
PSNR_DEFINITION = (
    "PSNR = 10*log10(1 / MSE) dB per frame on values scaled to [0,1] (data range 1); psnr_y: BT.709 luma of "
    "non-linear RGB, full range; psnr_rgb: MSE over R, G and B together; border crop 0 px unless stated; "
    "identical frames give +inf; video score = mean of the finite per-frame values (frames with +inf counted apart)"
)
SSIM_DEFINITION = (
    "SSIM (Wang et al. 2004, scikit-image structural_similarity) per frame on [0,1] values (data range 1): "
    f"Gaussian window sigma {SSIM_SIGMA} (11x11, truncated at 3.5 sigma), K1={SSIM_K1}, K2={SSIM_K2}, population "
    f"covariance, map averaged without the {SSIM_BORDER} px next to each border; ssim_y on BT.709 luma, ssim_rgb = "
    "mean of the three channels' SSIM; border crop 0 px unless stated; video score = mean over frames"
)
WARP_ERROR_DEFINITION = (
    "E_warp(t) = sum_x M(x) * ||O_t(x) - W(O_{t-1})(x)||_2^2 / sum_x M(x) (Lai et al. 2018): O = output RGB in "
    "[0,1], squared L2 norm over the three channels, W = backward warp (bilinear) by the DIS optical flow (OpenCV, "
    "preset medium) from frame t to t-1, M = 1 where that flow is forward-backward consistent (Sundaram et al. "
    "2010, alpha 0.01, beta 0.5) and lands inside the frame; flow and M computed on the low-resolution source pair "
    "and resized to the output size when the source is given (the same flow for every method compared), else on "
    "the pair itself; video score = mean over consecutive pairs within a scene"
)
VMAF_DEFINITION = (
    "VMAF (Netflix, ffmpeg libvmaf filter, model vmaf_v0.6.1 unless stated) per frame, distorted video scaled "
    "(bicubic) to the reference size, both converted to yuv444p 8-bit; video score = mean over frames"
)
GRADE_DEFINITION = (
    "grade = worst of the grades of the available figures among psnr_y (mean, dB), ssim_y (mean) and the flicker "
    "ratio (output flicker / lanczos flicker); thresholds are this project's own, not the product spec's. Without "
    "a reference only the flicker ratio is known: the grade is then a stability grade (Stable ... Strong flicker), "
    "which says nothing of detail or faithfulness"
)
METRIC_DEFINITIONS: dict[str, str] = {
    "flicker": FLICKER_DEFINITION,
    "warp_error": WARP_ERROR_DEFINITION,
    "psnr": PSNR_DEFINITION,
    "ssim": SSIM_DEFINITION,
    "vmaf": VMAF_DEFINITION,
    "grade": GRADE_DEFINITION,
}
"""Definition of each metric family, keyed by the prefix its per-frame columns start with."""

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_CHANNELS = ("y", "rgb")


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.709 luma of an ``HxWx3`` RGB frame (uint8 or uint16) as ``HxW`` float32 in [0, 1]."""
    peak = float(np.iinfo(frame.dtype).max) if np.issubdtype(frame.dtype, np.integer) else 1.0
    # cv2.transform is a fused multiply-add over the channels: about 3x less CPU than a numpy matmul at 1080p.
    weights = (_LUMA / peak).reshape(1, 3)
    return cv2.transform(np.ascontiguousarray(frame, dtype=np.float32), weights)


def flicker_pair(previous: np.ndarray, current: np.ndarray) -> float:
    """Flicker of one pair of luma frames (see the module docstring)."""
    mean_intensity = float((previous.mean() + current.mean()) / 2.0)
    return float(np.abs(current - previous).mean()) / max(mean_intensity, 1e-6)


class FlickerMeter:
    """Feeds frames one at a time (across chunk boundaries) and returns each frame's flicker value."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self.last_mean_luma: float = math.nan

    def add(self, frame: np.ndarray) -> float:
        """Flicker against the previous frame (NaN for the first frame); ``last_mean_luma`` is the frame's mean."""
        return self.add_luma(luma(frame))

    def add_luma(self, current: np.ndarray) -> float:
        """:meth:`add` for a frame already reduced to its luma (``HxW`` float32 in [0, 1])."""
        value = math.nan if self._previous is None else flicker_pair(self._previous, current)
        self._previous = current
        self.last_mean_luma = float(current.mean())
        return value


def lanczos_upscale(frames: Iterable[np.ndarray], width: int, height: int) -> Iterator[np.ndarray]:
    """Lanczos (OpenCV ``INTER_LANCZOS4``) resize of each frame to ``width``x``height``: the non-AI baseline."""
    for frame in frames:
        yield cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)


def lanczos_luma(frames: Iterable[np.ndarray], width: int, height: int) -> Iterator[np.ndarray]:
    """Luma of the lanczos baseline: the source's luma resized with ``INTER_LANCZOS4`` to ``width``x``height``.

    Luma is linear in RGB, so this equals the luma of :func:`lanczos_upscale` up to its 8/16-bit rounding and
    clipping, at a third of the resize work (one channel instead of three).
    """
    for frame in frames:
        yield np.clip(cv2.resize(luma(frame), (width, height), interpolation=cv2.INTER_LANCZOS4), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Full reference: PSNR, SSIM, VMAF


def _unit(frame: np.ndarray) -> np.ndarray:
    """``frame`` as float64 in [0, 1] (integer frames divided by their dtype's peak)."""
    if np.issubdtype(frame.dtype, np.integer):
        return frame.astype(np.float64) / float(np.iinfo(frame.dtype).max)
    return frame.astype(np.float64, copy=False)


def _unit32(frame: np.ndarray) -> np.ndarray:
    """``frame`` as float32 in [0, 1], in one pass."""
    if np.issubdtype(frame.dtype, np.integer):
        return np.multiply(frame, np.float32(1.0 / np.iinfo(frame.dtype).max), dtype=np.float32)
    return frame.astype(np.float32, copy=False)


def _prepared(ref: np.ndarray, out: np.ndarray, channel: str, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if channel not in _CHANNELS:
        raise ValueError(f"metrics: unknown channel {channel!r}; use 'y' or 'rgb'")
    if ref.shape != out.shape:
        raise ValueError(
            f"metrics: reference {ref.shape} and output {out.shape} differ in shape; resize the output to the "
            "reference first"
        )
    if crop < 0 or 2 * crop >= min(ref.shape[:2]):
        raise ValueError(f"metrics: crop {crop} leaves nothing of a {ref.shape[1]}x{ref.shape[0]} frame; use 0")
    a, b = _unit(ref), _unit(out)
    if channel == "y" and a.ndim == 3:
        a, b = a @ _LUMA.astype(np.float64), b @ _LUMA.astype(np.float64)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr(ref: np.ndarray, out: np.ndarray, channel: str = "y", *, crop: int = 0) -> float:
    """PSNR in dB of ``out`` against ``ref`` (see :data:`PSNR_DEFINITION`); ``math.inf`` when identical.

    Args:
        ref, out: ``HxWx3`` RGB frames of the same shape (uint8/uint16, or float in [0, 1]).
        channel: ``"y"`` (BT.709 luma) or ``"rgb"`` (all three channels).
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: different shapes, an unknown channel or a crop larger than the frame.
    """
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _prepared(ref, out, channel, crop)
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(a, b, data_range=PSNR_DATA_RANGE))


def ssim(ref: np.ndarray, out: np.ndarray, channel: str = "y", *, crop: int = 0) -> float:
    """Mean SSIM of ``out`` against ``ref`` (see :data:`SSIM_DEFINITION`); 1.0 when identical.

    Args:
        ref, out: ``HxWx3`` RGB frames of the same shape, at least 11x11 after ``crop``.
        channel: ``"y"`` or ``"rgb"`` (mean of the per-channel SSIM).
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: as :func:`psnr`, or a frame smaller than the 11x11 window.
    """
    from skimage.metrics import structural_similarity

    a, b = _prepared(ref, out, channel, crop)
    if min(a.shape[:2]) < 2 * SSIM_BORDER + 1:
        raise ValueError(f"metrics: SSIM needs frames of at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(
        a, b, data_range=PSNR_DATA_RANGE, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
        K1=SSIM_K1, K2=SSIM_K2, channel_axis=2 if a.ndim == 3 else None,
    ))


class VmafUnavailableError(SettingsError):
    """The ffmpeg binary in use has no libvmaf filter."""


@dataclass(frozen=True)
class VmafResult:
    """VMAF of a distorted video against its reference: the mean, one score per frame (0..100), the model."""

    mean: float
    per_frame: list[float]
    model: str
    definition: str = VMAF_DEFINITION


def has_libvmaf(ffmpeg: str | None = None) -> bool:
    """True when the ffmpeg binary (see :func:`stages.media.ffmpeg.find_ffmpeg`) lists the ``libvmaf`` filter."""
    exe = find_ffmpeg(ffmpeg)
    try:
        listing = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True,
                                 errors="replace", check=False).stdout
    except OSError:
        return False
    return any(line.split()[1:2] == ["libvmaf"] for line in listing.splitlines() if line.strip())


def _video_size(path: str | Path) -> tuple[int, int]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return int(stream.codec_context.width), int(stream.codec_context.height)
    except (OSError, IndexError, av.error.FFmpegError) as exc:
        raise InputError(f"metrics: cannot read a video stream from {path} ({exc}); check the file") from exc


def _filter_path(path: Path) -> str:
    """``path`` as a filter option value inside the ``-lavfi`` graph, escaped at both levels ffmpeg parses (option
    value, then graph: quotes, ``:``, ``;``, ``,``, brackets, backslashes, spaces), see :func:`filter_value`."""
    return filter_value(path)


def vmaf(
    ref_path: str | Path,
    dist_path: str | Path,
    *,
    model: str = "vmaf_v0.6.1",
    ffmpeg: str | None = None,
    threads: int | None = None,
    subsample: int = 1,
) -> VmafResult:
    """VMAF of the video at ``dist_path`` against the one at ``ref_path`` (see :data:`VMAF_DEFINITION`).

    Runs the ffmpeg binary's ``libvmaf`` filter: the distorted video is scaled (bicubic) to the reference size
    when they differ, both start at time 0 and are converted to yuv444p, frames are paired by timestamp and
    scoring stops with the shorter video; per-frame scores come from libvmaf's JSON log. ``model`` is a libvmaf built-in version (``vmaf_v0.6.1``, ``vmaf_4k_v0.6.1``,
    ``vmaf_v0.6.1neg``); ``subsample`` scores every n-th frame only.

    Raises:
        VmafUnavailableError: the ffmpeg binary has no libvmaf filter.
        stages.errors.InputError: a file has no readable video stream.
        stages.errors.EncodeError: ffmpeg failed (message carries its last lines).
    """
    exe = find_ffmpeg(ffmpeg)
    if not has_libvmaf(exe):
        raise VmafUnavailableError(
            f"metrics: the ffmpeg at {exe} has no libvmaf filter; install an ffmpeg built with --enable-libvmaf "
            "and point VUP_FFMPEG at it, or leave VMAF out of the report"
        )
    width, height = _video_size(ref_path)
    dist_w, dist_h = _video_size(dist_path)
    scale = "" if (dist_w, dist_h) == (width, height) else f"scale={width}:{height}:flags=bicubic,"
    with tempfile.TemporaryDirectory(prefix="vup-vmaf-") as tmp:
        log_path = Path(tmp) / "vmaf.json"
        options = (f"model=version={model}:log_fmt=json:log_path={_filter_path(log_path)}"
                   f":n_threads={threads or os.cpu_count() or 1}:n_subsample={max(1, subsample)}:shortest=1")
        graph = (f"[0:v]{scale}setpts=PTS-STARTPTS,format=yuv444p[dist];"
                 f"[1:v]setpts=PTS-STARTPTS,format=yuv444p[ref];[dist][ref]libvmaf={options}")
        run_ffmpeg(["-i", str(dist_path), "-i", str(ref_path), "-lavfi", graph, "-f", "null", "-"],
                   ffmpeg=exe, what="metrics: vmaf")
        data = json.loads(log_path.read_text(encoding="utf-8"))
    per_frame = [float(f["metrics"]["vmaf"]) for f in data.get("frames", []) if "vmaf" in f.get("metrics", {})]
    pooled = data.get("pooled_metrics", {}).get("vmaf", {}).get("mean")
    mean = float(pooled) if pooled is not None else (float(np.mean(per_frame)) if per_frame else math.nan)
    log.debug("metrics: VMAF %.2f over %d frames (%s vs %s)", mean, len(per_frame), dist_path, ref_path)
    return VmafResult(mean=mean, per_frame=per_frame, model=model,
                      definition=VMAF_DEFINITION.replace("vmaf_v0.6.1", model))


# ---------------------------------------------------------------------------------------------------------------
# No reference: warping error E_warp


def flow_with_mask(
    prev: np.ndarray,
    cur: np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    preset: str = "medium",
) -> tuple[np.ndarray, np.ndarray]:
    """Flow from ``cur`` to ``prev`` and its trust mask, for :func:`warp_error`.

    Args:
        prev, cur: frames of the same size (``HxWx3`` or ``HxW``, any depth) to compute the flow on: the
            measured pair itself, or its low-resolution source pair.
        size: ``(width, height)`` to resize flow and mask to (the measured frames' size); None keeps it.
        preset: DIS preset.

    Returns:
        ``(flow, mask)``: ``HxWx2`` float32 (``warp(prev, flow)`` lies on ``cur``) and ``HxW`` bool, True where
        the flow is forward-backward consistent and lands inside the frame.
    """
    flow = dis_flow(cur, prev, preset)
    mask = consistency_mask(flow, dis_flow(prev, cur, preset))
    height, width = flow.shape[:2]
    if size is not None and size != (width, height):
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        flow = resize_flow(flow, *size)
        width, height = size
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    mask &= (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    return flow, mask


def warp_error(
    prev: np.ndarray,
    cur: np.ndarray,
    flow_cur_to_prev: np.ndarray | None = None,
    *,
    mask: np.ndarray | None = None,
    source_pair: tuple[np.ndarray, np.ndarray] | None = None,
    preset: str = "medium",
) -> float:
    """E_warp between consecutive frames ``prev`` (t-1) and ``cur`` (t); see :data:`WARP_ERROR_DEFINITION`.

    Args:
        prev, cur: ``HxWx3`` RGB frames (uint8/uint16 or float in [0, 1]) of the same shape.
        flow_cur_to_prev: ``HxWx2`` flow such that ``warp(prev, flow)`` lies on ``cur``; None computes it (and
            the mask) with :func:`flow_with_mask` on ``source_pair`` when given, else on ``(prev, cur)``.
        mask: ``HxW`` bool of pixels to count (non-occluded); with a given flow and no mask every pixel counts.
        source_pair: ``(source_prev, source_cur)``, the low-resolution frames these were made from: flow and
            mask are computed there and resized, so every method measured on the same source shares them and
            no method can lower its error by changing what the flow sees.

    Returns:
        Mean squared L2 (RGB) error over masked pixels; NaN when no pixel is trusted.
    """
    if prev.shape != cur.shape:
        raise ValueError(f"metrics: frames of different shapes {prev.shape} and {cur.shape}")
    if flow_cur_to_prev is None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"metrics: unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
        pair = source_pair if source_pair is not None else (prev, cur)
        flow_cur_to_prev, mask = flow_with_mask(pair[0], pair[1], size=(cur.shape[1], cur.shape[0]),
                                                preset=preset)
    a = _unit32(cur)
    b = warp(_unit32(prev), flow_cur_to_prev)
    diff = a - b
    squared = np.sum(diff * diff, axis=2) if diff.ndim == 3 else diff * diff
    if mask is None:
        return float(squared.mean())
    count = int(np.count_nonzero(mask))
    return float(squared[mask].sum() / count) if count else math.nan


def mean_warp_error(frames: Sequence[np.ndarray], sources: Sequence[np.ndarray]) -> float:
    """Mean E_warp of consecutive ``frames``, each pair measured with the flow and occlusion mask of its
    ``sources`` pair (:func:`warp_error` with ``source_pair``), so every method made from the same sources is
    measured alike. NaN pairs (nothing trusted) are left out."""
    values = [warp_error(frames[t - 1], frames[t], source_pair=(sources[t - 1], sources[t]))
              for t in range(1, len(frames))]
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


class WarpErrorMeter:
    """Feeds frames one at a time (across chunk boundaries) and returns each frame's E_warp against the
    previous one (NaN for the first frame, after a cut, or when no pixel is trusted)."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"metrics: unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
        self.preset = preset
        self._previous: np.ndarray | None = None
        self._previous_source: np.ndarray | None = None

    def add(self, frame: np.ndarray, source: np.ndarray | None = None, *, cut: bool = False) -> float:
        """E_warp of ``frame`` against the previous frame; with ``source`` (the matching low-resolution frame)
        flow and mask come from the source pair (see :func:`warp_error`). ``cut``: a new scene starts here."""
        value = math.nan
        if not cut and self._previous is not None:
            if source is not None and self._previous_source is not None:
                pair = (self._previous_source, source)
            else:
                pair = (self._previous, frame)
            flow, mask = flow_with_mask(*pair, size=(frame.shape[1], frame.shape[0]), preset=self.preset)
            value = warp_error(self._previous, frame, flow, mask=mask)
        self._previous, self._previous_source = frame, source
        return value

    def add_with_flow(self, frame: np.ndarray, flow: np.ndarray | None, mask: np.ndarray | None) -> float:
        """:meth:`add` with a flow and mask computed once by :func:`flow_with_mask` (e.g. on the source pair)
        and shared by several meters; ``flow=None`` marks a cut or a first frame (returns NaN)."""
        value = math.nan
        if flow is not None and self._previous is not None:
            value = warp_error(self._previous, frame, flow, mask=mask)
        self._previous, self._previous_source = frame, None
        return value
