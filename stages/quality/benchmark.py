"""The quality benchmark suite: every method run on every case, one result row per case x method.

The methods are upscalers with and without temporal coherence, and frame interpolation on held-out frames.

Plain Python (no Dagster): ``orchestration.graphs.benchmark`` runs these functions (and those of the two modules
below) as assets and ``benchmarks.quality`` (``vup bench quality``) runs that job.

Cases (ground-truth sequences under x4 degradations): :mod:`stages.quality.benchmark_cases`.

Upscale methods (:func:`run_suite`): ``bicubic`` and ``lanczos`` (OpenCV ``INTER_CUBIC`` /
``INTER_LANCZOS4`` back to the GT size), and each given super-resolution model (x4 along
:func:`stages.ops.upscale.engine.plan_scale`) followed by each coherence method (:class:`stages.ops.cohere.temporal.TemporalFilter`,
``none`` / ``flow`` / ``ema``, fed the low-resolution frame). Per frame: PSNR and SSIM on Y and RGB against GT
(:mod:`stages.quality.metrics`, no border crop), E_warp with the flow and mask of the low-resolution pair (the same for
every method of a case), flicker; per case-method VMAF from lossless clips when ffmpeg has libvmaf.

Interpolation: every other GT frame (1, 3, ...; each with both neighbours) is held out and rebuilt from its
neighbours at t = 0.5 by each interpolator (``flow``, ``blend``, ``minterpolate``; ``rife`` only when a factory
is given); PSNR/SSIM of the rebuilt frames against the held-out ones.

Targets and the report (Parquet + Markdown + PNG): :mod:`stages.quality.benchmark_report`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from stages.media.chunkio import ChunkWriter
from stages.quality.benchmark_cases import SCALE, Case
from stages.quality.metrics import (
    FlickerMeter,
    flow_with_mask,
    has_libvmaf,
    psnr,
    ssim,
    vmaf,
    warp_error,
)

log = logging.getLogger(__name__)

COHERENCE_METHODS = ("none", "flow", "ema")
INTERPOLATORS = ("flow", "blend", "minterpolate")
BASELINES = ("bicubic", "lanczos")
DEFAULT_MODELS = ("realesr-animevideov3",)
MAX_MODELS = 2

INTERPOLATION_DEFINITION = (
    "every other GT frame (1, 3, ...) held out and rebuilt at t=0.5 from its two neighbours; PSNR/SSIM of the "
    "rebuilt frames against the held-out ones (definitions above), mean over held-out frames"
)

ROW_COLUMNS: dict[str, pa.DataType] = {
    "task": pa.string(),  # "upscale" or "interpolate"
    "case": pa.string(),
    "sequence": pa.string(),
    "degradation": pa.string(),
    "method": pa.string(),
    "upscaler": pa.string(),
    "coherence": pa.string(),
    "frames": pa.int64(),
    "width": pa.int64(),
    "height": pa.int64(),
    "psnr_y": pa.float64(),
    "psnr_rgb": pa.float64(),
    "ssim_y": pa.float64(),
    "ssim_rgb": pa.float64(),
    "warp_error": pa.float64(),
    "flicker": pa.float64(),
    "flicker_gt": pa.float64(),
    "flicker_ratio": pa.float64(),
    "vmaf": pa.float64(),
    "seconds": pa.float64(),
    "error": pa.string(),
    "psnr_y_frames": pa.list_(pa.float64()),
    "ssim_y_frames": pa.list_(pa.float64()),
    "warp_error_frames": pa.list_(pa.float64()),
}
"""The columns of one result row (one case x method); ``*_frames`` hold the per-frame values."""



# ------------------------------------------------------------------------------------------------------ models


def present_models(store: Any, requested: Sequence[str] = DEFAULT_MODELS, limit: int = MAX_MODELS
                   ) -> tuple[dict[str, Any], list[str]]:
    """Load the requested catalog models whose weights are on this machine (never downloads), at most
    ``limit``; returns ``({id: spandrel descriptor}, notes on the ones left out)``."""
    loaded: dict[str, Any] = {}
    notes: list[str] = []
    for model_id in requested:
        if len(loaded) >= limit:
            notes.append(f"{model_id}: left out (at most {limit} models)")
            continue
        try:
            status = store.status(model_id)
            if not status.available:
                notes.append(f"{model_id}: weights not present here; skipped")
                continue
            loaded[model_id] = store.load(model_id).descriptor
        except Exception as exc:  # noqa: BLE001 - one bad model must not stop the suite
            notes.append(f"{model_id}: {exc}")
    return loaded, notes


# ----------------------------------------------------------------------------------------------------- metrics


def _finite_mean(values: Iterable[float]) -> float:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else math.nan


def _empty_row(**values: Any) -> dict[str, Any]:
    row = {name: None for name in ROW_COLUMNS}
    row.update(values)
    return row


def case_flows(lr: Sequence[np.ndarray], size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Flow and mask of each low-resolution pair (t-1, t), resized to ``size``; None for frame 0."""
    return [None] + [flow_with_mask(lr[t - 1], lr[t], size=size) for t in range(1, len(lr))]


