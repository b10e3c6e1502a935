"""Metric definitions (flicker, PSNR, SSIM, VMAF, E_warp), grades, plots and report files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from skimage import data

from stages.quality.metrics import (
    METRIC_DEFINITIONS,
    FlickerMeter,
    VmafUnavailableError,
    WarpErrorMeter,
    flicker_pair,
    flow_with_mask,
    has_libvmaf,
    lanczos_upscale,
    luma,
    psnr,
    ssim,
    vmaf,
    warp_error,
)
from stages.quality.summary import (
    GRADE_LABELS_EN,
    STABILITY_LABELS_EN,
    grade,
    grade_details,
    mean_ignoring_nan,
    plot_per_frame,
    quality_summary,
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
    assert json.loads(Path(files.summary_json).read_text())["flicker"] == 0.1


def test_lanczos_luma_equals_luma_of_lanczos_upscale():
    from stages.quality.metrics import lanczos_luma

    rng = np.random.default_rng(3)
    smooth = (np.clip(rng.random((9, 11, 3)) * 0.5 + 0.25, 0, 1) * 255).astype(np.uint8)
    a = next(lanczos_luma([smooth], 44, 36))
    b = luma(next(lanczos_upscale([smooth], 44, 36)))
    assert a.shape == (36, 44) and np.abs(a - b).max() < 3 / 255  # only 8-bit rounding differs


# -- full reference ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[100:196, 120:248].copy()  # 96x128 RGB


def test_psnr_and_ssim_of_identical_frames(photo):
    for channel in ("y", "rgb"):
        assert psnr(photo, photo, channel) == math.inf
        assert ssim(photo, photo, channel) == pytest.approx(1.0)


def test_psnr_of_a_known_error(photo):
    grey = np.full((32, 32, 3), 100, np.uint8)
    brighter = grey + np.uint8(10)
    expected = 20 * math.log10(255 / 10)  # 28.13 dB: MSE = (10/255)^2 on [0,1] values
    assert psnr(grey, brighter, "rgb") == pytest.approx(expected, abs=1e-6)
    assert psnr(grey, brighter, "y") == pytest.approx(expected, abs=1e-3)  # weights sum to 1
    rng = np.random.default_rng(0)
    noisy = np.clip(photo.astype(float) + rng.normal(0, 5, photo.shape) + 0.5, 0, 255).astype(np.uint8)
    assert psnr(photo, noisy, "rgb") == pytest.approx(20 * math.log10(255 / 5), abs=0.25)
    # luma averages independent channel noise: variance x (0.2126^2 + 0.7152^2 + 0.0722^2) = x 0.562, +2.5 dB
    assert psnr(photo, noisy, "y") - psnr(photo, noisy, "rgb") == pytest.approx(2.5, abs=0.3)
    assert psnr(photo.astype(np.uint16) * 257, noisy.astype(np.uint16) * 257, "rgb") == pytest.approx(
        psnr(photo, noisy, "rgb"), abs=1e-6)  # depth-independent


def test_ssim_falls_with_noise_and_options_are_checked(photo):
    rng = np.random.default_rng(1)
    values = []
    for sigma in (2, 8, 20):
        noisy = np.clip(photo.astype(float) + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
        values.append(ssim(photo, noisy, "y"))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0
    noisy = np.clip(photo.astype(float) + rng.normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(photo, noisy, "rgb") < 1.0
    assert ssim(photo, noisy, crop=4) != ssim(photo, noisy)
    with pytest.raises(ValueError, match="channel"):
        psnr(photo, photo, "lab")
    with pytest.raises(ValueError, match="shape"):
        ssim(photo, photo[:-1])
    with pytest.raises(ValueError, match="crop"):
        psnr(photo, photo, crop=60)
    with pytest.raises(ValueError, match="11x11"):
        ssim(photo[:8, :8], photo[:8, :8])


def _clip(path, size: str = "64x48", frames: int = 8) -> Path:
    from stages.media.ffmpeg import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-frames:v", str(frames), "-c:v", "libx264",
                "-qp", "0", "-pix_fmt", "yuv444p", str(path)])
    return Path(path)


def test_vmaf_of_identical_and_scaled_clips(tmp_path):
    if not has_libvmaf():
        pytest.skip("the ffmpeg binary has no libvmaf filter")
    ref = _clip(tmp_path / "ref.mp4")
    same = vmaf(ref, ref)
    assert len(same.per_frame) == 8 and same.mean >= 95 and same.model == "vmaf_v0.6.1"
    small = _clip(tmp_path / "small.mp4", size="32x24")
    worse = vmaf(ref, small)  # scaled up to the reference size first
    assert len(worse.per_frame) == 8 and worse.mean < same.mean


def test_vmaf_without_libvmaf_says_what_to_do(tmp_path, monkeypatch):
    from stages.quality import metrics
    monkeypatch.setattr(metrics, "has_libvmaf", lambda ffmpeg=None: False)
    with pytest.raises(VmafUnavailableError, match="libvmaf.*VUP_FFMPEG"):
        metrics.vmaf(tmp_path / "a.mp4", tmp_path / "b.mp4")


# -- warping error ---------------------------------------------------------------------------------------------------


def _pan(shift: int) -> tuple[np.ndarray, np.ndarray]:
    big = data.astronaut()
    return big[100:196, 100:228].copy(), big[100:196, 100 + shift:228 + shift].copy()  # content moves left


def test_warp_error_of_a_translation_is_near_zero_and_flicker_raises_it():
    prev, cur = _pan(3)
    exact = np.zeros((96, 128, 2), np.float32)
    exact[..., 0] = 3.0  # pixel x of cur is pixel x + 3 of prev
    inside = np.zeros((96, 128), bool)
    inside[:, :-3] = True
    assert warp_error(prev, cur, exact, mask=inside) == pytest.approx(0.0, abs=1e-9)
    estimated = warp_error(prev, cur)  # DIS flow and occlusion mask on the pair itself
    unaligned = float((((cur.astype(float) - prev) / 255) ** 2).sum(axis=2).mean())
    assert estimated < 0.1 * unaligned
    flicker = np.clip(cur.astype(float) * 1.15, 0, 255).astype(np.uint8)
    assert warp_error(prev, flicker) > 5 * estimated + 1e-4


def test_warp_error_with_the_source_pair_flow():
    prev, cur = _pan(8)
    small_prev, small_cur = (cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in (prev, cur))
    flow, mask = flow_with_mask(small_prev, small_cur, size=(128, 96))
    assert flow.shape == (96, 128, 2) and mask.shape == (96, 128) and mask.mean() > 0.8
    assert abs(float(np.median(flow[..., 0])) - 8.0) < 1.0  # the source's 2 px, scaled x4
    from_source = warp_error(prev, cur, source_pair=(small_prev, small_cur))
    assert from_source == pytest.approx(warp_error(prev, cur, flow, mask=mask))
    assert from_source < 0.3 * float((((cur.astype(float) - prev) / 255) ** 2).sum(axis=2).mean())


def test_warp_error_meter():
    prev, cur = _pan(2)
    meter = WarpErrorMeter()
    assert math.isnan(meter.add(prev))
    value = meter.add(cur)
    assert value == pytest.approx(warp_error(prev, cur)) and value < 0.01
    assert math.isnan(meter.add(prev, cut=True))
    shared = WarpErrorMeter()
    flow, mask = flow_with_mask(prev, cur)
    assert math.isnan(shared.add_with_flow(prev, None, None))
    assert shared.add_with_flow(cur, flow, mask) == pytest.approx(value)
    with pytest.raises(ValueError, match="preset"):
        WarpErrorMeter("slowest")


# -- grades, plots, report -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("psnr_y, ssim_y, ratio, expected", [
    (40.0, 0.95, 1.05, "Excellent"),
    (39.99, 0.99, 1.0, "Très bon"),
    (45.0, 0.90, 0.9, "Très bon"),
    (45.0, 0.99, 1.30, "Bon"),
    (30.0, 0.85, 1.2, "Bon"),
    (25.0, 0.99, 1.0, "Acceptable"),
    (41.0, 0.7499, 1.0, "Insuffisant"),
    (41.0, 0.99, 1.51, "Insuffisant"),
    (None, None, 1.10, "Plutôt stable"),
    (math.inf, None, None, "Excellent"),
    (math.nan, 0.91, None, "Très bon"),
])
def test_grade_is_the_worst_of_the_available_figures(psnr_y, ssim_y, ratio, expected):
    assert grade(psnr_y, ssim_y, ratio) == expected
    labels = {**GRADE_LABELS_EN, **STABILITY_LABELS_EN}
    assert labels[expected] in ("Excellent", "Very good", "Good", "Acceptable", "Insufficient", "Mostly stable")


def test_a_grade_without_a_reference_is_a_stability_grade_and_says_so():
    """Flicker alone never makes a result "Excellent": the grade names what was measured."""
    best = grade_details(None, None, 0.8)
    assert best.grade == "Stable" and best.grade_en == "Stable" and "Excellent" not in (best.grade, best.grade_en)
    assert best.scope.startswith("stability only") and "reference" in best.scope
    assert grade_details(None, None, 1.6).grade_en == "Strong flicker"
    assert grade_details(41.0, 0.99, 1.0).scope.startswith("fidelity")


def test_grade_details_and_missing_figures():
    details = grade_details(33.0, 0.97, 1.4)
    assert details.grade == "Acceptable" and details.grade_en == "Acceptable"
    assert details.per_metric == {"psnr_y": "Bon", "ssim_y": "Excellent", "flicker_ratio": "Acceptable"}
    assert details.limiting == ("flicker_ratio",)
    assert grade_details(31.0, 0.86, None).limiting == ("psnr_y", "ssim_y")
    with pytest.raises(ValueError, match="no figure"):
        grade(None, math.nan, None)


def test_plot_per_frame_writes_a_png(tmp_path):
    columns = {"frame": [0, 1, 2], "psnr_y": [math.inf, 31.0, 30.5], "ssim_y": [1.0, 0.9, 0.91],
               "flicker_output": [math.nan, 0.02, 0.03], "flicker_lanczos": [math.nan, 0.02, 0.02],
               "warp_error_output": [math.nan, 0.001, 0.002]}
    path = plot_per_frame(tmp_path / "plots" / "per_frame.png", columns, "test clip")
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(path) as image:
        assert image.size[0] > 500 and image.size[1] > 4 * 200  # four families: PSNR, SSIM, flicker, E_warp
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_per_frame(tmp_path / "none.png", {"frame": [0, 1]}, "empty")


def test_report_with_quality_figures_plot_and_definitions(tmp_path):
    frames = {"frame": [0, 1, 2], "psnr_y": [math.inf, 32.0, 34.0], "ssim_y": [1.0, 0.9, 0.92],
              "flicker_output": [math.nan, 0.05, 0.05], "warp_error_output": [math.nan, 0.002, 0.004]}
    quality = quality_summary(frames, flicker_ratio=1.1)
    assert quality["psnr_y"] == 33.0 and quality["psnr_y_identical_frames"] == 1
    assert quality["ssim_y"] == pytest.approx(0.94) and quality["warp_error_output"] == pytest.approx(0.003)
    assert quality["grade"]["grade"] == "Bon" and quality["grade"]["limiting"] == ("psnr_y",)
    assert set(quality["definitions"]) == {"psnr", "ssim", "flicker", "warp_error", "grade"}
    files = write_report(tmp_path / "r", frames, {"chunk": [0]}, {"quality": quality}, plot_title="clip")
    assert files.plots == (str(tmp_path / "r" / "per_frame.png"),) and Path(files.plots[0]).is_file()
    summary = json.loads(Path(files.summary_json).read_text())
    assert summary["quality"]["grade"]["grade_en"] == "Good"
    assert "BT.709" in summary["definitions"]["psnr"] and "Lai" in summary["definitions"]["warp_error"]
    assert summary["files"]["plots"] == [files.plots[0]]
    assert pq.read_table(files.frames_parquet).column("psnr_y").to_pylist()[0] == math.inf
    assert quality_summary({"flicker_output": [0.1]})["grade"] is None
    assert set(METRIC_DEFINITIONS) >= {"flicker", "warp_error", "psnr", "ssim", "vmaf", "grade"}
