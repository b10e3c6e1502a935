"""Grades, the video-level summary, the per-frame plot and the report files of a quality measurement.

Everything that turns per-frame metric columns into a report: the grade of a video, the means and definitions of
the columns (:func:`quality_summary`), the per-frame plot (PNG) and the files (per-frame and per-chunk Parquet
tables, summary JSON; :func:`write_report`).

Grades (:func:`grade`) are this project's own thresholds, not the product spec's (which this repository does
not have): see :data:`PSNR_Y_GRADE_DB`, :data:`SSIM_Y_GRADE`, :data:`FLICKER_RATIO_GRADE`. The figures and their
definitions are in :mod:`stages.quality.metrics`.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.quality.metrics import GRADE_DEFINITION, METRIC_DEFINITIONS
from stages.store.fsutil import atomic_write_bytes, atomic_write_text

# ---------------------------------------------------------------------------------------------------------------
# Grades

GRADES = ("Excellent", "Très bon", "Bon", "Acceptable", "Insuffisant")
"""Grades from best to worst (the product's French labels)."""
GRADE_LABELS_EN = {"Excellent": "Excellent", "Très bon": "Very good", "Bon": "Good", "Acceptable": "Acceptable",
                   "Insuffisant": "Insufficient"}
PSNR_Y_GRADE_DB = (40.0, 35.0, 30.0, 25.0)
"""Lowest mean psnr_y (dB) for Excellent, Très bon, Bon, Acceptable; below the last: Insuffisant. The usual
fidelity scale (>= 40 dB hard to tell apart, < 25 dB clearly different). A x4 upscale of real content rarely
reaches 30 dB against its ground truth (Vid4: about 23-26 dB), so with a reference PSNR usually decides."""
SSIM_Y_GRADE = (0.95, 0.90, 0.85, 0.75)
"""Lowest mean ssim_y for Excellent, Très bon, Bon, Acceptable."""
STABILITY_GRADES = ("Stable", "Plutôt stable", "Léger scintillement", "Scintillement visible", "Fort scintillement")
"""The grades of a video measured without a reference, from best to worst (French labels): only its flicker
against a lanczos upscale was measured, which says nothing of detail or faithfulness, so these never say
"Excellent"."""
STABILITY_LABELS_EN = {"Stable": "Stable", "Plutôt stable": "Mostly stable", "Léger scintillement": "Slight flicker",
                       "Scintillement visible": "Visible flicker", "Fort scintillement": "Strong flicker"}
SCOPE_FULL = "fidelity against the reference and stability"
SCOPE_STABILITY = ("stability only: no reference video, so only the flicker against a plain lanczos upscale was "
                   "measured, not detail or faithfulness; pass a reference (--reference) for a full grade")
FLICKER_RATIO_GRADE = (1.05, 1.15, 1.30, 1.50)
"""Highest flicker ratio (output / lanczos baseline) for Excellent, Très bon, Bon, Acceptable: up to 5% more
frame-to-frame change than a plain lanczos upscale is invisible in practice, 50% more is visible shimmer. A
ratio far below 1 is not rewarded beyond Excellent: it can mean over-smoothing."""


@dataclass(frozen=True)
class Grade:
    """A grade with its English label, each available figure's own grade, and the figures that decided it."""

    grade: str
    grade_en: str
    per_metric: dict[str, str]
    limiting: tuple[str, ...]
    scope: str = SCOPE_FULL
    definition: str = GRADE_DEFINITION
    thresholds: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "psnr_y_db_min": PSNR_Y_GRADE_DB, "ssim_y_min": SSIM_Y_GRADE, "flicker_ratio_max": FLICKER_RATIO_GRADE})


def _grade_higher_better(value: float, thresholds: Sequence[float]) -> int:
    return next((i for i, limit in enumerate(thresholds) if value >= limit), len(thresholds))


def _grade_lower_better(value: float, thresholds: Sequence[float]) -> int:
    return next((i for i, limit in enumerate(thresholds) if value <= limit), len(thresholds))