def _write_clip(path: Path, frames: Sequence[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    with ChunkWriter(path, width, height, bit_depth=8) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def measure(
    gt: Sequence[np.ndarray],
    out: Sequence[np.ndarray],
    flows: Sequence[tuple[np.ndarray, np.ndarray] | None],
    *,
    rgb: bool = True,
) -> dict[str, Any]:
    """Per-frame and mean PSNR/SSIM (Y, RGB), E_warp (given flows) and flicker of ``out`` against ``gt``."""
    psnr_y = [psnr(g, o, "y") for g, o in zip(gt, out)]
    ssim_y = [ssim(g, o, "y") for g, o in zip(gt, out)]
    psnr_rgb = [psnr(g, o, "rgb") for g, o in zip(gt, out)] if rgb else []
    ssim_rgb = [ssim(g, o, "rgb") for g, o in zip(gt, out)] if rgb else []
    ewarp = [math.nan if f is None else warp_error(out[t - 1], out[t], f[0], mask=f[1])
             for t, f in enumerate(flows)]
    meter = FlickerMeter()
    flicker = [meter.add(o) for o in out]
    return {
        "psnr_y": _finite_mean(psnr_y), "ssim_y": _finite_mean(ssim_y),
        "psnr_rgb": _finite_mean(psnr_rgb), "ssim_rgb": _finite_mean(ssim_rgb),
        "warp_error": _finite_mean(ewarp), "flicker": _finite_mean(flicker),
        "psnr_y_frames": psnr_y, "ssim_y_frames": ssim_y, "warp_error_frames": ewarp,
    }


# ------------------------------------------------------------------------------------------------------- suite


def _baseline(lr: Sequence[np.ndarray], method: str, width: int, height: int) -> list[np.ndarray]:
    flag = cv2.INTER_CUBIC if method == "bicubic" else cv2.INTER_LANCZOS4
    return [cv2.resize(f, (width, height), interpolation=flag) for f in lr]


def _cohere(hr: Sequence[np.ndarray], lr: Sequence[np.ndarray], method: str) -> list[np.ndarray]:
    if method == "none":
        return list(hr)
    from stages.ops.cohere.temporal import TemporalFilter, TemporalSettings

    temporal = TemporalFilter(TemporalSettings(method=method))
    return [temporal.process(h, l) for h, l in zip(hr, lr)]


def _holdout_rows(case: Case, gt: Sequence[np.ndarray], interpolators: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    held = list(range(1, len(gt) - 1, 2))
    for name, interpolator in interpolators.items():
        started = time.perf_counter()
        try:
            rebuilt = [interpolator.interpolate(gt[i - 1], gt[i + 1], [0.5])[0] for i in held]
        except Exception as exc:  # noqa: BLE001 - reported in the row
            rows.append(_empty_row(task="interpolate", case=f"{case.sequence}/holdout", sequence=case.sequence,
                                   degradation="none", method=name, error=str(exc)[:300]))
            continue
        refs = [gt[i] for i in held]
        psnr_y = [psnr(g, o, "y") for g, o in zip(refs, rebuilt)]
        ssim_y = [ssim(g, o, "y") for g, o in zip(refs, rebuilt)]
        rows.append(_empty_row(
            task="interpolate", case=f"{case.sequence}/holdout", sequence=case.sequence, degradation="none",
            method=name, upscaler="none", coherence="none", frames=len(held), width=gt[0].shape[1],
            height=gt[0].shape[0], psnr_y=_finite_mean(psnr_y), ssim_y=_finite_mean(ssim_y),
            psnr_rgb=_finite_mean(psnr(g, o, "rgb") for g, o in zip(refs, rebuilt)),
            ssim_rgb=_finite_mean(ssim(g, o, "rgb") for g, o in zip(refs, rebuilt)),
            psnr_y_frames=psnr_y, ssim_y_frames=ssim_y, seconds=round(time.perf_counter() - started, 3),
        ))
    return rows


def make_interpolators(names: Sequence[str] = INTERPOLATORS, rife_factory: Callable[[], Any] | None = None
                       ) -> dict[str, Any]:
    """The interpolators by name (``rife`` only with a factory, i.e. when its weights are present)."""
    from stages.ops.interpolate.interpolators import make_interpolator

    result = {}
    for name in names:
        if name == "rife" and rife_factory is None:
            continue
        result[name] = make_interpolator(name, rife_factory=rife_factory)
    return result


def run_suite(
    cases: Sequence[Case],
    models: Mapping[str, Any] | None = None,
    *,
    baselines: Sequence[str] = BASELINES,
    coherence: Sequence[str] = COHERENCE_METHODS,
    interpolators: Mapping[str, Any] | Sequence[str] | None = INTERPOLATORS,
    include_vmaf: bool = True,
    device: Any = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every method on every case and return one row per case x method (columns :data:`ROW_COLUMNS`).

    Args:
        cases: from :func:`make_cases` (or :meth:`Case.cached`).
        models: ``{name: spandrel ImageModelDescriptor}`` (see :func:`present_models`); each runs x4 followed by
            each ``coherence`` method.
        interpolators: names (see :func:`make_interpolators`) or ``{name: interpolator}``; run once per
            sequence on its first case's GT. None or empty: no interpolation rows.
        include_vmaf: VMAF per row when ffmpeg has libvmaf (else the column stays empty).
        device: a :class:`stages.device.DeviceChoice` (default: ``choose_device("auto")``).
        progress: called after each case with ``{"case", "index", "cases", "rows", "seconds"}``.
    """
    models = dict(models or {})
    if isinstance(interpolators, Mapping):
        interp = dict(interpolators)
    else:
        interp = make_interpolators(interpolators or ())
    vmaf_ok = include_vmaf and has_libvmaf()
    if include_vmaf and not vmaf_ok:
        log.warning("benchmark: ffmpeg has no libvmaf; VMAF left out")
    upscalers: dict[str, Any] = {}
    if models:
        from stages.device import choose_device
        from stages.ops.upscale.engine import Upscaler, plan_scale

        device = device or choose_device("auto")
        upscalers = {name: (Upscaler(d, device), plan_scale(SCALE, int(d.scale))) for name, d in models.items()}
    rows: list[dict[str, Any]] = []
    seen_sequences: set[str] = set()
    for index, case in enumerate(cases):
        started = time.perf_counter()
        gt = case.ground_truth()
        lr = case.degraded()
        height, width = gt[0].shape[:2]
        flows = case_flows(lr, (width, height))
        gt_meter = FlickerMeter()
        flicker_gt = _finite_mean(gt_meter.add(f) for f in gt)
        outputs: dict[str, tuple[str, str, list[np.ndarray], float]] = {}
        for method in baselines:
            t0 = time.perf_counter()
            outputs[method] = (method, "none", _baseline(lr, method, width, height), time.perf_counter() - t0)
        for name, (upscaler, steps) in upscalers.items():
            t0 = time.perf_counter()
            hr = upscaler.upscale(lr, steps)
            if hr[0].shape[:2] != (height, width):
                hr = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in hr]
            model_seconds = time.perf_counter() - t0
            for method in coherence:
                t1 = time.perf_counter()
                outputs[f"{name}+{method}"] = (name, method, _cohere(hr, lr, method),
                                               model_seconds + time.perf_counter() - t1)
        case_rows = []
        with tempfile.TemporaryDirectory(prefix="vup-bench-vmaf-") as tmp:
            ref_clip = _write_clip(Path(tmp) / "gt.nut", gt) if vmaf_ok else None
            for method, (upscaler_name, coherence_name, frames, seconds) in outputs.items():
                row = _empty_row(task="upscale", case=case.name, sequence=case.sequence,
                                 degradation=case.degradation, method=method, upscaler=upscaler_name,
                                 coherence=coherence_name, frames=len(frames), width=width, height=height,
                                 flicker_gt=flicker_gt, seconds=round(seconds, 3))
                row.update(measure(gt, frames, flows))
                if vmaf_ok:
                    try:
                        dist = _write_clip(Path(tmp) / "dist.nut", frames)
                        row["vmaf"] = vmaf(ref_clip, dist, threads=os.cpu_count() or 1).mean
                    except Exception as exc:  # noqa: BLE001 - VMAF is optional
                        row["error"] = f"vmaf: {exc}"[:300]
                case_rows.append(row)
        lanczos = next((r["flicker"] for r in case_rows if r["method"] == "lanczos"), None)
        for row in case_rows:
            if lanczos and row["flicker"] is not None and math.isfinite(row["flicker"]):
                row["flicker_ratio"] = row["flicker"] / lanczos
        rows.extend(case_rows)
        if interp and case.sequence not in seen_sequences:
            seen_sequences.add(case.sequence)
            rows.extend(_holdout_rows(case, gt, interp))
        if progress is not None:
            progress({"case": case.name, "index": index, "cases": len(cases), "rows": len(rows),
                      "seconds": round(time.perf_counter() - started, 2)})
    return rows


