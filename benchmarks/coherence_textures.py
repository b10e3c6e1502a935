"""Generated textures in motion for the temporal-coherence benchmark (and its tests): water, foliage, grass and
film grain, each a list of ``HxWx3`` uint8 RGB frames (the ground truth), plus a stand-in "model" that invents
frame-varying detail.

Every generator is deterministic for a seed, renders each frame from scratch at its own time (so frames can be
made at any size), and moves the way the real thing does, which is what makes them hard for flow-guided
coherence:

- :func:`water`: a sum of travelling waves with deep-water dispersion (each wavelength at its own speed: the
  surface moves non-rigidly), shaded with a sky reflection and sun glints that sparkle, under a slow pan.
- :func:`foliage`: three layers of leaves at different depths (parallax, occlusion), each layer swaying.
- :func:`grass`: thousands of thin blades bending in a travelling gust, under a slow pan (fine, high-frequency
  texture that an upscaler re-invents every frame).
- :func:`film_grain`: a photo panned under fresh, luminance-dependent grain every frame (the source itself
  flickers: the model must not be made to keep one frame's grain).

:func:`noisy_upscale` is the stand-in upscaler: a lanczos upscale plus spatially correlated noise that changes
every frame, stronger where the image has texture (as a GAN upscaler's invented detail is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
from skimage import data

__all__ = ["GENERATORS", "film_grain", "foliage", "grass", "noisy_upscale", "water"]

Frames = list[np.ndarray]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def water(n: int, width: int, height: int, seed: int = 0, pan: tuple[float, float] = (0.4, 0.25)) -> Frames:
    """Moving water: 48 travelling waves (wavelengths 5-90 px, deep-water speeds up to about 2 px per frame),
    shaded by their normals (sky reflection, sun glints) while the camera pans by ``pan`` px per frame."""
    rng = np.random.default_rng(seed)
    count = 48
    wavelength = np.exp(rng.uniform(np.log(5.0), np.log(90.0), count))
    theta = rng.normal(0.3, 0.6, count)  # mostly one wind direction
    k = 2 * np.pi / wavelength
    kx, ky = k * np.cos(theta), k * np.sin(theta)
    amplitude = 0.0025 * wavelength ** 1.35  # steepness falls towards the short waves
    gravity = 0.35  # phase speed c = sqrt(g / k): about 2 px/frame for the longest waves
    omega = np.sqrt(gravity * k)
    phase = rng.uniform(0, 2 * np.pi, count)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    deep = np.array([14, 52, 74], np.float32)
    sky = np.array([150, 185, 210], np.float32)
    light = np.array([0.45, -0.35, 0.82], np.float32)
    light /= np.linalg.norm(light)
    frames = []
    for t in range(n):
        x, y = xs + pan[0] * t, ys + pan[1] * t
        hx = np.zeros((height, width), np.float32)
        hy = np.zeros((height, width), np.float32)
        for i in range(count):
            c = np.cos(kx[i] * x + ky[i] * y - omega[i] * t + phase[i]).astype(np.float32)
            hx += np.float32(amplitude[i] * kx[i]) * c
            hy += np.float32(amplitude[i] * ky[i]) * c
        norm = np.sqrt(hx * hx + hy * hy + 1.0)
        nx, ny, nz = -hx / norm, -hy / norm, 1.0 / norm
        fresnel = np.clip(0.25 + 6.0 * (1.0 - nz), 0.0, 1.0)
        # specular: reflect the view ray (0, 0, -1) about the normal, compare with the light
        rz = 2 * nz * nz - 1
        rx, ry = 2 * nz * nx, 2 * nz * ny
        glint = np.clip(rx * light[0] + ry * light[1] + rz * light[2], 0.0, 1.0) ** 80
        rgb = deep * (1 - fresnel[..., None]) + sky * fresnel[..., None] + 255.0 * glint[..., None]
        frames.append(_to_uint8(rgb))
    return frames


def foliage(n: int, width: int, height: int, seed: int = 0, pan: float = 0.8) -> Frames:
    """Leaves: three layers (far, middle, near: 0.5x, 1x, 1.6x the pan, larger leaves nearer) of filled
    ellipses in greens over a dark gap, each layer swaying sideways on its own period; near leaves hide far ones."""
    rng = np.random.default_rng(seed)
    margin = int(pan * 1.6 * n) + 40
    layers = []
    for depth, (count, size, speed) in enumerate(((1400, 5.0, 0.5), (700, 8.0, 1.0), (260, 13.0, 1.6))):
        leaves = np.column_stack([
            rng.uniform(-20, width + margin, count), rng.uniform(-20, height + 20, count),
            size * rng.uniform(0.6, 1.3, count), size * rng.uniform(0.25, 0.5, count), rng.uniform(0, 180, count),
        ])
        shade = rng.uniform(0.45, 1.0, count) * (0.6 + 0.2 * depth)
        hue = rng.uniform(0, 1, count)
        colours = np.column_stack([40 + 80 * hue, 110 + 90 * hue, 20 + 30 * hue]) * shade[:, None]
        layers.append((leaves, colours, speed, rng.uniform(0, 2 * np.pi), rng.uniform(14, 30)))
    frames = []
    for t in range(n):
        canvas = np.full((height, width, 3), (18, 30, 14), np.uint8)
        for leaves, colours, speed, sway_phase, sway_period in layers:
            sway = 2.5 * speed * np.sin(2 * np.pi * t / sway_period + sway_phase)
            for (x, y, a, b, angle), colour in zip(leaves, colours, strict=True):
                centre = (int(round((x - pan * speed * t + sway) * 16)), int(round(y * 16)))
                axes = (int(round(a * 16)), int(round(b * 16)))
                cv2.ellipse(canvas, centre, axes, float(angle), 0, 360, tuple(float(v) for v in colour),
                            -1, cv2.LINE_AA, 4)
        frames.append(canvas)
    return frames


def grass(n: int, width: int, height: int, seed: int = 0, pan: float = 0.6, blades: int = 4000) -> Frames:
    """Grass: ``blades`` thin curved blades (random roots, heights 14-40 px, greens to straw), bending with a gust
    that travels across the frame, drawn back to front while the camera pans by ``pan`` px per frame."""
    rng = np.random.default_rng(seed)
    margin = int(pan * n) + 20
    roots_x = rng.uniform(-10, width + margin, blades)
    roots_y = np.sort(rng.uniform(0, height + 30, blades))  # back to front
    tall = rng.uniform(14, 40, blades)
    lean = rng.normal(0, 0.25, blades)
    straw = rng.uniform(0, 1, blades) ** 3
    shade = rng.uniform(0.5, 1.0, blades)
    colours = (np.column_stack([50 + 150 * straw, 120 + 70 * straw, 30 + 40 * straw]) * shade[:, None])
    thickness = np.where(rng.uniform(0, 1, blades) < 0.8, 1, 2)
    steps = np.linspace(0, 1, 5)
    frames = []
    for t in range(n):
        canvas = np.full((height, width, 3), (34, 48, 20), np.uint8)
        gust = 0.35 * np.sin(0.05 * roots_x - 0.25 * t) + 0.15 * np.sin(0.013 * roots_x + 0.11 * roots_y - 0.1 * t)
        for i in range(blades):
            bend = lean[i] + gust[i]
            xs = roots_x[i] - pan * t + bend * tall[i] * steps ** 2
            ys = roots_y[i] - tall[i] * steps * (1 - 0.2 * abs(bend) * steps)
            points = np.round(np.column_stack([xs, ys]) * 16).astype(np.int32)
            cv2.polylines(canvas, [points], False, tuple(float(v) for v in colours[i]), int(thickness[i]),
                          cv2.LINE_AA, 4)
        frames.append(canvas)
    return frames


def film_grain(n: int, width: int, height: int, seed: int = 0, pan: tuple[float, float] = (1.1, 0.4),
               strength: float = 9.0) -> Frames:
    """scikit-image's coffee photo panned by ``pan`` px per frame under fresh film grain every frame (Gaussian
    noise blurred by 0.6 px, strongest in the mid-tones, ``strength`` levels at its peak)."""
    rng = np.random.default_rng(seed)
    photo = data.coffee()
    scale = max(width / (photo.shape[1] - 80), height / (photo.shape[0] - 80), 1.0)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, -(20 + pan[0] * t)], [0, 1, -(20 + pan[1] * t)]])
        clean = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        base = clean.astype(np.float32)
        grey = base.mean(axis=2, keepdims=True) / 255.0
        noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 0.6)
        noise *= np.float32(1.0 / max(float(noise.std()), 1e-6))
        frames.append(_to_uint8(base + strength * 4 * grey * (1 - grey) * noise[..., None]))
    return frames


GENERATORS: dict[str, Callable[..., Frames]] = {"water": water, "foliage": foliage, "grass": grass,
                                                 "grain": film_grain}
"""Generator by benchmark case name; each is ``generator(n, width, height, seed=0)``."""


def noisy_upscale(lrs: Sequence[np.ndarray], scale: int, seed: int = 0, noise: float = 6.0) -> Frames:
    """A stand-in upscaler with per-frame invented detail: lanczos x``scale`` plus noise that is new every frame,
    blurred to about one source pixel's grain (sigma ``scale/4``) and scaled by the local texture (gradient
    magnitude of the upscale, from 0.4x ``noise`` levels in flat areas to 1.6x on strong texture)."""
    rng = np.random.default_rng(seed)
    out = []
    for lr in lrs:
        height, width = lr.shape[0] * scale, lr.shape[1] * scale
        up = cv2.resize(lr, (width, height), interpolation=cv2.INTER_LANCZOS4).astype(np.float32)
        grey = cv2.cvtColor(up, cv2.COLOR_RGB2GRAY)
        texture = cv2.GaussianBlur(cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)),
                                   (0, 0), scale)
        texture = np.clip(texture / 60.0, 0.0, 1.0)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), scale / 4)
        grain *= np.float32(1.0 / max(float(grain.std()), 1e-6))
        out.append(_to_uint8(up + grain * (noise * (0.4 + 1.2 * texture))[..., None]))
    return out
