"""Editing scenes into one master: each frame fitted to the output canvas, scenes joined by cuts or crossfades.

Every scene arrives as lossless chunks at the plan's frame rate (after interpolation and upscaling). The master is
built frame by frame from an edit plan (:func:`plan_edit`): a cut puts the next scene's first frame right after
the last frame of the scene before; a crossfade of ``d`` frames overlaps the last ``d`` frames of one scene with
the first ``d`` frames of the next, the next scene's weight rising ``1/(d+1), 2/(d+1), ... d/(d+1)``, so the
master is ``d`` frames shorter than the two scenes end to end. Blending is a linear mix of the display-referred
code values (what editing tools call a "dissolve").

Fitting (:func:`fit_to_canvas`) keeps the aspect ratio: the frame is scaled to the largest size that fits the
canvas (area averaging when shrinking, Lanczos when enlarging) and centred on black (letterbox or pillarbox).

Alpha (:func:`render_matte_chunk`): the master's matte is built from the same edit plan. A scene's matte is its
alpha chunks (the alpha value in all three channels) or, for a scene without alpha, fully opaque. Each matte frame
is first resized with Lanczos to the size of the scene's picture (its frames after AI upscaling: the model
enlarges the picture, never the matte), then fitted like the picture, so both land on the same pixels; the bars
around a fitted picture are transparent (alpha 0), and a crossfade mixes the two mattes with the pictures'
weights.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.errors import ChunkError, SettingsError
from stages.media.chunkio import ChunkWriter, read_frames, storage_depth
from stages.store.fsutil import atomic_output

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditFrame:
    """Master frame ``index``: frame ``a_frame`` of scene ``a_scene``, mixed with frame ``b_frame`` of scene
    ``b_scene`` at ``weight`` (the share of b, in (0, 1)) during a crossfade; ``b_scene`` is None otherwise."""

    index: int
    a_scene: int
    a_frame: int
    b_scene: int | None = None
    b_frame: int = 0
    weight: float = 0.0


@dataclass(frozen=True)
class SceneChunk:
    """One lossless chunk of a scene: its first frame's index within the scene, its frame count and file."""

    start_frame: int
    frame_count: int
    path: str


@dataclass(frozen=True)
class SceneMatte:
    """The alpha of one scene for :func:`render_matte_chunk`: its alpha chunks (numbered like the scene's own
    chunks, before any upscaling), or no chunk for a fully opaque scene; ``width`` x ``height`` is the size of
    the scene's picture frames, to which each matte frame is resized before it is fitted to the canvas."""

    chunks: tuple[SceneChunk, ...]
    width: int
    height: int


def plan_edit(frame_counts: Sequence[int], overlaps: Sequence[int], names: Sequence[str] | None = None
              ) -> list[EditFrame]:
    """The master's frames for scenes of ``frame_counts`` frames joined with ``overlaps[k]`` crossfade frames
    into scene ``k`` (``overlaps[0]`` must be 0; 0 is a cut).

    Raises:
        SettingsError: a scene has no frame, or a crossfade is longer than a scene can give (a scene's
            incoming and outgoing crossfades together may not need more frames than it has).
    """
    counts = [int(c) for c in frame_counts]
    fades = [int(d) for d in overlaps]
    labels = list(names) if names is not None else [f"scene {k + 1}" for k in range(len(counts))]
    if len(fades) != len(counts) or not counts:
        raise SettingsError("edit: give one transition per scene (the first one a cut)")
    if fades[0] != 0:
        raise SettingsError(f"edit: {labels[0]} is the first scene and cannot start with a crossfade; use a cut")
    for k, count in enumerate(counts):
        if count < 1:
            raise SettingsError(f"edit: {labels[k]} has no frame; check its sequence")
        outgoing = fades[k + 1] if k + 1 < len(counts) else 0
        if fades[k] < 0 or fades[k] + outgoing > count:
            raise SettingsError(
                f"edit: {labels[k]} has {count} frames at the output rate, but its crossfades need "
                f"{fades[k] + outgoing} ({fades[k]} in, {outgoing} out); shorten the crossfade durations"
            )
    plan: list[EditFrame] = []
    for k, count in enumerate(counts):
        outgoing = fades[k + 1] if k + 1 < len(counts) else 0
        for frame in range(fades[k], count - outgoing):
            plan.append(EditFrame(len(plan), k, frame))
        for j in range(outgoing):
            plan.append(EditFrame(len(plan), k, count - outgoing + j, k + 1, j, (j + 1) / (outgoing + 1)))
    return plan


