"""The side-by-side benchmark: a tiny run writes one row per method, the Markdown and a valid PNG; FLOP counts
match the analytic Compact formula; the CPU peak says how it was derived. No timing is asserted."""

from __future__ import annotations

import json

import pytest

from benchmarks import side_by_side
from benchmarks.hardware import cpu_peak, flags_summary

EXPECTED_COLUMNS = {
    "method", "label", "status", "precision", "frames", "seconds", "fps", "s_per_frame",
    "project_e2e_over_method", "method_over_ncnn", "peak_rss_mib", "gflop_per_frame", "achieved_gflops",
    "peak_gflops", "fraction_of_peak", "warmup_excluded",
}
MODEL_METHODS = {"project_e2e", "project_model", "ncnn_model", "naive_torch"}


def test_flop_count_of_a_tiny_compact_equals_the_analytic_formula():
    from spandrel.architectures.Compact import Compact

    model = Compact(num_feat=8, num_conv=2, upscale=2).eval()
    counted = side_by_side.count_flops(model, 36, 64)
    expected = 2 * 9 * (3 * 8 + 2 * 8 * 8 + 8 * 3 * 2 * 2) * 36 * 64
    assert counted == expected
    assert side_by_side.compact_conv_flops(36, 64, num_feat=8, num_conv=2, scale=2) == expected
    assert side_by_side.compact_hyperparameters(model) == {"num_feat": 8, "num_conv": 2, "scale": 2, "in_ch": 3,
                                                          "out_ch": 3}


def test_realesr_animevideov3_flops_match_the_brief_formula():
    macs_per_pixel = 3 * 64 * 9 + 16 * 64 * 64 * 9 + 64 * 48 * 9
    assert side_by_side.compact_conv_flops(270, 480) == 2 * macs_per_pixel * 270 * 480


def test_cpu_peak_derivation_for_an_avx512_bf16_server():
    peak = cpu_peak(cpuinfo="", flags={"avx2", "fma", "avx512f", "avx512_bf16"}, cores=2, clock_ghz=2.596,
                    arch="x86_64")
    assert peak.vector_bits == 512 and peak.fp32_lanes == 16 and peak.fma_units == 2 and peak.bf16_factor == 2
    assert peak.peak_fp32_gflops == pytest.approx(332.3, abs=0.05)
    assert peak.peak_bf16_gflops == pytest.approx(664.6, abs=0.05)
    assert peak.derivation_bf16 == ("2 cores x 2.596 GHz x 2 FMA units x 16 fp32 lanes x 2 (bf16 pairs, "
                                    "avx512_bf16 (vdpbf16ps)) x 2 FLOP/FMA = 664.6 GFLOP/s")
    assert peak.peak_amx_bf16_gflops is None
    assert "avx512_bf16" in flags_summary(peak.flags)


def test_cpu_peak_falls_back_without_cpuinfo_or_clock():
    arm = cpu_peak(cpuinfo="", flags=set(), cores=8, clock_ghz=None, arch="arm64")
    assert arm.vector_bits == 128 and arm.peak_fp32_gflops is None and arm.peak_bf16_gflops is None
    assert "not computed" in arm.derivation_fp32
    avx2 = cpu_peak(cpuinfo="", flags={"avx2", "fma"}, cores=4, clock_ghz=3.0, arch="x86_64")
    assert avx2.vector_bits == 256 and avx2.peak_bf16_gflops is None
    assert avx2.peak_fp32_gflops == pytest.approx(4 * 3.0 * 2 * 8 * 2)
    assert "no native bf16" in avx2.derivation_bf16


def test_this_machine_has_a_peak_derivation():
    peak = cpu_peak()
    assert peak.cores >= 1
    assert "fp32:" in peak.derivation and peak.derivation_fp32


@pytest.mark.slow
def test_quick_run_writes_one_row_per_method(tmp_path, capsys):
    import pyarrow.parquet as pq

    out = tmp_path / "results"
    assert side_by_side.main(["--quick", "--frames", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| method |" in printed and "GFLOP/s" in printed

    parquets = list(out.glob("side_by_side-*.parquet"))
    assert len(parquets) == 1
    stem = parquets[0].with_suffix("")
    table = pq.read_table(parquets[0])
    assert EXPECTED_COLUMNS <= set(table.column_names)
    rows = table.to_pylist()
    assert [r["method"] for r in rows] == list(side_by_side.METHODS)
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["frames"] == 4
        assert row["fps"] > 0 and row["seconds"] > 0
        assert row["peak_rss_mib"] > 0
        if row["method"] in MODEL_METHODS:
            assert row["gflop_per_frame"] == pytest.approx(side_by_side.compact_conv_flops(36, 64) / 1e9)
            assert row["achieved_gflops"] > 0
    by_method = {r["method"]: r for r in rows}
    assert by_method["project_e2e"]["project_e2e_over_method"] == pytest.approx(1.0)
    assert by_method["ncnn_model"]["method_over_ncnn"] == pytest.approx(1.0)
    assert by_method["project_model"]["warmup_excluded"] and by_method["ncnn_model"]["warmup_excluded"]
    assert not by_method["naive_torch"]["warmup_excluded"]

    header = json.loads(table.schema.metadata[b"side_by_side"])
    assert "GFLOP/s" in header["peak"]["derivation"] or "not computed" in header["peak"]["derivation"]
    assert header["flops"]["analytic_compact"] == header["flops"]["single_pass"]

    markdown = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert "peak fp32:" in markdown and "| this project, end to end |" in markdown
    png = stem.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as image:
        image.verify()
        assert image.size[0] > 100 and image.size[1] > 100
