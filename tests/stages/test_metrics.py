"""Flicker score definition and report files."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq

from stages.metrics import (
    FlickerMeter,
    flicker_pair,
    lanczos_upscale,
    luma,
    mean_ignoring_nan,
    write_report,
)


def test_luma_range_and_weights():
    white8 = np.full((2, 2, 3), 255, np.uint8)
    white16 = np.full((2, 2, 3), 65535, np.uint16)
    assert np.allclose(luma(white8), 1.0) and np.allclose(luma(white16), 1.0)
    green = np.zeros((1, 1, 3), np.uint8)
    green[..., 1] = 255
    assert np.isclose(luma(green)[0, 0], 0.7152)


def test_flicker_of_static_video_is_zero_and_of_a_flash_is_positive():
    meter = FlickerMeter()
    frame = np.full((8, 8, 3), 100, np.uint8)
    values = [meter.add(frame) for _ in range(3)]
    assert math.isnan(values[0]) and values[1:] == [0.0, 0.0]
    bright = np.full((8, 8, 3), 150, np.uint8)
    value = meter.add(bright)
    # |150-100| / mean(125) in luma units
    assert np.isclose(value, 50 / 125, rtol=1e-5)
    assert np.isclose(flicker_pair(luma(frame), luma(bright)), value)


def test_mean_ignores_nan():
    assert mean_ignoring_nan([math.nan, 1.0, 3.0]) == 2.0
    assert mean_ignoring_nan([math.nan]) is None


def test_lanczos_size():
    out = next(lanczos_upscale([np.zeros((10, 12, 3), np.uint8)], 48, 40))
    assert out.shape == (40, 48, 3)


def test_write_report(tmp_path):
    files = write_report(tmp_path / "r", {"frame": [0, 1], "flicker": [math.nan, 0.1]},
                         {"chunk": [0], "frames": [2]}, {"flicker": 0.1})
    assert pq.read_table(files.frames_parquet).num_rows == 2
    assert pq.read_table(files.chunks_parquet).column("frames").to_pylist() == [2]
    assert json.loads(open(files.summary_json).read())["flicker"] == 0.1


def test_lanczos_luma_equals_luma_of_lanczos_upscale():
    from stages.metrics import lanczos_luma

    rng = np.random.default_rng(3)
    smooth = (np.clip(rng.random((9, 11, 3)) * 0.5 + 0.25, 0, 1) * 255).astype(np.uint8)
    a = next(lanczos_luma([smooth], 44, 36))
    b = luma(next(lanczos_upscale([smooth], 44, 36)))
    assert a.shape == (36, 44) and np.abs(a - b).max() < 3 / 255  # only 8-bit rounding differs