def _present(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def grade_details(psnr_y: float | None, ssim_y: float | None, flicker_ratio: float | None) -> Grade:
    """The :class:`Grade` of a video from its mean psnr_y (dB), mean ssim_y and flicker ratio; figures that are
    None or NaN (no reference) are left out and the worst of the others decides. With the flicker ratio alone
    the grade is a stability grade (:data:`STABILITY_GRADES`, ``scope`` says so), never "Excellent".

    Raises:
        ValueError: no figure is available.
    """
    levels: dict[str, int] = {}
    if _present(psnr_y):
        levels["psnr_y"] = _grade_higher_better(float(psnr_y), PSNR_Y_GRADE_DB)
    if _present(ssim_y):
        levels["ssim_y"] = _grade_higher_better(float(ssim_y), SSIM_Y_GRADE)
    if _present(flicker_ratio):
        levels["flicker_ratio"] = _grade_lower_better(float(flicker_ratio), FLICKER_RATIO_GRADE)
    if not levels:
        raise ValueError("metrics: no figure to grade; pass psnr_y, ssim_y or flicker_ratio")
    worst = max(levels.values())
    limiting = tuple(name for name, level in levels.items() if level == worst)
    if set(levels) == {"flicker_ratio"}:
        label = STABILITY_GRADES[worst]
        return Grade(grade=label, grade_en=STABILITY_LABELS_EN[label], per_metric={"flicker_ratio": label},
                     limiting=limiting, scope=SCOPE_STABILITY)
    label = GRADES[worst]
    return Grade(grade=label, grade_en=GRADE_LABELS_EN[label],
                 per_metric={name: GRADES[level] for name, level in levels.items()}, limiting=limiting)


def grade(psnr_y: float | None, ssim_y: float | None, flicker_ratio: float | None) -> str:
    """The grade (one of :data:`GRADES`, or of :data:`STABILITY_GRADES` without a reference) of a video: the worst of its figures' grades (see :func:`grade_details`;
    English label: ``GRADE_LABELS_EN[grade(...)]``)."""
    return grade_details(psnr_y, ssim_y, flicker_ratio).grade


# ---------------------------------------------------------------------------------------------------------------
# Plots

_PLOT_FAMILIES = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("vmaf", "VMAF"), ("flicker", "flicker score"),
                  ("warp_error", "E_warp"))


def _family(column: str) -> str | None:
    return next((prefix for prefix, _ in _PLOT_FAMILIES if column.startswith(prefix)), None)


def plot_per_frame(path_png: str | Path, columns: Mapping[str, Sequence[float]], title: str) -> str:
    """Plot per-frame metric columns into a PNG, one subplot per metric family (PSNR, SSIM, VMAF, flicker,
    E_warp; a column belongs to the family its name starts with, e.g. ``psnr_y``, ``flicker_lanczos``; other
    columns are ignored). NaN and inf values leave gaps. Written atomically; returns the path.

    Raises:
        ValueError: no column belongs to a family.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    families: dict[str, list[str]] = {}
    for name in columns:
        family = _family(name)
        if family is not None:
            families.setdefault(family, []).append(name)
    if not families:
        raise ValueError(
            f"metrics: nothing to plot among columns {', '.join(columns) or '(none)'}; name per-frame metric "
            "columns psnr_*, ssim_*, vmaf*, flicker_* or warp_error_*"
        )
    ordered = [(prefix, label) for prefix, label in _PLOT_FAMILIES if prefix in families]
    figure = Figure(figsize=(10, 2.4 * len(ordered) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(ordered), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (prefix, label) in zip(axes, ordered, strict=True):
        for name in families[prefix]:
            values = np.asarray(columns[name], dtype=np.float64)
            values = np.where(np.isfinite(values), values, np.nan)
            ax.plot(np.arange(len(values)), values, label=name, linewidth=1.0)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("frame")
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path_png)
    atomic_write_bytes(path, buffer.getvalue())
    return str(path)


def mean_ignoring_nan(values: Sequence[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else None


def mean_finite(values: Sequence[float]) -> float | None:
    """Mean of the finite values (NaN and +-inf left out, e.g. PSNR of identical frames); None if none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else None


