"""Temporal-coherence benchmark on real footage and generated moving textures, with real upscaling models.

    python -m benchmarks.coherence_real [--models realesr-general-x4v3,realesr-animevideov3] [--cases ...]
                                        [--frames N] [--method auto] [--strength 0.6] [--cache DIR]

Cases (``--cases``, all by default): two real clips of ../shared/testdata/clips, a few seconds each, area-
downscaled to a ground truth and again by the scale to the source (so the original is the reference):
``intel`` (a car crossing asphalt, 384x216, x2) and ``bikes`` (street, cyclists, a scene cut, 480x204, x2);
Vid4 ``calendar`` and ``city`` (../shared/testdata/vid4/GT, x4); and generated textures in motion
(:mod:`benchmarks.coherence_textures`, 384x288, x2): ``water``, ``foliage``, ``grass``, ``grain``.

Each case's source frames are upscaled once per model and cached in ``--cache`` (npz; default
``$TMPDIR/vup-coherence-bench``); only the coherence pass runs again. Models: ``realesr-general-x4v3`` (the
ncnn files of ../shared, converted), ``realesr-animevideov3`` (the .pth of ../shared), both x4 networks with an
antialiased bicubic resize for x2 (as the model store does), and ``synthetic`` (lanczos plus per-frame noise,
:func:`benchmarks.coherence_textures.noisy_upscale`; needs nothing from ../shared).

Printed per model and case: E_warp (definition: :data:`stages.quality.metrics.WARP_ERROR_DEFINITION`, flow and
occlusion mask from the source pair, shared by every method; pairs across a scene cut are left out) of the
model's frames, of the coherent frames and of a lanczos upscale; the share of the model-to-lanczos gap the pass
closes; PSNR-Y against the reference (all frames); the occlusion-masked errors that show ghosting (on pixels the
source flow marks occluded, dilated by the scale: the mean largest-channel change the pass made there, in 8-bit
levels, and the PSNR-Y change there); and the pass's wall time per frame at the case's size and at 1920x1080
(OpenCV with its default threads; the machine's load average is in the header: on a shared machine, compare
timings of one run only). Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.coherence_textures import GENERATORS, noisy_upscale
from benchmarks.common import REPO, command_line, versions
from stages.ops.cohere.temporal import TemporalFilter, TemporalSettings, choose_method
from stages.quality.metrics import flow_with_mask, psnr, warp_error

SHARED = REPO.parent / "shared"
MODELS = ("realesr-general-x4v3", "realesr-animevideov3", "synthetic")
DEFAULT_MODELS = ("realesr-general-x4v3", "realesr-animevideov3")


@dataclass(frozen=True)
class Case:
    """One benchmark clip: where its ground truth comes from, its size and the upscaling factor."""

    name: str
    kind: str  # "clip", "vid4" or "generated"
    source: str  # clip file name, Vid4 folder name, or generator name
    width: int
    height: int
    scale: int
    start: int = 0
    frames: int = 24


CASES = (
    Case("intel", "clip", "intel_car-detection.mp4", 384, 216, 2, start=52, frames=30),
    Case("bikes", "clip", "skv_bikes.mp4", 480, 204, 2, start=62, frames=30),
    Case("calendar", "vid4", "calendar", 720, 576, 4, frames=16),
    Case("city", "vid4", "city", 704, 576, 4, frames=16),
    Case("water", "generated", "water", 384, 288, 2),
    Case("foliage", "generated", "foliage", 384, 288, 2),
    Case("grass", "generated", "grass", 384, 288, 2),
    Case("grain", "generated", "grain", 384, 288, 2),
)


# ---------------------------------------------------------------------------------------------------------------
# frames


def _clip_frames(case: Case) -> list[np.ndarray]:
    import av

    path = SHARED / "testdata" / "clips" / case.source
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= case.start + case.frames:
                break
            if index >= case.start:
                rgb = frame.to_ndarray(format="rgb24")
                frames.append(cv2.resize(rgb, (case.width, case.height), interpolation=cv2.INTER_AREA))
    return frames


def _vid4_frames(case: Case) -> list[np.ndarray]:
    folder = SHARED / "testdata" / "vid4" / "GT" / case.source
    paths = sorted(folder.glob("*.png"))[case.start:case.start + case.frames]
    frames = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]
    return [f[:case.height, :case.width] for f in frames]


def scene_cuts(frames: Sequence[np.ndarray], threshold: float = 0.12) -> set[int]:
    """Indices of frames that start a scene: mean absolute grey change (0..1, on a 96-pixel-wide copy) at least
    ``threshold`` and at least 2.5x the median change so far (as the project's scene detection)."""
    cuts, history = set(), []
    previous = None
    for index, frame in enumerate(frames):
        small = cv2.resize(frame, (96, max(1, round(96 * frame.shape[0] / frame.shape[1]))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        if previous is not None:
            change = float(np.abs(grey - previous).mean())
            if change >= threshold and change >= 2.5 * (float(np.median(history)) if history else 0.0):
                cuts.add(index)
            else:
                history.append(change)
        previous = grey
    return cuts


def ground_truth(case: Case, frames: int | None = None) -> list[np.ndarray]:
    """The case's reference frames (``height``x``width``x3 uint8)."""
    case = replace(case, frames=frames or case.frames)
    if case.kind == "clip":
        return _clip_frames(case)
    if case.kind == "vid4":
        return _vid4_frames(case)
    return GENERATORS[case.source](case.frames, case.width, case.height)


def downscale(frames: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """The source frames: each reference frame area-downscaled by ``scale``."""
    return [cv2.resize(f, (f.shape[1] // scale, f.shape[0] // scale), interpolation=cv2.INTER_AREA) for f in frames]


def lanczos(lrs: Sequence[np.ndarray], width: int, height: int) -> list[np.ndarray]:
    """The non-AI baseline: each source frame resized to ``width``x``height`` with OpenCV's Lanczos."""
    return [cv2.resize(f, (width, height), interpolation=cv2.INTER_LANCZOS4) for f in lrs]


# ---------------------------------------------------------------------------------------------------------------
# models


def _load_network(model: str, scale: int) -> Any:
    """A spandrel descriptor of ``model`` (from ../shared) that upscales by ``scale``."""
    from spandrel import ImageModelDescriptor, ModelLoader

    from stages.models.ncnn import convert_ncnn
    from stages.models.resized import with_output_scale
    from stages.models.store import ModelStore

    if model == "realesr-general-x4v3":
        folder = SHARED / "models" / "realesr-general-x4v3-ncnn"
        state, _info = convert_ncnn(folder / "RealESRGAN_General_x4_v3.param", folder / "RealESRGAN_General_x4_v3.bin")
        descriptor = ModelLoader().load_from_state_dict(state)
    elif model == "realesr-animevideov3":
        descriptor = ModelStore.load_descriptor(SHARED / "models" / "realesr-animevideov3" / "realesr-animevideov3.pth")
    else:
        raise SystemExit(f"error: bench coherence: unknown model {model!r}; use one of {', '.join(MODELS)}")
    assert isinstance(descriptor, ImageModelDescriptor)
    descriptor = descriptor.eval()
    return with_output_scale(descriptor, scale) if descriptor.scale != scale else descriptor


def upscale(model: str, lrs: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """``lrs`` upscaled by ``model`` (uint8 RGB), one frame at a time on the CPU, float32."""
    if model == "synthetic":
        return noisy_upscale(lrs, scale)
    import torch

    network = _load_network(model, scale)
    out = []
    with torch.inference_mode():
        for lr in lrs:
            x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float() / 255.0
            y = network.model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            out.append(np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return out


def cached_case(case: Case, model: str, cache: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``(reference, source, upscaled)`` frames of ``case`` by ``model``, from ``cache`` when there."""
    digest = hashlib.sha256(repr((case, model)).encode()).hexdigest()[:12]
    path = cache / f"{case.name}-{model}-{digest}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return list(stored["gt"]), list(stored["lr"]), list(stored["hr"])
    gts = ground_truth(case)
    lrs = downscale(gts, case.scale)
    started = time.perf_counter()
    hrs = upscale(model, lrs, case.scale)
    print(f"  upscaled {case.name} with {model}: {len(hrs)} frames in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npz")
    np.savez_compressed(tmp, gt=np.stack(gts), lr=np.stack(lrs), hr=np.stack(hrs))
    tmp.replace(path)
    return gts, lrs, hrs


# ---------------------------------------------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Pairs:
    """Flow and occlusion mask of each consecutive source pair (None across a cut), at the output size."""

    flows: list[tuple[np.ndarray, np.ndarray] | None]
    occluded: list[np.ndarray | None]


def pairs(lrs: Sequence[np.ndarray], cuts: set[int], width: int, height: int, scale: int) -> Pairs:
    """Flow and occlusion mask of each source pair (:func:`stages.quality.metrics.flow_with_mask`), the occluded
    pixels dilated by ``scale``; None for the first frame and at ``cuts``."""
    flows: list[tuple[np.ndarray, np.ndarray] | None] = [None]
    occluded: list[np.ndarray | None] = [None]
    kernel = np.ones((2 * scale + 1, 2 * scale + 1), np.uint8)
    for t in range(1, len(lrs)):
        if t in cuts:
            flows.append(None)
            occluded.append(None)
            continue
        flow, mask = flow_with_mask(lrs[t - 1], lrs[t], size=(width, height))
        flows.append((flow, mask))
        occluded.append(cv2.dilate((~mask).astype(np.uint8), kernel).astype(bool))
    return Pairs(flows, occluded)


def mean_warp_error(frames: Sequence[np.ndarray], shared: Pairs) -> float:
    """Mean E_warp of ``frames`` over the pairs of ``shared`` (cuts left out)."""
    values = [warp_error(frames[t - 1], frames[t], fm[0], mask=fm[1])
              for t, fm in enumerate(shared.flows) if fm is not None]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def occluded_change(outs: Sequence[np.ndarray], hrs: Sequence[np.ndarray], shared: Pairs) -> float:
    """Mean largest-channel change (8-bit levels) the pass made on occluded pixels: what it borrowed where the
    previous frame has nothing to give (ghosting)."""
    total, count = 0.0, 0
    for out, hr, occ in zip(outs, hrs, shared.occluded, strict=True):
        if occ is None or not occ.any():
            continue
        diff = np.abs(out.astype(np.int16) - hr.astype(np.int16)).max(axis=2)
        total += float(diff[occ].sum())
        count += int(occ.sum())
    return total / count if count else math.nan


def occluded_psnr(frames: Sequence[np.ndarray], gts: Sequence[np.ndarray], shared: Pairs) -> float:
    """PSNR-Y (dB) over the occluded pixels of all frames."""
    weights = np.array([0.2126, 0.7152, 0.0722], np.float32)
    sq, count = 0.0, 0
    for frame, gt, occ in zip(frames, gts, shared.occluded, strict=True):
        if occ is None or not occ.any():
            continue
        diff = (frame.astype(np.float32) - gt.astype(np.float32)) @ weights
        sq += float((diff[occ] ** 2).sum())
        count += int(occ.sum())
    return 10 * math.log10(255.0 ** 2 / (sq / count)) if count and sq > 0 else math.nan


def cohere(settings: TemporalSettings, hrs: Sequence[np.ndarray], lrs: Sequence[np.ndarray],
           cuts: set[int]) -> tuple[list[np.ndarray], float]:
    """The coherent frames and the pass's mean wall time per frame (s)."""
    filt = TemporalFilter(settings)
    outs, seconds = [], 0.0
    for t, (hr, lr) in enumerate(zip(hrs, lrs, strict=True)):
        started = time.perf_counter()
        outs.append(filt.process(hr, lr, cut=t in cuts))
        seconds += time.perf_counter() - started
    return outs, seconds / len(hrs)


def measure(case: Case, model: str, settings: TemporalSettings, cache: Path) -> dict:
    """Every figure of one case and model (see the module docstring)."""
    gts, lrs, hrs = cached_case(case, model, cache)
    height, width = hrs[0].shape[:2]
    cuts = scene_cuts(gts)
    shared = pairs(lrs, cuts, width, height, case.scale)
    outs, seconds = cohere(settings, hrs, lrs, cuts)
    lz = lanczos(lrs, width, height)
    e_model, e_coh, e_lz = (mean_warp_error(f, shared) for f in (hrs, outs, lz))
    e_gt = mean_warp_error(gts, shared)
    gap = e_model - e_lz
    closed = 100.0 * (e_model - e_coh) / gap if gap > 0 else math.nan
    return {
        "case": case.name, "model": model, "size": f"{width}x{height}", "scale": case.scale, "frames": len(hrs),
        "cuts": sorted(cuts), "ewarp_model": e_model, "ewarp_coherent": e_coh, "ewarp_lanczos": e_lz,
        "ewarp_reference": e_gt, "gap_closed_pct": closed,
        "psnr_model": float(np.mean([psnr(g, h) for g, h in zip(gts, hrs, strict=True)])),
        "psnr_coherent": float(np.mean([psnr(g, o) for g, o in zip(gts, outs, strict=True)])),
        "psnr_lanczos": float(np.mean([psnr(g, o) for g, o in zip(gts, lz, strict=True)])),
        "occluded_change": occluded_change(outs, hrs, shared),
        "occluded_psnr_delta": occluded_psnr(outs, gts, shared) - occluded_psnr(hrs, gts, shared),
        "s_per_frame": seconds,
    }


def time_1080p(settings: TemporalSettings, frames: int = 8) -> dict[int, float]:
    """Seconds per frame of the pass on a 1920x1080 output from a 960x540 (x2) and a 480x270 (x4) source
    (generated grain clip, the stand-in model), by scale."""
    gts = GENERATORS["grain"](frames, 1920, 1080)
    seconds = {}
    for scale in (2, 4):
        lrs = downscale(gts, scale)
        _outs, mean = cohere(settings, noisy_upscale(lrs, scale), lrs, set())
        seconds[scale] = mean * frames / (frames - 1)  # the first frame passes through
    return seconds


# ---------------------------------------------------------------------------------------------------------------
# report


def _machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{platform.machine()} {model}, {os.cpu_count()} logical CPUs, load average {load}"


def _fmt(value: float, digits: int = 5) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}%"


def report(rows: Sequence[dict], settings: TemporalSettings, argv: Sequence[str],
           hd_seconds: dict[int, float] | None) -> str:
    """The Markdown report: machine, versions, settings, one row per model and case, the 1080p timing."""
    lines = [
        "# Temporal coherence on real footage and moving textures",
        "",
        f"Command: `{command_line('benchmarks.coherence_real', list(argv))}`  ",
        f"Machine: {_machine()}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in {**versions(("numpy", "torch", "spandrel"), ffmpeg=False),
                                                          "opencv": cv2.__version__}.items()) + "  ",
        f"Settings: {settings}",
        "",
        "| model | case | size | E_warp model | + coherence | lanczos | reference | gap closed | PSNR-Y model "
        "| + coherence | lanczos | occluded change | occluded dPSNR | s/frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['case']} | {r['size']} x{r['scale']} | {_fmt(r['ewarp_model'])} | "
            f"{_fmt(r['ewarp_coherent'])} | {_fmt(r['ewarp_lanczos'])} | {_fmt(r['ewarp_reference'])} | "
            f"{_pct(r['gap_closed_pct'])} | {_fmt(r['psnr_model'], 2)} | {_fmt(r['psnr_coherent'], 2)} | "
            f"{_fmt(r['psnr_lanczos'], 2)} | {_fmt(r['occluded_change'], 2)} | {_fmt(r['occluded_psnr_delta'], 2)} | "
            f"{_fmt(r['s_per_frame'], 3)} |")
    if hd_seconds is not None:
        timings = ", ".join(f"{seconds:.3f} s per frame from {1920 // scale}x{1080 // scale} (x{scale})"
                            for scale, seconds in hd_seconds.items())
        lines += ["", f"Pass at 1920x1080 output: {timings} (one process, OpenCV's threads, at this load)."]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coherence_real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated case names")
    parser.add_argument("--frames", type=int, default=None, help="frames per case (default: each case's own)")
    parser.add_argument("--method", default="auto", choices=("auto", "flow", "ema"),
                        help="coherence method (default auto, which is flow at these sizes)")
    parser.add_argument("--strength", type=float, default=None, help="temporal strength (default: the settings')")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "vup-coherence-bench"),
                        help="folder for the upscaled frames (npz)")
    parser.add_argument("--no-1080p", action="store_true", help="skip the 1920x1080 timing")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    settings = TemporalSettings(method=choose_method(args.method, "cpu", 1920, 1080, 1 << 40)[0])
    if args.strength is not None:
        settings = replace(settings, strength=args.strength)
    settings.validate()
    by_name = {c.name: c for c in CASES}
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        raise SystemExit(f"error: bench coherence: unknown case(s) {', '.join(unknown)}; use {', '.join(by_name)}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows = []
    for model in models:
        for name in wanted:
            case = by_name[name]
            if args.frames:
                case = replace(case, frames=args.frames)
            if (case.kind != "generated" or model != "synthetic") and not SHARED.is_dir():
                print(f"skipped {name} with {model}: {SHARED} is absent", file=sys.stderr)
                continue
            rows.append(measure(case, model, settings, Path(args.cache)))
    hd = None if args.no_1080p else time_1080p(settings)
    print(report(rows, settings, argv, hd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
