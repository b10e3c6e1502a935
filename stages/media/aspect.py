"""Pixel aspect: the sample aspect ratio (SAR) a stream declares, square-pixel sizes and how ratios are written."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av

__all__ = ["SAR_RANGE", "format_ratio", "sample_aspect", "square_pixel_size"]

log = logging.getLogger(__name__)

SAR_RANGE = (Fraction(1, 10), Fraction(10))
"""Pixel aspects outside this range are broken headers, not real pixel shapes."""


def square_pixel_size(width: int, height: int, sample_aspect: Fraction) -> tuple[int, int]:
    """``(width, height)`` with pixels of aspect ``sample_aspect`` resampled to square ones at the same height:
    the width becomes ``width * sample_aspect``, rounded to an even number (4:2:0 needs one) and at least 2."""
    if sample_aspect == 1:
        return width, height
    return max(2, 2 * round(width * sample_aspect / 2)), height


def format_ratio(value: Fraction) -> str:
    """``8:9`` for Fraction(8, 9): how players and ffprobe write an aspect ratio."""
    return f"{value.numerator}:{value.denominator}"


def sample_aspect(stream: av.video.stream.VideoStream, path: Path) -> Fraction:
    """The stream's sample aspect ratio: the container's (MP4 ``pasp``, Matroska display size) when it gives one,
    else the bitstream's (H.264/HEVC VUI, MPEG-2 sequence header), else 1 (square pixels). A value outside 1:10 to
    10:1 is a broken header and is ignored with a note in the log."""
    for value in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if not value or value.numerator <= 0 or value.denominator <= 0:
            continue
        ratio = Fraction(value.numerator, value.denominator)
        if SAR_RANGE[0] <= ratio <= SAR_RANGE[1]:
            return ratio
        log.info("probe: %s declares a pixel aspect of %s; ignored (not a real pixel shape)", path.name,
                 format_ratio(ratio))
    return Fraction(1)
