"""Dense optical flow and warping shared by interpolation, temporal coherence and the metrics (OpenCV).

Conventions: frames are ``HxWx3`` RGB arrays (uint8 or uint16) or ``HxW`` grey/luma arrays; a flow is an ``HxWx2``
float32 array of pixel displacements ``(dx, dy)``. ``flow_ab = dis_flow(a, b)`` maps each pixel ``x`` of ``a`` to
its match ``x + flow_ab(x)`` in ``b``, so ``warp(b, flow_ab)`` is ``b`` brought onto ``a`` (backward warping).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "DIS_PRESETS",
    "consistency_mask",
    "dis_flow",
    "lands_inside",
    "resize_flow",
    "to_gray8",
    "warp",
]

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def to_gray8(frame: np.ndarray) -> np.ndarray:
    """``HxW`` uint8 grey (BT.709 luma) of an RGB frame of any integer depth, or of a grey/float [0,1] frame."""
    if frame.ndim == 3:
        peak = float(np.iinfo(frame.dtype).max) if np.issubdtype(frame.dtype, np.integer) else 1.0
        weights = (np.array([0.2126, 0.7152, 0.0722], dtype=np.float32) * (255.0 / peak)).reshape(1, 3)
        grey = cv2.transform(np.ascontiguousarray(frame, dtype=np.float32), weights)
    elif np.issubdtype(frame.dtype, np.integer):
        grey = frame.astype(np.float32) * (255.0 / float(np.iinfo(frame.dtype).max))
    else:
        grey = frame.astype(np.float32) * 255.0
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Flow from ``a`` to ``b`` (``HxWx2`` float32) with OpenCV's DIS optical flow.

    ``a`` and ``b`` are frames of the same size (RGB or grey, any depth). Raises ValueError for an unknown
    preset or different sizes.
    """
    if preset not in DIS_PRESETS:
        raise ValueError(f"flow: unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"flow: frames of different sizes {a.shape[:2]} and {b.shape[:2]}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return dis.calc(to_gray8(a), to_gray8(b), None)


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (backward warp), replicating the border; same dtype and shape."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    return cv2.remap(image, map_x, map_y, interpolation=interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(flow_ab: np.ndarray, flow_ba: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency: ``HxW`` bool, True where ``flow_ab`` is trusted (not occluded).

    A pixel is occluded when ``|f_ab + f_ba(x + f_ab)|^2 > alpha * (|f_ab|^2 + |f_ba(x + f_ab)|^2) + beta``
    (Sundaram, Brox and Keutzer 2010; the test used by the temporal-consistency metric of Lai et al. 2018).
    """
    back = warp(flow_ba, flow_ab)
    diff = flow_ab + back
    lhs = np.sum(diff * diff, axis=2)
    rhs = alpha * (np.sum(flow_ab * flow_ab, axis=2) + np.sum(back * back, axis=2)) + beta
    return lhs <= rhs


def lands_inside(flow: np.ndarray) -> np.ndarray:
    """``HxW`` bool: True where ``x + flow(x)`` lies inside the frame (a backward warp samples real pixels there,
    not the replicated border)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    tx, ty = grid_x + flow[..., 0], grid_y + flow[..., 1]
    return (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """A flow resized to ``width``x``height`` with its vectors scaled to the new pixel grid."""
    h, w = flow.shape[:2]
    resized = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= width / w
    resized[..., 1] *= height / h
    return resized
