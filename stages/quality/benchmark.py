"""The quality benchmark suite: ground-truth sequences, degradations, upscalers with and without temporal
coherence, frame interpolation on held-out frames, and the report (Parquet + Markdown + PNG).

Plain Python (no Dagster): ``orchestration.graphs.benchmark`` runs these functions as assets and
``benchmarks.quality`` (``vup bench quality``) runs that job.

Cases (:func:`make_cases`): each ground-truth (GT) sequence - Vid4 calendar and city from
``<shared>/testdata/vid4/GT/<seq>/*.png`` when present, and always a generated clip of a photo filmed with a
moving camera (:func:`stages.quality.samples.make_sample_clip`, decoded) - crossed with each degradation
(:data:`DEGRADATIONS`, all x4):

- ``bicubic``: antialiased bicubic downscale (Pillow ``BICUBIC``, which widens the kernel by the scale factor,
  like MATLAB ``imresize``);
- ``bd``: Gaussian blur sigma 1.6 (13x13 kernel, reflected border), then keep every 4th pixel (from pixel 0);
- ``x264``: ``bicubic``, then libx264 CRF 28 (preset medium, yuv420p, 12 fps) encode and decode (PyAV).

GT frames are cropped (top-left) to a multiple of 8 so the low-resolution frames have even sizes (4:2:0).

Upscale methods (:func:`run_suite`): ``bicubic`` and ``lanczos`` (OpenCV ``INTER_CUBIC`` /
``INTER_LANCZOS4`` back to the GT size), and each given super-resolution model (x4 along
:func:`stages.ops.upscale.engine.plan_scale`) followed by each coherence method (:class:`stages.ops.cohere.temporal.TemporalFilter`,
``none`` / ``flow`` / ``ema``, fed the low-resolution frame). Per frame: PSNR and SSIM on Y and RGB against GT
(:mod:`stages.quality.metrics`, no border crop), E_warp with the flow and mask of the low-resolution pair (the same for
every method of a case), flicker; per case-method VMAF from lossless clips when ffmpeg has libvmaf.

Interpolation: every other GT frame (1, 3, ...; each with both neighbours) is held out and rebuilt from its
neighbours at t = 0.5 by each interpolator (``flow``, ``blend``, ``minterpolate``; ``rife`` only when a factory
is given); PSNR/SSIM of the rebuilt frames against the held-out ones.

Targets (:func:`compute_targets`, stated in the report, never asserted): (1) the flow coherence pass cuts E_warp
by at least 30 % against the same upscaler without it, costing at most 0.3 dB PSNR-Y; (2) the flow interpolator
beats blending and minterpolate on held-out-frame PSNR-Y.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.errors import SettingsError
from stages.media.chunkio import ChunkWriter, read_frames
from stages.quality.metrics import (
    FLICKER_DEFINITION,
    PSNR_DEFINITION,
    SSIM_DEFINITION,
    VMAF_DEFINITION,
    WARP_ERROR_DEFINITION,
    FlickerMeter,
    flow_with_mask,
    has_libvmaf,
    psnr,
    ssim,
    vmaf,
    warp_error,
)
from stages.store.fsutil import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

SCALE = 4
DEGRADATIONS = ("bicubic", "bd", "x264")
VID4_SEQUENCES = ("calendar", "city")
COHERENCE_METHODS = ("none", "flow", "ema")
INTERPOLATORS = ("flow", "blend", "minterpolate")
BASELINES = ("bicubic", "lanczos")
DEFAULT_MODELS = ("realesr-animevideov3",)
MAX_MODELS = 2
BD_SIGMA = 1.6
X264_CRF = 28
CASE_VERSION = "1"
TARGET_EWARP_CUT = 0.30
TARGET_PSNR_COST_DB = 0.3

DEGRADATION_DEFINITION = (
    "x4 degradations: bicubic = antialiased bicubic downscale (Pillow BICUBIC); bd = Gaussian blur sigma 1.6 "
    "(13x13, reflected border) then every 4th pixel from 0; x264 = bicubic then libx264 CRF 28 yuv420p "
    "encode/decode; GT cropped top-left to a multiple of 8"
)
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


# ------------------------------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One ground-truth sequence under one degradation.

    Args:
        name: ``<sequence>/<degradation>``.
        frames_gt: the GT frames (``HxWx3`` uint8 RGB), a folder of PNGs, or an ``.npz`` cache written by
            :meth:`cached` (arrays ``gt`` and ``lr``).
        degradation: one of :data:`DEGRADATIONS`.
        sequence: the sequence name (default: the part of ``name`` before ``/``).
        max_frames: keep the first frames only (folders); None keeps all.
    """

    name: str
    frames_gt: list[np.ndarray] | Path
    degradation: str
    sequence: str = ""
    max_frames: int | None = None
    _lr: list[np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.degradation not in DEGRADATIONS:
            raise SettingsError(f"benchmark: unknown degradation {self.degradation!r}; use one of "
                                f"{', '.join(DEGRADATIONS)}")
        if not self.sequence:
            self.sequence = self.name.split("/")[0]

    def ground_truth(self) -> list[np.ndarray]:
        """The GT frames, cropped to a multiple of 8."""
        source = self.frames_gt
        if isinstance(source, (str, Path)):
            path = Path(source)
            if path.suffix == ".npz":
                with np.load(path) as data:
                    return list(data["gt"])
            frames = [_read_png(p) for p in sorted(path.glob("*.png"))[: self.max_frames]]
        else:
            frames = list(source[: self.max_frames] if self.max_frames else source)
        if not frames:
            raise SettingsError(f"benchmark: case {self.name} has no frames")
        return [crop_to_multiple(f, 2 * SCALE) for f in frames]

    def degraded(self) -> list[np.ndarray]:
        """The low-resolution input (GT / 4 under :attr:`degradation`)."""
        if self._lr is None:
            if isinstance(self.frames_gt, Path) and self.frames_gt.suffix == ".npz":
                with np.load(self.frames_gt) as data:
                    self._lr = list(data["lr"])
            else:
                self._lr = degrade(self.ground_truth(), self.degradation)
        return self._lr

    def cache_key(self) -> str:
        source = self.frames_gt
        if isinstance(source, (str, Path)):
            ident = f"{Path(source).resolve()}:{self.max_frames}"
        else:
            digest = hashlib.sha256()
            for frame in source[: self.max_frames] if self.max_frames else source:
                digest.update(np.ascontiguousarray(frame).tobytes())
            ident = digest.hexdigest()
        text = json.dumps([ident, self.degradation, CASE_VERSION, SCALE])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cached(self, folder: str | Path) -> tuple[Case, bool]:
        """This case with GT and degraded frames stored as ``<folder>/<seq>-<degradation>-<key>.npz`` (reused when
        present); returns the case that reads from it and whether the file was reused."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.sequence}-{self.degradation}-{self.cache_key()}.npz"
        reused = path.exists()
        if not reused:
            buffer = io.BytesIO()
            np.savez(buffer, gt=np.stack(self.ground_truth()), lr=np.stack(self.degraded()))
            atomic_write_bytes(path, buffer.getvalue())
        return Case(self.name, path, self.degradation, self.sequence), reused


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SettingsError(f"benchmark: cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_to_multiple(frame: np.ndarray, multiple: int) -> np.ndarray:
    """``frame`` cropped (top-left kept) so both sides are multiples of ``multiple``."""
    height, width = frame.shape[:2]
    return np.ascontiguousarray(frame[: height - height % multiple, : width - width % multiple])


def degrade(frames: Sequence[np.ndarray], degradation: str, scale: int = SCALE) -> list[np.ndarray]:
    """Low-resolution versions (``H/scale x W/scale x 3`` uint8) of GT frames (sides multiples of ``scale``).

    Raises:
        SettingsError: unknown degradation or a side not a multiple of ``scale``.
    """
    for frame in frames:
        if frame.shape[0] % scale or frame.shape[1] % scale:
            raise SettingsError(f"benchmark: frame {frame.shape[1]}x{frame.shape[0]} is not a multiple of {scale}")
    if degradation == "bicubic":
        return [_bicubic_down(f, scale) for f in frames]
    if degradation == "bd":
        return [cv2.GaussianBlur(f, (13, 13), BD_SIGMA, borderType=cv2.BORDER_REFLECT)[::scale, ::scale].copy()
                for f in frames]
    if degradation == "x264":
        return x264_roundtrip([_bicubic_down(f, scale) for f in frames])
    raise SettingsError(f"benchmark: unknown degradation {degradation!r}; use one of {', '.join(DEGRADATIONS)}")


def _bicubic_down(frame: np.ndarray, scale: int) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    image = Image.fromarray(frame).resize((width // scale, height // scale), Image.Resampling.BICUBIC)
    return np.asarray(image).copy()


def x264_roundtrip(frames: Sequence[np.ndarray], crf: int = X264_CRF) -> list[np.ndarray]:
    """Encode RGB frames with libx264 (CRF ``crf``, yuv420p) in memory and decode them back."""
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    if len(decoded) != len(frames):
        raise SettingsError(f"benchmark: x264 round trip gave {len(decoded)} frames for {len(frames)}")
    return decoded


def generated_frames(width: int = 256, height: int = 192, frames: int = 12, fps: int = 12) -> list[np.ndarray]:
    """Decoded frames of :func:`stages.quality.samples.make_sample_clip` (a photo with camera motion, no audio)."""
    from stages.quality.samples import make_sample_clip

    with tempfile.TemporaryDirectory(prefix="vup-bench-") as tmp:
        clip = make_sample_clip(Path(tmp) / "generated.mp4", width=width, height=height, seconds=frames / fps,
                                fps=fps, audio=False)
        return list(read_frames(clip))[:frames]


def make_cases(
    shared_dir: Path | None,
    generated: bool = True,
    max_frames: int = 10,
    *,
    degradations: Sequence[str] = DEGRADATIONS,
    sequences: Sequence[str] = VID4_SEQUENCES,
    generated_size: tuple[int, int] = (256, 192),
) -> list[Case]:
    """The suite's cases: each Vid4 sequence found under ``<shared_dir>/testdata/vid4/GT`` (absent ones are
    skipped) and, with ``generated``, a generated ``generated_size`` clip, each under every degradation; at
    most ``max_frames`` frames each."""
    sources: list[tuple[str, list[np.ndarray] | Path]] = []
    if shared_dir is not None:
        root = Path(shared_dir) / "testdata" / "vid4" / "GT"
        for seq in sequences:
            folder = root / seq
            if folder.is_dir() and any(folder.glob("*.png")):
                sources.append((seq, folder))
            else:
                log.info("benchmark: %s not found under %s; skipped", seq, root)
    if generated:
        sources.append(("generated", generated_frames(*generated_size, frames=max_frames)))
    return [Case(f"{seq}/{deg}", src, deg, seq, max_frames) for seq, src in sources for deg in degradations]


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
    from stages.ops.interpolate.engine import make_interpolator

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

