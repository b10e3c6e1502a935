"""Per-pixel helpers of the coherence filters: float conversion, soft thresholds, colour change, resizing.

Frames are ``HxWx3`` arrays; integer frames map to float32 in [0, 1] and back with one rounding.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["channel_max", "colour_change", "from_float", "resize_to", "soft_below", "to_float"]


def to_float(frame: np.ndarray) -> np.ndarray:
    """``HxWxC`` integer frame -> new float32 array in [0, 1] (float frames are copied as float32)."""
    if np.issubdtype(frame.dtype, np.integer):
        return np.multiply(frame, np.float32(1.0 / np.iinfo(frame.dtype).max), dtype=np.float32)
    return frame.astype(np.float32)


def from_float(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 ``frame`` in [0, 1] rounded to integer ``dtype``; ``frame`` is overwritten (scratch)."""
    peak = float(np.iinfo(dtype).max)
    np.multiply(frame, np.float32(peak), out=frame)
    frame += np.float32(0.5)
    np.clip(frame, 0, peak, out=frame)
    return frame.astype(dtype)


def soft_below(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 where ``values <= low``, 0 where ``values >= high``, linear in between (float32)."""
    return np.clip((high - values) * np.float32(1.0 / (high - low)), 0.0, 1.0).astype(np.float32, copy=False)


def channel_max(a: np.ndarray) -> np.ndarray:
    """``HxW`` largest of the three channels of ``HxWx3`` ``a`` (several times faster than ``a.max(axis=2)``)."""
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def colour_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel change between two float ``HxWx3`` frames: the largest absolute difference over R, G and B
    (``HxW`` float32), so a change of colour at equal brightness counts too."""
    return channel_max(cv2.absdiff(a, b))


def resize_to(image: np.ndarray, width: int, height: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` resized to ``width``x``height`` (returned as is when it already has that size)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=interpolation)
