"""The pair interpolators: frames between two frames, all behind one interface, ``interpolate(a, b, times)``.

Frames are ``HxWx3`` RGB arrays, ``uint8`` or ``uint16``. :class:`FlowInterpolator` (DIS optical flow, forward
splatting, occlusion-aware blend; no trained weights), :class:`BlendInterpolator` (cross-fade baseline) and
:class:`MinterpolateInterpolator` (ffmpeg ``minterpolate`` baseline, over :func:`minterpolate_video`). RIFE lives in
``stages/models/rife`` and plugs in through :func:`make_interpolator`'s ``rife_factory``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
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
from stages.ops.interpolate.timing import METHODS, rational_fps
from stages.store.fsutil import atomic_output
from stages.store.versions import stage_version

__all__ = [
    "CODE_VERSION",
    "BlendInterpolator",
    "FlowInterpolator",
    "Interpolator",
    "MinterpolateInterpolator",
    "make_interpolator",
    "minterpolate_video",
]

CODE_VERSION = stage_version("interpolate")  # part of the interpolators' keys


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