def metric_definitions(columns: Iterable[str]) -> dict[str, str]:
    """Definitions (from :data:`METRIC_DEFINITIONS`) of the metric families among ``columns``' names."""
    found: dict[str, str] = {}
    for name in columns:
        family = next((prefix for prefix in METRIC_DEFINITIONS if name.startswith(prefix)), None)
        if family is not None:
            found[family] = METRIC_DEFINITIONS[family]
    return found


def quality_summary(frames: Mapping[str, Sequence[float]], flicker_ratio: float | None = None) -> dict[str, Any]:
    """Video-level figures of the per-frame metric columns present in ``frames`` and the grade.

    Columns read when present: ``psnr_y``, ``psnr_rgb``, ``ssim_y``, ``ssim_rgb``, ``vmaf``, and every
    ``warp_error_*`` (e.g. ``warp_error_output``, ``warp_error_lanczos``). PSNR means leave +inf frames out
    (``psnr_identical_frames`` counts them; all identical gives +inf); other means leave NaN out. ``grade`` is
    :func:`grade_details` as a dict, or None when there is neither a reference figure nor ``flicker_ratio``.
    """
    result: dict[str, Any] = {}
    for name in ("psnr_y", "psnr_rgb"):
        if name in frames:
            values = [float(v) for v in frames[name]]
            mean = mean_finite(values)
            identical = sum(1 for v in values if v == math.inf)
            result[name] = math.inf if mean is None and identical else mean
            result[f"{name}_identical_frames"] = identical
    for name in frames:
        if name in ("ssim_y", "ssim_rgb", "vmaf") or name.startswith("warp_error"):
            result[name] = mean_ignoring_nan([float(v) for v in frames[name]])
    psnr_y_mean = result.get("psnr_y")
    try:
        result["grade"] = asdict(grade_details(psnr_y_mean, result.get("ssim_y"), flicker_ratio))
    except ValueError:
        result["grade"] = None
    result["definitions"] = metric_definitions([*frames, "grade"] if result["grade"] else frames)
    return result


@dataclass(frozen=True)
class ReportFiles:
    frames_parquet: str
    chunks_parquet: str
    summary_json: str
    plots: tuple[str, ...] = ()


def _write_parquet(path: Path, columns: Mapping[str, Sequence[Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")  # unique: runs may race here
    try:
        pq.write_table(pa.table({name: list(values) for name, values in columns.items()}), tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(
    folder: str | Path,
    frames: Mapping[str, Sequence[Any]],
    chunks: Mapping[str, Sequence[Any]],
    summary: Mapping[str, Any],
    *,
    plot_title: str | None = None,
) -> ReportFiles:
    """Write the per-frame and per-chunk tables (Parquet) and the summary (JSON) into ``folder``.

    The summary gains ``definitions`` (the exact definition of each metric family among the per-frame
    columns, unless it already has that key) and ``files``. With ``plot_title``, the per-frame metric columns
    are also plotted into ``per_frame.png`` (see :func:`plot_per_frame`; skipped when none is plottable) and
    listed in ``files.plots``. The summary is written last, so its presence means the report is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    if plot_title is not None and any(_family(name) for name in frames):
        numeric = {name: values for name, values in frames.items() if _family(name)}
        plots.append(plot_per_frame(folder / "per_frame.png", numeric, plot_title))
    files = ReportFiles(
        frames_parquet=str(folder / "frames.parquet"),
        chunks_parquet=str(folder / "chunks.parquet"),
        summary_json=str(folder / "summary.json"),
        plots=tuple(plots),
    )
    _write_parquet(Path(files.frames_parquet), frames)
    _write_parquet(Path(files.chunks_parquet), chunks)
    full = {**summary, "files": asdict(files)}
    definitions = metric_definitions(frames)
    if definitions and "definitions" not in full:
        full["definitions"] = definitions
    atomic_write_text(Path(files.summary_json), json.dumps(full, indent=2, sort_keys=True, default=str))
    return files
