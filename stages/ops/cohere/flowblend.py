"""One step of the ``flow`` coherence method: blend the previous output, brought onto the current frame by the
source's optical flow, into the current upscale where that cannot ghost (see :mod:`stages.ops.cohere.temporal`).

Three independent guards decide where the previous output may be used, each measured where it is reliable:

1. the source pair (no invented detail to mislead it): the flow is forward-backward consistent and lands inside
   the frame (eroded by one source pixel: flow is blurred across occlusion boundaries), and the warped previous
   source matches the current one, either in absolute terms or to within a fraction of an output pixel of
   misalignment on edges and texture (:func:`source_agreement`); an output pixel whose source pixel fails gets
   no weight (the mask is not smoothed across it);
2. the warped previous output is clamped to the current upscale's local range (:func:`clamp_history`): an old
   edge or colour that is nowhere near a pixel in the current frame cannot be painted there;
3. the current upscale: the locally averaged signed difference from the clamped history shows structure the
   model changed on its own (it must show at once, not fade in).
"""

from __future__ import annotations

import cv2
import numpy as np

from stages.flow import consistency_mask, dis_flow, lands_inside, resize_flow, warp
from stages.ops.cohere.pixels import channel_max, colour_change, from_float, resize_to, soft_below, to_float
from stages.ops.cohere.settings import TemporalSettings

__all__ = ["blend", "clamp_history", "flow_step", "source_agreement"]

_GRADIENT_FLOOR = 1e-3
"""Added to the source gradient (per source pixel) before dividing by it: a flat pixel reads as misaligned by
about ``1000 * residual`` source pixels, so only the absolute residual test can trust it."""


def source_agreement(settings: TemporalSettings, warped_prev: np.ndarray, current: np.ndarray,
                     scale: float) -> np.ndarray:
    """``HxW`` float32 trust in [0, 1] that the flow brought the previous source frame onto the current one.

    ``warped_prev`` and ``current`` are float ``hxwx3`` source frames, already blurred; ``scale`` is the output
    size over the source size. The residual ``r`` is their largest absolute difference over R, G, B; trust is
    the larger of ``soft(r)`` (absolute test) and ``soft(scale * r / |grad current|)`` (misalignment in output
    pixels: a residual on an edge the flow follows to within a fraction of an output pixel is not a flow
    failure).
    """
    s = settings
    residual = colour_change(warped_prev, current)
    trust = soft_below(residual, s.source_error_low, s.source_error_high)
    gx = cv2.Sobel(current, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(current, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    gradient = channel_max(cv2.magnitude(gx, gy))
    gradient += np.float32(_GRADIENT_FLOOR)
    misalignment = np.divide(residual, gradient, out=gradient)
    misalignment *= np.float32(scale)
    return np.maximum(trust, soft_below(misalignment, s.misalignment_low, s.misalignment_high))


def clamp_history(history: np.ndarray, current: np.ndarray, spread: float) -> np.ndarray:
    """Clip ``history`` (float ``HxWx3``, in place; returned) per channel to ``mean +- spread * std`` of
    ``current``'s 3x3 neighbourhood (variance clipping)."""
    mean = cv2.blur(current, (3, 3))
    deviation = cv2.blur(cv2.multiply(current, current), (3, 3))
    cv2.subtract(deviation, cv2.multiply(mean, mean), dst=deviation)
    cv2.sqrt(cv2.max(deviation, 0.0, dst=deviation), dst=deviation)
    cv2.multiply(deviation, (spread, spread, spread, 0), dst=deviation)
    cv2.max(history, cv2.subtract(mean, deviation), dst=history)
    cv2.min(history, cv2.add(mean, deviation, dst=mean), dst=history)
    return history


def blend(hr_f: np.ndarray, other: np.ndarray, weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``hr*(1-w) + other*w`` rounded to ``dtype``; ``hr_f`` and ``other`` are float32 ``HxWx3`` in [0, 1]
    (``other`` is overwritten: scratch), ``weight`` ``HxW`` float32."""
    np.subtract(other, hr_f, out=other)
    other *= weight[..., None]
    other += hr_f
    return from_float(other, dtype)


def flow_step(settings: TemporalSettings, hr: np.ndarray, lr: np.ndarray, prev_out: np.ndarray,
              prev_lr: np.ndarray) -> tuple[np.ndarray, float]:
    """The coherent frame for upscale ``hr`` (``HxWx3``) with source ``lr`` (``hxwx3``, same size as
    ``prev_lr``), after a frame whose output was ``prev_out``; also the mean blend weight."""
    s = settings
    height, width = hr.shape[:2]
    lh, lw = lr.shape[:2]
    # flow on the source: cur -> prev brings the previous frame onto the current one (backward warp)
    flow_cp = dis_flow(lr, prev_lr, s.flow_preset)
    flow_pc = dis_flow(prev_lr, lr, s.flow_preset)
    visible = (consistency_mask(flow_cp, flow_pc) & lands_inside(flow_cp)).astype(np.float32)
    trusted = cv2.erode(visible, np.ones((3, 3), np.uint8))  # stop short of occlusion boundaries
    lr_prev, lr_cur = to_float(prev_lr), to_float(lr)
    if s.source_error_sigma > 0:  # sampling/aliasing differences of fine texture are not a flow failure
        lr_prev = cv2.GaussianBlur(lr_prev, (0, 0), s.source_error_sigma)
        lr_cur = cv2.GaussianBlur(lr_cur, (0, 0), s.source_error_sigma)
    scale = max(width / lw, height / lh)
    trusted *= source_agreement(s, warp(lr_prev, flow_cp), lr_cur, scale)
    # to the output size without leaking into rejected source pixels: bilinear inside trusted cells (a ramp
    # at their edges), 0 in every output pixel whose source pixel is rejected
    mask = np.minimum(resize_to(trusted, width, height),
                      resize_to(trusted, width, height, cv2.INTER_NEAREST))
    hr_f = to_float(hr)
    history = clamp_history(warp(to_float(prev_out), resize_flow(flow_cp, width, height)), hr_f, s.history_clamp)
    # structure the model changed on its own: the signed difference averaged over about a source pixel, so that
    # the model's per-frame invented detail (what should be smoothed) does not reject by itself
    signed = cv2.GaussianBlur(cv2.subtract(history, hr_f), (0, 0), max(s.output_error_sigma * scale, 0.5))
    mask *= soft_below(channel_max(np.abs(signed, out=signed)), s.output_error_low, s.output_error_high)
    mask *= np.float32(s.strength)
    return blend(hr_f, history, mask, hr.dtype), float(mask.mean())
