"""The quality benchmark's pure logic (stages.quality.benchmark): degradations, a tiny suite run, targets, report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact

from stages.quality.benchmark import ROW_COLUMNS, run_suite
from stages.quality.benchmark_cases import (
    DEGRADATIONS,
    Case,
    degrade,
    generated_frames,
    make_cases,
)
from stages.quality.benchmark_report import (
    compute_targets,
    target_figures,
    write_suite_report,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """4 frames, 64x48, of the generated camera-motion clip."""
    return generated_frames(64, 48, frames=4)


@pytest.fixture(scope="module")
def tiny_model():
    """A randomly initialised x4 SRVGGNetCompact (spandrel descriptor)."""
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)
    return ModelLoader().load_from_state_dict(net.state_dict()).eval()


@pytest.mark.parametrize("degradation", DEGRADATIONS)
def test_degradations_give_quarter_size(frames, degradation):
    lr = degrade(frames, degradation)
    assert len(lr) == len(frames)
    assert all(f.shape == (12, 16, 3) and f.dtype == np.uint8 for f in lr)
    assert not np.array_equal(lr[0], lr[1])


def test_degradations_differ(frames):
    bicubic, bd, x264 = (degrade(frames, d)[0].astype(int) for d in DEGRADATIONS)
    assert np.abs(bicubic - bd).mean() > 0.5
    assert np.abs(bicubic - x264).mean() > 0.1


def test_unknown_degradation_and_bad_size(frames):
    with pytest.raises(Exception, match="degradation"):
        degrade(frames, "jpeg")
    with pytest.raises(Exception, match="multiple"):
        degrade([frames[0][:47]], "bicubic")


def test_case_crops_to_multiple_of_8_and_caches(tmp_path):
    gt = [np.full((50, 70, 3), i * 20, np.uint8) for i in range(3)]
    case = Case("flat/bd", gt, "bd")
    assert case.sequence == "flat"
    assert case.ground_truth()[0].shape == (48, 64, 3)
    cached, reused = case.cached(tmp_path)
    assert not reused and cached.frames_gt.suffix == ".npz"
    assert cached.degraded()[0].shape == (12, 16, 3)
    assert case.cached(tmp_path)[1]


def test_make_cases_generated_only():
    cases = make_cases(None, True, 4, generated_size=(64, 48))
    assert [c.name for c in cases] == [f"generated/{d}" for d in DEGRADATIONS]
    assert len(cases[0].ground_truth()) == 4


@pytest.mark.skipif(not (SHARED / "testdata" / "vid4" / "GT" / "calendar").is_dir(), reason="../shared absent")
def test_make_cases_vid4():
    cases = make_cases(SHARED, False, 2, degradations=("bicubic",))
    assert {c.sequence for c in cases} == {"calendar", "city"}
    gt = cases[0].ground_truth()
    assert len(gt) == 2 and gt[0].shape[0] % 8 == 0 and gt[0].shape[1] % 8 == 0


def test_tiny_suite_and_report(frames, tiny_model, tmp_path):
    cases = [Case("generated/bicubic", frames, "bicubic")]
    events = []
    rows = run_suite(cases, {"tiny": tiny_model}, include_vmaf=False, progress=events.append)
    assert len(events) == 1
    up = [r for r in rows if r["task"] == "upscale"]
    assert [r["method"] for r in up] == ["bicubic", "lanczos", "tiny+none", "tiny+flow", "tiny+ema"]
    for row in rows:
        assert set(row) == set(ROW_COLUMNS)
    for row in up:
        assert row["width"] == 64 and row["height"] == 48 and row["frames"] == 4
        assert math.isfinite(row["psnr_y"]) and 0 < row["ssim_y"] <= 1 and math.isfinite(row["psnr_rgb"])
        assert math.isfinite(row["warp_error"]) and math.isfinite(row["flicker"])
        assert len(row["psnr_y_frames"]) == 4 and math.isnan(row["warp_error_frames"][0])
    assert next(r for r in up if r["method"] == "lanczos")["flicker_ratio"] == pytest.approx(1.0)
    interp = [r for r in rows if r["task"] == "interpolate"]
    assert {r["method"] for r in interp} == {"flow", "blend", "minterpolate"}
    assert all(r["frames"] == 1 and math.isfinite(r["psnr_y"]) for r in interp)

    targets = compute_targets(rows)
    assert set(targets["coherence"]["tiny"]) >= {"ewarp_cut", "psnr_y_cost_db", "met"}
    assert set(targets["interpolation"]["psnr_y"]) == {"flow", "blend", "minterpolate"}
    figures = target_figures(targets)
    assert "tiny_flow_ewarp_cut_pct" in figures and "interpolation_target_met" in figures

    paths = write_suite_report(rows, tmp_path / "report", {"machine": "test"})
    table = pq.read_table(paths["parquet"])
    assert table.num_rows == len(rows) and "warp_error" in table.column_names
    text = paths["markdown"].read_text()
    assert "Target 1" in text and "Target 2" in text and "tiny+flow" in text
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
