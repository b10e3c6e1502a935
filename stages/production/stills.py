"""Stills of the master: a thumbnail and a contact sheet, written as 8-bit PNG or JPEG.

Both take the master as :mod:`stages.production.deliverables` describes it (lossless chunk files in order and a
constant frame rate) and decode only the frames they show.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from stages.errors import EncodeError, SettingsError
from stages.production.deliverables import _check_fps, _check_master, _frame_at, _frames
from stages.store.fsutil import atomic_write_bytes

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_WIDTH = 7680
MIN_IMAGE_WIDTH = 16
MAX_GRID = 16
CONTACT_SHEET_GAP = 4  # pixels between tiles and around the grid
JPEG_QUALITY = 92

_SHEET_BACKGROUND = 24  # grey level of the gaps and of tiles without a frame
_LABEL_PADDING = 4
_LABEL_MAX_SCALE = 0.5
_LABEL_MIN_SCALE = 0.3


@dataclass(frozen=True)
class ThumbnailResult:
    """A written still: the frame it shows (index and start time in seconds) and its size in pixels."""

    path: str
    frame_index: int
    time_seconds: float
    width: int
    height: int


@dataclass(frozen=True)
class ContactSheetResult:
    """A written contact sheet: the frame index of each tile in reading order (fewer than ``columns * rows``
    when the video has fewer frames) and the sheet's size in pixels."""

    path: str
    frame_indices: tuple[int, ...]
    columns: int
    rows: int
    width: int
    height: int


def format_timecode(frame_index: int, fps: Fraction | float) -> str:
    """``HH:MM:SS:FF`` of ``frame_index`` counted at the rounded rate (non-drop-frame: 29.97 counts as 30)."""
    base = max(1, round(fps))
    seconds, frames = divmod(int(frame_index), base)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def write_thumbnail(
    chunks: Sequence[str | os.PathLike[str]],
    fps: Fraction | int,
    out_path: str | os.PathLike[str],
    *,
    at: float = 0.5,
    at_seconds: float | None = None,
    width: int | None = None,
) -> ThumbnailResult:
    """Write the frame shown at fraction ``at`` of the duration (or at ``at_seconds``) as an 8-bit PNG or JPEG
    (by ``out_path``'s suffix), resized to ``width`` pixels wide (aspect kept) when given.

    The frame shown at ``t`` seconds is ``floor(t * fps)``, the last one at the very end; 16-bit frames are
    reduced to 8 bits with rounding. Only the chunk holding the frame is decoded. The write is atomic.

    Raises:
        SettingsError: ``at`` outside [0, 1], ``at_seconds`` outside [0, duration], ``width`` outside
            16..7680, bad fps, a suffix other than .png/.jpg/.jpeg.
        ChunkError: no chunks, a chunk is missing, unreadable or empty, or frames differ in size.
    """
    out = Path(out_path)
    _check_image_suffix(out)
    rate = _check_fps(fps)
    if width is not None:
        _check_width(width, "thumbnail width")
    master = _check_master(chunks)
    duration = master.total / rate
    if at_seconds is not None:
        if not isinstance(at_seconds, (int, float)) or not 0 <= at_seconds <= float(duration):
            raise SettingsError(f"thumbnail: at_seconds {at_seconds!r} is outside the video (0..{float(duration):.3f} "
                                "s); pick a time inside it")
        position = at_seconds * float(rate)
    else:
        if not isinstance(at, (int, float)) or not 0 <= at <= 1:
            raise SettingsError(f"thumbnail: at {at!r} is outside 0..1; pass a fraction of the duration, e.g. 0.5")
        position = at * master.total
    index = min(master.total - 1, math.floor(position + 1e-6))
    frame = _frame_at(master, index)
    image = _resize(_to_8bit(frame), width) if width is not None else _to_8bit(frame)
    atomic_write_bytes(out, _encode_image(image, out))
    logger.info("thumbnail: wrote %s (frame %d, %dx%d)", out, index, image.shape[1], image.shape[0])
    return ThumbnailResult(path=str(out), frame_index=index, time_seconds=float(index / rate),
                           width=image.shape[1], height=image.shape[0])


