"""The quality benchmark's targets and its report (Parquet + Markdown + PNG).

Targets (:func:`compute_targets`, stated in the report, never asserted): (1) the flow coherence pass cuts E_warp
by at least 30 % against the same upscaler without it, costing at most 0.3 dB PSNR-Y; (2) the flow interpolator
beats blending and minterpolate on held-out-frame PSNR-Y.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.quality.benchmark import INTERPOLATION_DEFINITION, ROW_COLUMNS, _finite_mean
from stages.quality.benchmark_cases import DEGRADATION_DEFINITION
from stages.quality.metrics import (
    FLICKER_DEFINITION,
    PSNR_DEFINITION,
    SSIM_DEFINITION,
    VMAF_DEFINITION,
    WARP_ERROR_DEFINITION,
)
from stages.store.fsutil import atomic_write_bytes, atomic_write_text

TARGET_EWARP_CUT = 0.30
TARGET_PSNR_COST_DB = 0.3


# ------------------------------------------------------------------------------------------------------ targets


def compute_targets(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The two targets, from the rows (figures only; nothing is asserted).

    ``coherence``: per upscaler, mean over cases of the E_warp cut ``1 - E(flow) / E(none)`` and of the PSNR-Y cost
    ``psnr_y(none) - psnr_y(flow)``; met when the cut >= 30 % and the cost <= 0.3 dB. ``interpolation``: mean
    held-out PSNR-Y per interpolator over sequences; met when flow is above blend and minterpolate.
    """
    up = [r for r in rows if r.get("task") == "upscale"]
    by_key = {(r["case"], r["upscaler"], r["coherence"]): r for r in up}
    coherence: dict[str, Any] = {}
    for upscaler in sorted({r["upscaler"] for r in up if r["coherence"] == "flow"}):
        cuts, costs, per_case = [], [], {}
        for case in sorted({r["case"] for r in up}):
            none, flow = by_key.get((case, upscaler, "none")), by_key.get((case, upscaler, "flow"))
            if not none or not flow or not none["warp_error"]:
                continue
            cut = 1.0 - flow["warp_error"] / none["warp_error"]
            cost = none["psnr_y"] - flow["psnr_y"]
            if math.isfinite(cut) and math.isfinite(cost):
                cuts.append(cut)
                costs.append(cost)
                per_case[case] = {"ewarp_cut": cut, "psnr_y_cost_db": cost}
        if cuts:
            cut, cost = float(np.mean(cuts)), float(np.mean(costs))
            none_sum = sum(by_key[(c, upscaler, "none")]["warp_error"] for c in per_case)
            flow_sum = sum(by_key[(c, upscaler, "flow")]["warp_error"] for c in per_case)
            coherence[upscaler] = {
                "ewarp_cut": cut, "psnr_y_cost_db": cost, "ewarp_cut_pooled": 1.0 - flow_sum / none_sum,
                "met": bool(cut >= TARGET_EWARP_CUT and cost <= TARGET_PSNR_COST_DB),
                "cases_met": sum(1 for v in per_case.values()
                                 if v["ewarp_cut"] >= TARGET_EWARP_CUT and v["psnr_y_cost_db"] <= TARGET_PSNR_COST_DB),
                "cases": len(per_case), "per_case": per_case,
            }
    interp = [r for r in rows if r.get("task") == "interpolate" and r.get("psnr_y") is not None]
    means = {m: _finite_mean(r["psnr_y"] for r in interp if r["method"] == m)
             for m in sorted({r["method"] for r in interp})}
    interpolation: dict[str, Any] = {"psnr_y": means}
    if "flow" in means:
        others = {m: v for m, v in means.items() if m != "flow" and m != "rife" and math.isfinite(v)}
        interpolation["margin_db"] = {m: means["flow"] - v for m, v in others.items()}
        interpolation["met"] = bool(others) and all(means["flow"] > v for v in others.values())
    return {"coherence": coherence, "interpolation": interpolation}


