"""Is this animation or live action? The content check behind ``--model auto``.

Drawn animation (cel anime, cartoons, most 2D motion graphics) is made of flat fills bounded by sharp lines: a
few colours cover most of the picture, most pixels sit in regions with no texture at all, and the gradients
that exist are either nothing or a hard edge. Camera footage has sensor noise and grain, soft gradients and
texture everywhere, so almost no pixel is exactly flat and gradients of every size occur. Three measures of a
handful of frames sampled through the video say which (computed on the luma and RGB of each frame reduced to
at most :data:`ANALYSIS_LONG_SIDE` pixels, so the answer does not depend on the resolution):

- ``flat``: the share of pixels whose 3x3 neighbourhood varies by at most :data:`FLAT_RANGE` code values in
  every channel;
- ``palette``: the share of pixels covered by the :data:`PALETTE_SIZE` most frequent colours (RGB quantised
  to 5 bits per channel);
- ``mid_gradients``: among pixels that are not flat, the share whose gradient is moderate (texture, soft
  shading) rather than a hard edge.

A logistic model of the three (weights in :data:`_WEIGHTS`, fitted by hand on generated cartoons, cartoonised
photos and compressed cel-like clips against photos filmed by a moving camera, Vid4 and real camera clips;
figures in docs/models.md) gives the probability of animation. Live action is the answer unless animation is
clearly more likely (:data:`ANIMATION_THRESHOLD`): the live-action network is the safer mistake (it keeps
texture; the anime network paints it over).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from stages.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "ANIMATION_THRESHOLD",
    "ContentGuess",
    "classify_frames",
    "classify_video",
    "content_features",
]

ContentKind = Literal["animation", "live-action"]

ANALYSIS_LONG_SIDE = 480
FLAT_RANGE = 2
PALETTE_SIZE = 16
SAMPLE_FRAMES = 8
ANIMATION_THRESHOLD = 0.6
"""Probability of animation above which the animation network is chosen (live action is the default answer)."""

# logit = bias + sum(weight * feature); fitted by hand on the calibration set described in docs/models.md.
_WEIGHTS = {"flat": 9.0, "palette": 8.0, "mid_gradients": -8.0}
_BIAS = -3.0
_EDGE_GRADIENT = 60.0  # Sobel magnitude (8-bit luma, 3x3 kernel) from which a gradient counts as a hard edge
_MID_GRADIENT = 8.0  # ... and from which it counts as texture or shading (below: noise)


@dataclass(frozen=True)
class ContentGuess:
    """What the content check decided and why.

    ``probability`` is the probability of animation; ``confidence`` that of the answer given.
    """

    kind: ContentKind
    probability: float
    features: dict[str, float]
    frames: int

    @property
    def confidence(self) -> float:
        return self.probability if self.kind == "animation" else 1.0 - self.probability

    @property
    def reason(self) -> str:
        """One line for the log and the report."""
        f = self.features
        return (f"content check on {self.frames} frames: {self.kind} (confidence {self.confidence:.0%}; "
                f"flat pixels {f['flat']:.0%}, {PALETTE_SIZE} main colours cover {f['palette']:.0%}, "
                f"textured gradients {f['mid_gradients']:.0%})")


def _reduced(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"content check: expected an HxWx3 RGB frame, got shape {frame.shape}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(np.asarray(frame, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = frame.shape[:2]
    factor = ANALYSIS_LONG_SIDE / max(h, w)
    if factor < 1.0:
        frame = cv2.resize(frame, (max(1, round(w * factor)), max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
    # Stretch the contrast (1st-99th percentile to the full range): a dark or washed-out shot is measured
    # like a well exposed one, instead of looking flat because all its values sit in a few codes.
    low, high = np.percentile(frame, (1, 99))
    if high - low >= 8:
        frame = cv2.convertScaleAbs(frame, alpha=255.0 / (high - low), beta=-low * 255.0 / (high - low))
    return frame


def content_features(frame: np.ndarray) -> dict[str, float]:
    """The three measures of one RGB frame (uint8, uint16 or float in [0, 1]); see the module docstring."""
    small = _reduced(frame)
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(small, kernel) - cv2.erode(small, kernel)  # per-channel 3x3 range
    flat_mask = spread.max(axis=2) <= FLAT_RANGE
    quantised = (small >> 3).astype(np.int32)
    codes = (quantised[..., 0] << 10) | (quantised[..., 1] << 5) | quantised[..., 2]
    counts = np.bincount(codes.ravel(), minlength=1 << 15)
    top = np.sort(counts)[-PALETTE_SIZE:].sum()
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    magnitude = cv2.magnitude(cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3))
    graded = magnitude[~flat_mask]
    moving = graded[graded >= _MID_GRADIENT]
    mid = float(np.mean(moving < _EDGE_GRADIENT)) if moving.size else 0.0
    return {"flat": float(flat_mask.mean()), "palette": float(top / codes.size), "mid_gradients": mid}


def classify_frames(frames: Sequence[np.ndarray]) -> ContentGuess:
    """Animation or live action, from a few RGB frames of one video (the median of each measure is used)."""
    if not frames:
        raise InputError("content check: no frames to look at; the video has no decodable frame")
    per_frame = [content_features(frame) for frame in frames]
    features = {name: float(np.median([f[name] for f in per_frame])) for name in _WEIGHTS}
    logit = _BIAS + sum(_WEIGHTS[name] * value for name, value in features.items())
    probability = 1.0 / (1.0 + math.exp(-logit))
    kind: ContentKind = "animation" if probability > ANIMATION_THRESHOLD else "live-action"
    return ContentGuess(kind, probability, features, len(frames))


def classify_video(path: str | Path, duration: float | None = None, samples: int = SAMPLE_FRAMES) -> ContentGuess:
    """:func:`classify_frames` on ``samples`` frames spread evenly through the video at ``path``.

    ``duration`` (seconds) avoids probing again when the caller knows it. Deterministic for a given file, and
    remembered per file (path, size, modification time) in the process: the CLI, which fetches the weights before
    the run, and the run itself (in the same process) look at the video once.

    Raises:
        InputError: the file has no decodable video frame.
    """
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise InputError(f"content check: cannot read {resolved} ({exc}); check the path") from exc
    guess = _classify_file(str(resolved), stat.st_size, stat.st_mtime_ns, duration, samples)
    log.info("model auto: %s: %s", resolved.name, guess.reason)
    return guess


@functools.lru_cache(maxsize=64)
def _classify_file(path: str, _size: int, _mtime_ns: int, duration: float | None, samples: int) -> ContentGuess:
    from stages.media.preview import frame_at

    if duration is None:
        from stages.media.probe import probe_video

        duration = probe_video(path).duration
    span = max(float(duration or 0.0), 0.0)
    times = [span * (i + 0.5) / samples for i in range(samples)] if span > 0 else [0.0]
    return classify_frames([frame_at(path, t) for t in times])
