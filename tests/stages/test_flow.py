"""Optical flow helpers: a known translation is recovered, warping undoes it, occlusions are flagged."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from stages.flow import consistency_mask, dis_flow, resize_flow, to_gray8, warp


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    photo = data.astronaut()[100:228, 100:260]  # 128x160 RGB
    shifted = np.roll(photo, shift=(0, 3), axis=(0, 1))  # content moves 3 px right
    return photo, shifted


def test_dis_flow_recovers_a_translation(pair):
    a, b = pair
    flow = dis_flow(a, b)
    inner = flow[16:-16, 16:-16]
    assert flow.shape == (128, 160, 2) and flow.dtype == np.float32
    assert abs(float(np.median(inner[..., 0])) - 3.0) < 0.3 and abs(float(np.median(inner[..., 1]))) < 0.3


def test_warp_brings_b_back_onto_a(pair):
    a, b = pair
    back = warp(b, dis_flow(a, b))
    err_warped = np.abs(back[16:-16, 16:-16].astype(int) - a[16:-16, 16:-16].astype(int)).mean()
    err_plain = np.abs(b[16:-16, 16:-16].astype(int) - a[16:-16, 16:-16].astype(int)).mean()
    assert back.dtype == a.dtype and err_warped < err_plain / 3


def test_consistency_mask_flags_inconsistent_flow():
    zero = np.zeros((20, 30, 2), np.float32)
    assert consistency_mask(zero, zero).all()
    forward = zero.copy()
    forward[5:10, 5:10] = (4.0, 0.0)  # no matching backward motion there
    mask = consistency_mask(forward, zero)
    assert not mask[5:10, 5:10].any() and mask[15:, 15:].all()


def test_resize_flow_scales_vectors():
    flow = np.full((10, 20, 2), (1.0, 2.0), np.float32)
    big = resize_flow(flow, 80, 20)
    assert big.shape == (20, 80, 2) and np.allclose(big[..., 0], 4.0) and np.allclose(big[..., 1], 4.0)


def test_to_gray8_depths():
    white16 = np.full((2, 2, 3), 65535, np.uint16)
    assert (to_gray8(white16) == 255).all() and (to_gray8(np.ones((2, 2), np.float32)) == 255).all()
    with pytest.raises(ValueError, match="preset"):
        dis_flow(white16, white16, preset="slowest")