def target_figures(targets: Mapping[str, Any]) -> dict[str, float | bool]:
    """Flat ``{name: number}`` of the target figures (for Dagster metadata)."""
    flat: dict[str, float | bool] = {}
    for upscaler, value in targets.get("coherence", {}).items():
        flat[f"{upscaler}_flow_ewarp_cut_pct"] = round(100 * value["ewarp_cut"], 2)
        flat[f"{upscaler}_flow_ewarp_cut_pooled_pct"] = round(100 * value["ewarp_cut_pooled"], 2)
        flat[f"{upscaler}_flow_psnr_y_cost_db"] = round(value["psnr_y_cost_db"], 3)
        flat[f"{upscaler}_coherence_target_met"] = value["met"]
    interp = targets.get("interpolation", {})
    for method, value in interp.get("psnr_y", {}).items():
        flat[f"interp_{method}_psnr_y_db"] = round(value, 3)
    if "met" in interp:
        flat["interpolation_target_met"] = interp["met"]
    return flat


# ------------------------------------------------------------------------------------------------------- report


def machine_header() -> dict[str, Any]:
    """Machine and versions for the report header."""
    from stages.device import cpu_name

    header: dict[str, Any] = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} "
                                         f"{platform.machine()}", "python": platform.python_version()}
    for name in ("torch", "spandrel", "opencv-python-headless", "av", "numpy", "scikit-image", "dagster"):
        try:
            header[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return header


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _means(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    return _finite_mean(r[key] for r in rows if r.get(key) is not None)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Mean per case x method (upscale) and per sequence x interpolator, as Markdown tables."""
    lines = [("| case | method | PSNR-Y | SSIM-Y | PSNR-RGB | SSIM-RGB | VMAF | E_warp x1e3 | flicker | "
              "flicker / lanczos | s |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("task") != "upscale":
            continue
        lines.append(
            f"| {r['case']} | {r['method']} | {_fmt(r['psnr_y'])} | {_fmt(r['ssim_y'], 4)} | {_fmt(r['psnr_rgb'])} "
            f"| {_fmt(r['ssim_rgb'], 4)} | {_fmt(r['vmaf'])} | "
            f"{_fmt(None if r['warp_error'] is None else 1e3 * r['warp_error'], 3)} | {_fmt(r['flicker'], 4)} | "
            f"{_fmt(r['flicker_ratio'], 3)} | {_fmt(r['seconds'], 1)} |")
    methods = list(dict.fromkeys(r["method"] for r in rows if r.get("task") == "upscale"))
    lines += ["", "Mean over all cases:", "",
              "| method | PSNR-Y | SSIM-Y | VMAF | E_warp x1e3 | flicker / lanczos |", "|---|---|---|---|---|---|"]
    for method in methods:
        sel = [r for r in rows if r.get("task") == "upscale" and r["method"] == method]
        lines.append(f"| {method} | {_fmt(_means(sel, 'psnr_y'))} | {_fmt(_means(sel, 'ssim_y'), 4)} | "
                     f"{_fmt(_means(sel, 'vmaf'))} | {_fmt(1e3 * _means(sel, 'warp_error'), 3)} | "
                     f"{_fmt(_means(sel, 'flicker_ratio'), 3)} |")
    interp = [r for r in rows if r.get("task") == "interpolate"]
    if interp:
        lines += ["", "Interpolation (held-out frames):", "",
                  "| sequence | method | frames | PSNR-Y | SSIM-Y | PSNR-RGB | s | error |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in interp:
            lines.append(f"| {r['sequence']} | {r['method']} | {r['frames'] or '-'} | {_fmt(r['psnr_y'])} | "
                         f"{_fmt(r['ssim_y'], 4)} | {_fmt(r['psnr_rgb'])} | {_fmt(r['seconds'], 1)} | "
                         f"{r['error'] or ''} |")
    return "\n".join(lines)


def targets_markdown(targets: Mapping[str, Any]) -> str:
    lines = []
    for upscaler, value in targets.get("coherence", {}).items():
        lines.append(
            f"- Target 1 (flow coherence, {upscaler}): E_warp cut {100 * value['ewarp_cut']:.1f} % (target >= "
            f"{100 * TARGET_EWARP_CUT:.0f} %), PSNR-Y cost {value['psnr_y_cost_db']:.3f} dB (target <= "
            f"{TARGET_PSNR_COST_DB} dB), means of the per-case figures over {value['cases']} cases: "
            f"**{'met' if value['met'] else 'not met'}** (met in {value['cases_met']}/{value['cases']} cases; "
            f"pooled cut, 1 - sum E_warp(flow) / sum E_warp(none): {100 * value['ewarp_cut_pooled']:.1f} %)")
        for case, figures in value["per_case"].items():
            lines.append(f"  - {case}: cut {100 * figures['ewarp_cut']:.1f} %, cost "
                         f"{figures['psnr_y_cost_db']:.3f} dB")
    if not targets.get("coherence"):
        lines.append("- Target 1 (flow coherence): no model with and without the flow pass was run")
    interp = targets.get("interpolation", {})
    if "met" in interp:
        figures = ", ".join(f"{m} {v:.2f} dB" for m, v in interp["psnr_y"].items())
        lines.append(f"- Target 2 (flow interpolation beats blend and minterpolate on held-out PSNR-Y): {figures}: "
                     f"**{'met' if interp['met'] else 'not met'}**")
    else:
        lines.append("- Target 2 (interpolation): no flow interpolation rows")
    return "\n".join(lines)


def write_suite_report(rows: Sequence[Mapping[str, Any]], out_dir: str | Path, header: Mapping[str, Any]
                       ) -> dict[str, Path]:
    """Write ``quality.parquet`` (one row per case x method), ``quality.md`` and ``quality.png`` into
    ``out_dir``; returns their paths (keys ``parquet``, ``markdown``, ``png``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(list(ROW_COLUMNS.items()))
    table = pa.Table.from_pylist([{k: r.get(k) for k in ROW_COLUMNS} for r in rows], schema=schema)
    table = table.replace_schema_metadata({"header": json.dumps(dict(header), default=str)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    paths = {"parquet": out / "quality.parquet", "markdown": out / "quality.md", "png": out / "quality.png"}
    atomic_write_bytes(paths["parquet"], buffer.getvalue())
    targets = compute_targets(rows)
    md = ["# Quality benchmark", ""]
    md += [f"- {k}: {v}" for k, v in header.items()]
    md += ["", "## Targets", "", targets_markdown(targets), "", "## Results (means per case x method)", "",
           markdown_table(rows), "", "## Definitions", ""]
    md += [f"- {name}: {text}" for name, text in (
        ("degradations", DEGRADATION_DEFINITION), ("PSNR", PSNR_DEFINITION), ("SSIM", SSIM_DEFINITION),
        ("E_warp", WARP_ERROR_DEFINITION), ("flicker", FLICKER_DEFINITION), ("VMAF", VMAF_DEFINITION),
        ("interpolation", INTERPOLATION_DEFINITION),
        ("means", ("each row: mean over the case's frames (PSNR: finite values); 'Mean over all cases': mean "
                   "of the rows' means")))]
    atomic_write_text(paths["markdown"], "\n".join(md) + "\n")
    atomic_write_bytes(paths["png"], _bar_chart(rows))
    return paths


def _bar_chart(rows: Sequence[Mapping[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    up = [r for r in rows if r.get("task") == "upscale"]
    methods = list(dict.fromkeys(r["method"] for r in up))
    interp = [r for r in rows if r.get("task") == "interpolate"]
    imethods = list(dict.fromkeys(r["method"] for r in interp))
    panels = [("PSNR-Y (dB), mean over cases", methods, [_means([r for r in up if r["method"] == m], "psnr_y")
                                                          for m in methods]),
              ("E_warp x1e3, mean over cases", methods,
               [1e3 * _means([r for r in up if r["method"] == m], "warp_error") for m in methods]),
              ("Interpolation PSNR-Y (dB), held-out frames", imethods,
               [_means([r for r in interp if r["method"] == m], "psnr_y") for m in imethods])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (title, labels, values) in zip(axes, panels):
        values = [0.0 if not math.isfinite(v) else v for v in values]
        ax.bar(range(len(labels)), values, color="tab:blue")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        finite = [v for v in values if v]
        if finite and "PSNR" in title:
            ax.set_ylim(min(finite) - 2, max(finite) + 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()

