"""The temporal-coherence benchmark runs without ../shared (the stand-in model on a generated texture), caches the
upscaled frames, prints every column, and finds a scene cut. No figure is asserted (benchmarks are not tests)."""

from __future__ import annotations

import numpy as np

from benchmarks import coherence_real
from benchmarks.coherence_textures import GENERATORS


def test_a_tiny_run_prints_the_table_and_caches_the_upscale(tmp_path, capsys):
    argv = ["--models", "synthetic", "--cases", "foliage", "--frames", "4", "--no-1080p", "--cache", str(tmp_path)]
    assert coherence_real.main(argv) == 0
    out = capsys.readouterr().out
    assert "Machine:" in out and "Versions:" in out and "Command:" in out
    assert "| E_warp model | + coherence | lanczos |" in out and "gap closed" in out and "s/frame" in out
    row = next(line for line in out.splitlines() if line.startswith("| synthetic | foliage |"))
    assert "384x288 x2" in row and "n/a" not in row.split("|")[4]
    cached = list(tmp_path.glob("foliage-synthetic-*.npz"))
    assert len(cached) == 1
    assert coherence_real.main(argv) == 0  # from the cache this time
    assert list(tmp_path.glob("*.npz")) == cached


def test_scene_cuts_finds_the_cut_from_grass_to_a_photo():
    frames = GENERATORS["grass"](4, 96, 72) + GENERATORS["grain"](4, 96, 72)
    assert coherence_real.scene_cuts(frames) == {4}
    assert coherence_real.scene_cuts(frames[:4]) == set()


def test_measure_reports_every_figure(tmp_path):
    case = next(c for c in coherence_real.CASES if c.name == "grain")
    from dataclasses import replace

    from stages.ops.cohere.temporal import TemporalSettings

    row = coherence_real.measure(replace(case, frames=3), "synthetic", TemporalSettings("flow"), tmp_path)
    for key in ("ewarp_model", "ewarp_coherent", "ewarp_lanczos", "ewarp_reference", "psnr_model", "psnr_coherent",
                "psnr_lanczos", "occluded_change", "s_per_frame"):
        assert np.isfinite(row[key]), key
    assert row["ewarp_coherent"] < row["ewarp_model"]