def fit_to_canvas(frame: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """``frame`` (``HxWx3``, any integer dtype) scaled to fit ``canvas`` = (width, height), aspect kept, centred
    on black. Returned as it is when it already has the canvas size."""
    width, height = canvas
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = min(width / w, height / h)
    new_w = min(width, max(1, round(w * scale)))
    new_h = min(height, max(1, round(h * scale)))
    flag = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    resized = cv2.resize(frame, (new_w, new_h), interpolation=flag)  # lanczos may overshoot: cv2 saturates ints
    if (new_w, new_h) == (width, height):
        return resized
    out = np.zeros((height, width, frame.shape[2]), dtype=frame.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def to_depth(frame: np.ndarray, bit_depth: int) -> np.ndarray:
    """``frame`` at storage depth ``bit_depth`` (8 -> uint8, 16 -> uint16); 8 -> 16 bits is exact (x257)."""
    if storage_depth(bit_depth) == 16:
        return frame if frame.dtype == np.uint16 else frame.astype(np.uint16) * 257
    if frame.dtype == np.uint8:
        return frame
    return ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)


class _SceneReader:
    """Frames of one scene by index, read forward through its chunks (a jump back reopens a chunk)."""

    def __init__(self, chunks: Sequence[SceneChunk], name: str) -> None:
        self._chunks = sorted(chunks, key=lambda c: c.start_frame)
        self._name = name
        self._current: tuple[SceneChunk, Iterator[np.ndarray]] | None = None
        self._position = 0  # index of the next frame the open iterator yields

    def get(self, index: int) -> np.ndarray:
        chunk = next((c for c in self._chunks if c.start_frame <= index < c.start_frame + c.frame_count), None)
        if chunk is None:
            raise ChunkError(f"edit: {self._name} has no frame {index}; redo its chunks")
        if self._current is None or self._current[0] is not chunk or index < self._position:
            self.close()
            self._current = (chunk, read_frames(chunk.path))
            self._position = chunk.start_frame
        frames = self._current[1]
        for _ in range(index - self._position):
            next(frames, None)
        frame = next(frames, None)
        if frame is None:
            raise ChunkError(f"edit: chunk {chunk.path} of {self._name} ends before frame {index}; redo it")
        self._position = index + 1
        return frame

    def close(self) -> None:
        if self._current is not None:
            close = getattr(self._current[1], "close", None)
            if close is not None:
                close()
            self._current = None


def render_edit_chunk(
    frames: Sequence[EditFrame],
    scenes: Sequence[Sequence[SceneChunk]],
    out_path: str | os.PathLike[str],
    canvas: tuple[int, int],
    bit_depth: int,
    *,
    names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the master frames ``frames`` (a slice of :func:`plan_edit`, in order) to the lossless chunk
    ``out_path`` at ``canvas`` and ``bit_depth`` (8 or 16); returns the number of frames written.

    Written under a temporary name and renamed at the end: on any failure nothing is left at ``out_path``.

    Raises:
        ChunkError: a scene chunk is missing, unreadable or shorter than the plan needs.
    """
    labels = _labels(names, len(scenes))
    readers = [_SceneReader(chunks, labels[k]) for k, chunks in enumerate(scenes)]
    return _render(frames, [reader.get for reader in readers], readers, out_path, canvas, bit_depth, progress)


def render_matte_chunk(
    frames: Sequence[EditFrame],
    mattes: Sequence[SceneMatte],
    out_path: str | os.PathLike[str],
    canvas: tuple[int, int],
    bit_depth: int,
    *,
    names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the alpha of the master frames ``frames`` (the same slice :func:`render_edit_chunk` got) to the
    lossless chunk ``out_path``: each scene's matte resized to its picture size (Lanczos), fitted to ``canvas``
    on transparent bars, crossfades mixed like the pictures; the alpha value in all three channels, at
    ``bit_depth`` (8 or 16). Returns the number of frames written; on any failure nothing is left at
    ``out_path``.

    Raises:
        ChunkError: a matte chunk is missing, unreadable or shorter than the plan needs.
        SettingsError: a scene's picture size is not positive.
    """
    labels = _labels(names, len(mattes))
    readers, fetchers = [], []
    for k, matte in enumerate(mattes):
        if matte.width < 1 or matte.height < 1:
            raise SettingsError(f"edit: {labels[k]} has a picture size of {matte.width}x{matte.height}; "
                                "give the size of its frames")
        reader = _SceneReader(matte.chunks, f"the alpha of {labels[k]}") if matte.chunks else None
        if reader is not None:
            readers.append(reader)
        fetchers.append(_matte_fetcher(reader, matte.width, matte.height))
    return _render(frames, fetchers, readers, out_path, canvas, bit_depth, progress)


def _matte_fetcher(reader: _SceneReader | None, width: int, height: int) -> Callable[[int], np.ndarray]:
    """Frame ``index`` of a scene's matte at its picture size: read and resized (Lanczos, saturating), or opaque
    when the scene has no alpha chunk."""
    opaque = np.full((height, width, 3), 255, dtype=np.uint8)  # raised to 16 bits exactly by to_depth

    def fetch(index: int) -> np.ndarray:
        if reader is None:
            return opaque
        frame = reader.get(index)
        if frame.shape[:2] == (height, width):
            return frame
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)

    return fetch


def _labels(names: Sequence[str] | None, count: int) -> list[str]:
    return list(names) if names is not None else [f"scene {k + 1}" for k in range(count)]


def _render(
    frames: Sequence[EditFrame],
    fetchers: Sequence[Callable[[int], np.ndarray]],
    readers: Sequence[_SceneReader],
    out_path: str | os.PathLike[str],
    canvas: tuple[int, int],
    bit_depth: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """The edit loop: fetch each master frame's scene frame(s), fit, mix a crossfade, write; closes ``readers``."""
    try:
        if not frames:
            raise ChunkError("edit: no frame to write; plan the edit first")
        if any(b.index <= a.index for a, b in itertools.pairwise(frames)):
            raise ChunkError("edit: the frames are not in master order; pass a slice of plan_edit's plan")
        out = Path(out_path)
        depth = storage_depth(bit_depth)
        peak = 65535.0 if depth == 16 else 255.0
        dtype = np.uint16 if depth == 16 else np.uint8
        with atomic_output(out) as tmp, ChunkWriter(tmp, canvas[0], canvas[1], bit_depth=depth) as writer:
            for done, frame in enumerate(frames, start=1):
                image = to_depth(fit_to_canvas(fetchers[frame.a_scene](frame.a_frame), canvas), depth)
                if frame.b_scene is not None:
                    other = to_depth(fit_to_canvas(fetchers[frame.b_scene](frame.b_frame), canvas), depth)
                    mixed = image.astype(np.float32) * (1.0 - frame.weight) + other.astype(np.float32) * frame.weight
                    image = np.clip(np.rint(mixed), 0, peak).astype(dtype)
                writer.write(image)
                if progress is not None:
                    progress(done, len(frames))
    finally:
        for reader in readers:
            reader.close()
    logger.debug("edit: %s: %d frames at %dx%d", out.name, len(frames), *canvas)
    return len(frames)