def write_contact_sheet(
    chunks: Sequence[str | os.PathLike[str]],
    fps: Fraction | int,
    out_path: str | os.PathLike[str],
    *,
    columns: int = 4,
    rows: int = 4,
    tile_width: int = 320,
    labels: bool = True,
) -> ContactSheetResult:
    """Write a ``columns`` x ``rows`` grid of frames spread evenly over the video as an 8-bit PNG or JPEG.

    Tile ``k`` (reading order) shows frame ``floor((k + 0.5) * N / T)`` of the ``N`` frames for ``T`` tiles, the
    middle of the k-th of T equal spans; with fewer frames than tiles every frame gets a tile and the rest stay
    dark. Each tile is ``tile_width`` x ``round(tile_width * H / W)`` pixels, with a black strip under it holding
    its timecode (:func:`format_timecode`) when ``labels``; tiles are :data:`CONTACT_SHEET_GAP` pixels apart and
    from the border. The sheet is ``columns * tile_width + (columns + 1) * gap`` wide and
    ``rows * (tile_height + strip) + (rows + 1) * gap`` high. Frames are decoded once, in order, up to the last
    one needed (chunks are counted by demuxing first); only the sheet is held in memory. The write is atomic.

    Raises:
        SettingsError: ``columns``/``rows`` outside 1..16, ``tile_width`` outside 16..7680, bad fps, a suffix
            other than .png/.jpg/.jpeg.
        ChunkError: no chunks, a chunk is missing, unreadable or empty, or frames differ in size.
    """
    out = Path(out_path)
    _check_image_suffix(out)
    rate = _check_fps(fps)
    for value, what in ((columns, "columns"), (rows, "rows")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GRID:
            raise SettingsError(f"contact sheet: {what} {value!r} is outside 1..{MAX_GRID}; use 4")
    _check_width(tile_width, "contact sheet tile width")
    master = _check_master(chunks)
    tiles = columns * rows
    if master.total >= tiles:
        indices = [((2 * k + 1) * master.total) // (2 * tiles) for k in range(tiles)]
    else:
        indices = list(range(master.total))
    tile_height = max(1, round(tile_width * master.height / master.width))
    font_scale, strip = _label_layout(tile_width) if labels else (0.0, 0)
    gap = CONTACT_SHEET_GAP
    cell_height = tile_height + strip
    sheet = np.full((rows * cell_height + (rows + 1) * gap, columns * tile_width + (columns + 1) * gap, 3),
                    _SHEET_BACKGROUND, dtype=np.uint8)
    wanted = {index: tile for tile, index in enumerate(indices)}
    for index, frame in enumerate(_frames(master, stop=indices[-1] + 1)):
        tile = wanted.get(index)
        if tile is None:
            continue
        top = gap + (tile // columns) * (cell_height + gap)
        left = gap + (tile % columns) * (tile_width + gap)
        sheet[top:top + tile_height, left:left + tile_width] = _resize(_to_8bit(frame), tile_width, tile_height)
        if labels:
            _draw_label(sheet, format_timecode(index, rate), top + tile_height, left, tile_width, strip, font_scale)
    atomic_write_bytes(out, _encode_image(sheet, out))
    logger.info("contact sheet: wrote %s (%dx%d tiles, %dx%d)", out, columns, rows, sheet.shape[1], sheet.shape[0])
    return ContactSheetResult(path=str(out), frame_indices=tuple(indices), columns=columns, rows=rows,
                              width=sheet.shape[1], height=sheet.shape[0])


def _check_image_suffix(out: Path) -> None:
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise SettingsError(f"deliver: {out.name} is not a .png, .jpg or .jpeg file; name the image with one of them")


def _check_width(width: int, what: str) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_IMAGE_WIDTH <= width <= MAX_IMAGE_WIDTH:
        raise SettingsError(f"deliver: {what} {width!r} is outside {MIN_IMAGE_WIDTH}..{MAX_IMAGE_WIDTH}; use 320")


def _to_8bit(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as uint8: 16-bit values scaled by 255/65535 with rounding."""
    if frame.dtype == np.uint8:
        return frame
    return ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _resize(image: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """``image`` at ``width`` x ``height`` (height from the aspect when None): area filter down, cubic up."""
    if height is None:
        height = max(1, round(width * image.shape[0] / image.shape[1]))
    if (height, width) == image.shape[:2]:
        return image
    shrink = width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _encode_image(rgb: np.ndarray, out: Path) -> bytes:
    """PNG or JPEG bytes of an RGB uint8 image, by ``out``'s suffix."""
    png = out.suffix.lower() == ".png"
    params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    ok, data = cv2.imencode(".png" if png else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise EncodeError(f"deliver: OpenCV could not encode {out.name}; check the image size")
    return data.tobytes()


def _label_layout(tile_width: int) -> tuple[float, int]:
    """Font scale that fits a timecode into ``tile_width`` (never below a legible minimum: narrower tiles clip the
    text) and the height of the label strip."""
    (text_width, _), _ = cv2.getTextSize("00:00:00:00", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    scale = min(_LABEL_MAX_SCALE, max(_LABEL_MIN_SCALE, (tile_width - 2 * _LABEL_PADDING) / text_width))
    (_, text_height), baseline = cv2.getTextSize("00:00:00:00", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return scale, text_height + baseline + 2 * _LABEL_PADDING


def _draw_label(sheet: np.ndarray, text: str, top: int, left: int, width: int, strip: int, scale: float) -> None:
    """A black strip at (``top``, ``left``) of ``width`` x ``strip`` pixels with ``text`` in white, clipped to it."""
    label = np.zeros((strip, width, 3), dtype=np.uint8)
    (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(label, text, (_LABEL_PADDING, _LABEL_PADDING + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    sheet[top:top + strip, left:left + width] = label
