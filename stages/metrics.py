"""Objective quality figures that need no reference: the flicker score, and the report files.

Flicker score (the product spec's seed formula), for consecutive frames t-1, t:
``mean(|Y_t - Y_{t-1}|) / mean((Y_t + Y_{t-1}) / 2)`` where Y is BT.709 luma of the non-linear RGB values
scaled to [0, 1], over the whole frame (no border crop). The video score is the mean over all pairs.
Real motion counts as flicker too (Vid4 ground truth scores about 0.107), so the report puts the output's
score next to the same score of a lanczos upscale of the same source: a ratio near 1 means no added flicker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.fsutil import atomic_write_text

FLICKER_DEFINITION = (
    "flicker(t) = mean|Y_t - Y_{t-1}| / mean((Y_t + Y_{t-1})/2), Y = BT.709 luma of non-linear RGB in [0,1], "
    "whole frame, no crop; video score = mean over consecutive pairs"
)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


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


def mean_ignoring_nan(values: Sequence[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else None


@dataclass(frozen=True)
class ReportFiles:
    frames_parquet: str
    chunks_parquet: str
    summary_json: str


def _write_parquet(path: Path, columns: Mapping[str, Sequence[Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table({name: list(values) for name, values in columns.items()}), tmp)
    tmp.replace(path)


def write_report(
    folder: str | Path,
    frames: Mapping[str, Sequence[Any]],
    chunks: Mapping[str, Sequence[Any]],
    summary: Mapping[str, Any],
) -> ReportFiles:
    """Write the per-frame and per-chunk tables (Parquet) and the summary (JSON) into ``folder``.

    The summary is written last, so its presence means the report is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        frames_parquet=str(folder / "frames.parquet"),
        chunks_parquet=str(folder / "chunks.parquet"),
        summary_json=str(folder / "summary.json"),
    )
    _write_parquet(Path(files.frames_parquet), frames)
    _write_parquet(Path(files.chunks_parquet), chunks)
    full = {**summary, "files": asdict(files)}
    atomic_write_text(Path(files.summary_json), json.dumps(full, indent=2, sort_keys=True, default=str))
    return files
