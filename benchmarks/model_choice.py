"""Which upscaling model for real footage, and what x2 costs: quality and time of each option, and a crop figure.

    python -m benchmarks.model_choice [--frames 4] [--x4plus-frames 1] [--shared-dir DIR] [--figure PATH]
                                      [--sets chelsea,coffee,...] [--out DIR]

Live-action references (each a few frames, cropped to a multiple of 8): photos from ``skimage.data`` filmed by a
moving camera (``stages.quality.samples.make_sample_clip``: chelsea's fur, coffee, astronaut), and where
``<shared>/testdata`` is present the Vid4 ground truth (calendar, city) and the real camera clips (intel street
traffic, skv bikes). Each reference is degraded the way real low-resolution footage is: an area (antialiased)
downscale, then libx264 CRF 23 (4:2:0), decoded again. Then, for x4 and for x2:

- ``lanczos``: a plain resize (the non-AI baseline);
- each model present (``realesr-animevideov3``, ``realesr-general-x4v3``, ``realesrgan-x4plus`` on fewer frames:
  it is slow), run by the project's own engine and backend choice (``stages.ops.upscale.op.make_upscaler``);
- x2 only: ``<model> x4 -> 1/2`` (the x4 network, then the engine's antialiased bicubic downscale: what the
  pipeline does for x2 with a x4-only network)
  and ``1/2 -> <model> x4`` (downscale the input, then the x4 network: a quarter of the model work).

Measured against the reference: PSNR-Y and SSIM-Y, VMAF (ffmpeg libvmaf, lossless clips) and ``detail``, the
ratio of the output's high-frequency energy (standard deviation of the luma Laplacian) to the reference's: near
1 keeps texture, well below 1 paints it flat, above 1 invents it. Time: model seconds per output frame, after a
warm-up frame. ``realesr-general-x4v3`` is taken from the catalog's store, or converted from the ncnn files in
``<shared>/models/realesr-general-x4v3-ncnn`` when the store has no copy (these machines cannot download it).

The figure (``--figure``, PNG) shows one crop of the chelsea reference: the reference, lanczos, the anime
network and the live-action network at x4. Prints a Markdown table and writes ``model_choice-<time>.parquet``
and ``.md`` under ``benchmarks/results/``. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks.common import RESULTS, command_line, timestamp, versions

MODULE = "benchmarks.model_choice"
ANIME = "realesr-animevideov3"
GENERAL = "realesr-general-x4v3"
X4PLUS = "realesrgan-x4plus"
GENERATED = ("chelsea", "coffee", "astronaut")
CRF = 23


# ----------------------------------------------------------------------------------------------- references


def _decode(path: Path, count: int, start: float = 0.0) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time < start:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def _crop8(frames: list[np.ndarray], multiple: int = 8) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    return [f[: h - h % multiple, : w - w % multiple].copy() for f in frames]


def references(count: int, shared: Path | None, names: Sequence[str] | None) -> dict[str, list[np.ndarray]]:
    """Reference frames by set name (generated always; Vid4 and the real clips where ``shared`` has them)."""
    from stages.quality.samples import make_sample_clip

    refs: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="vup-model-choice-") as tmp:
        for image in GENERATED:
            clip = make_sample_clip(Path(tmp) / f"{image}.mp4", width=640, height=360, seconds=1.0, fps=24,
                                    audio=False, image=image)
            refs[image] = _decode(clip, count, start=0.3)
    if shared is not None:
        for seq in ("calendar", "city"):
            folder = shared / "testdata" / "vid4" / "GT" / seq
            files = sorted(folder.glob("*.png"))[:count]
            if files:
                refs[f"vid4-{seq}"] = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
        for name, start in (("intel_car-detection.mp4", 12.0), ("skv_bikes.mp4", 1.0)):
            path = shared / "testdata" / "clips" / name
            if path.is_file():
                refs[name.split("_")[0] + "-clip"] = _decode(path, count, start=start)
    if names:
        refs = {k: v for k, v in refs.items() if k in names}
    return {k: _crop8(v) for k, v in refs.items()}


def degrade(frames: Sequence[np.ndarray], factor: int) -> list[np.ndarray]:
    """Area downscale by ``factor``, then libx264 CRF 23 yuv420p, decoded (a low-resolution camera file)."""
    h, w = frames[0].shape[:2]
    small = [cv2.resize(f, (w // factor, h // factor), interpolation=cv2.INTER_AREA) for f in frames]
    sh, sw = small[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = sw - sw % 2, sh - sh % 2, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium"}
        for frame in small:
            even = np.ascontiguousarray(frame[: sh - sh % 2, : sw - sw % 2])
            for packet in stream.encode(av.VideoFrame.from_ndarray(even, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [cv2.resize(f, (sw, sh), interpolation=cv2.INTER_LANCZOS4) if f.shape[:2] != (sh, sw) else f
            for f in decoded]


# ----------------------------------------------------------------------------------------------- methods


def model_store(shared: Path | None, tmp: Path) -> Any:
    """The user's model store; with ``realesr-general-x4v3`` converted from the shared ncnn files when the store
    has no copy of it."""
    from stages.models.store import ModelStore

    store = ModelStore(allow_download=False, progress=False)
    if store.present(GENERAL) or shared is None:
        return store
    folder = shared / "models" / "realesr-general-x4v3-ncnn"
    param, weights = folder / "RealESRGAN_General_x4_v3.param", folder / "RealESRGAN_General_x4_v3.bin"
    if not param.is_file():
        return store
    from safetensors.torch import save_file

    from stages.models.ncnn import convert_ncnn

    state, _ = convert_ncnn(param, weights)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / f"{GENERAL}.safetensors"))
    return ModelStore(models_dir=tmp, allow_download=False, progress=False)


def engine(store: Any, model_id: str) -> Callable[[list[np.ndarray], int], list[np.ndarray]]:
    """A function ``run(frames, scale)`` that runs ``model_id`` on frames with the project's engine, backend
    choice and scale plan (x2 from a x4 network: x4, then the engine's antialiased bicubic downscale)."""
    from stages.device import choose_device
    from stages.ops.upscale.engine import UpscaleSettings, plan_scale
    from stages.ops.upscale.ncnn import choose_backend
    from stages.ops.upscale.op import make_upscaler
    from stages.ops.upscale.selection import select_model

    choice = choose_device("auto")
    selection = select_model(store, model_id, 4)
    backend, _ = choose_backend("auto", choice, selection.load().descriptor)
    runner = make_upscaler(selection, backend, choice, UpscaleSettings(model=model_id), RESULTS / "ncnn-cache")
    return lambda frames, scale=4: runner.upscale(frames, plan_scale(scale, selection.model_scale))


def detail_ratio(reference: np.ndarray, out: np.ndarray) -> float:
    """Std of the luma Laplacian of ``out`` over that of ``reference`` (1: same amount of fine detail)."""
    def energy(frame: np.ndarray) -> float:
        y = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(y, cv2.CV_32F, ksize=3).std())
    return energy(out) / max(energy(reference), 1e-6)


def _write_lossless(path: Path, frames: Sequence[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def score(reference: Sequence[np.ndarray], out: Sequence[np.ndarray], use_vmaf: bool, tmp: Path) -> dict[str, float]:
    from stages.quality.metrics import psnr, ssim, vmaf

    n = len(out)
    row = {"psnr_y": float(np.mean([psnr(r, o, "y") for r, o in zip(reference, out)])),
           "ssim_y": float(np.mean([ssim(r, o, "y") for r, o in zip(reference, out)])),
           "detail": float(np.mean([detail_ratio(r, o) for r, o in zip(reference, out)])), "vmaf": float("nan")}
    if use_vmaf:
        ref = _write_lossless(tmp / "ref.mkv", reference[:n])
        dist = _write_lossless(tmp / "dist.mkv", out)
        row["vmaf"] = vmaf(ref, dist, threads=os.cpu_count() or 1).mean
    return row


def _timed(run: Callable[[list[np.ndarray]], list[np.ndarray]], frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    run(frames[:1])  # warm-up (ncnn export, allocation)
    started = time.perf_counter()
    out = run(frames)
    return out, (time.perf_counter() - started) / max(1, len(frames))


def _fit(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    return [f if f.shape[:2] == size else cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            for f in frames]


def measure_set(name: str, ref: list[np.ndarray], engines: dict[str, Callable], x4plus_frames: int,
                use_vmaf: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Rows for one reference set at x4 and x2, and the x4 outputs (for the figure)."""
    rows: list[dict[str, Any]] = []
    outputs: dict[str, list[np.ndarray]] = {}
    size = ref[0].shape[:2]
    for scale in (4, 2):
        lr = degrade(ref, scale)
        base = {"set": name, "scale": scale, "frames": len(ref), "input": f"{lr[0].shape[1]}x{lr[0].shape[0]}"}
        started = time.perf_counter()
        lanczos = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4) for f in lr]
        rows.append({**base, "method": "lanczos", "seconds_per_frame": (time.perf_counter() - started) / len(lr),
                     **score(ref, lanczos, use_vmaf, tmp)})
        if scale == 4:
            outputs["lanczos"] = lanczos
        for model_id, run in engines.items():
            frames = lr[:x4plus_frames] if model_id == X4PLUS else lr
            reference = ref[: len(frames)]
            out, seconds = _timed(lambda f: run(f, scale), frames)
            out = _fit(out, size)
            label = model_id if scale == 4 else f"{model_id} x4 -> 1/2"
            rows.append({**base, "method": label, "frames": len(frames), "seconds_per_frame": seconds,
                         **score(reference, out, use_vmaf, tmp)})
            if scale == 4:
                outputs[model_id] = out
            elif model_id != X4PLUS:
                half = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in lr]
                out, seconds = _timed(run, half)
                rows.append({**base, "method": f"1/2 -> {model_id} x4", "seconds_per_frame": seconds,
                             **score(ref, _fit(out, size), use_vmaf, tmp)})
        print(f"  {name} x{scale}: done", file=sys.stderr)
    return rows, outputs


# ----------------------------------------------------------------------------------------------- figure


def crop_figure(path: Path, ref: np.ndarray, outputs: dict[str, np.ndarray], box: tuple[int, int, int]) -> Path:
    """Side-by-side crops (reference, then each method), each ``box`` = (x, y, size) enlarged x2 (nearest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, size = box
    panels = {"reference": ref, **outputs}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), dpi=100)
    for ax, (label, frame) in zip(axes, panels.items()):
        crop = frame[y:y + size, x:x + size]
        ax.imshow(cv2.resize(crop, (size * 2, size * 2), interpolation=cv2.INTER_NEAREST))
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    fig.suptitle("x4 from a 160x90 H.264 (CRF 23) source; crops enlarged x2", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- main


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| set | scale | method | frames | PSNR-Y | SSIM-Y | VMAF | detail | s/frame |", "|---" * 9 + "|"]
    for r in rows:
        lines.append(f"| {r['set']} | x{r['scale']} | {r['method']} | {r['frames']} | {r['psnr_y']:.2f} | "
                     f"{r['ssim_y']:.4f} | {r['vmaf']:.1f} | {r['detail']:.2f} | {r['seconds_per_frame']:.3f} |")
    return "\n".join(lines)


def _summary(rows: list[dict[str, Any]]) -> str:
    """Mean over the sets per (scale, method), sets where every method ran."""
    by: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["scale"], r["method"]), []).append(r)
    lines = ["| scale | method | sets | PSNR-Y | VMAF | detail | s/frame |", "|---" * 7 + "|"]
    for (scale, method), group in sorted(by.items()):
        mean = {k: float(np.nanmean([g[k] for g in group])) for k in ("psnr_y", "vmaf", "detail", "seconds_per_frame")}
        lines.append(f"| x{scale} | {method} | {len(group)} | {mean['psnr_y']:.2f} | {mean['vmaf']:.1f} | "
                     f"{mean['detail']:.2f} | {mean['seconds_per_frame']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=4, help="frames per reference set (default 4)")
    parser.add_argument("--x4plus-frames", type=int, default=1, help="frames for realesrgan-x4plus (0: skip it)")
    parser.add_argument("--shared-dir", default=os.environ.get("VUP_SHARED_DIR", "../shared"))
    parser.add_argument("--sets", help="comma-separated set names (default: all present)")
    parser.add_argument("--figure", help="write the crop figure here (PNG)")
    parser.add_argument("--no-vmaf", action="store_true")
    parser.add_argument("--out", help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    shared = Path(args.shared_dir) if Path(args.shared_dir, "testdata").is_dir() else None
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    from stages.quality.metrics import has_libvmaf

    use_vmaf = not args.no_vmaf and has_libvmaf()
    refs = references(args.frames, shared, args.sets.split(",") if args.sets else None)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vup-model-choice-") as tmp_name:
        tmp = Path(tmp_name)
        store = model_store(Path(args.shared_dir) if Path(args.shared_dir).is_dir() else None, tmp)
        engines = {}
        for model_id in (ANIME, GENERAL, X4PLUS):
            if model_id == X4PLUS and args.x4plus_frames <= 0:
                continue
            if store.present(model_id):
                engines[model_id] = engine(store, model_id)
            else:
                print(f"{model_id}: not on this machine, left out", file=sys.stderr)
        figure_outputs: dict[str, np.ndarray] = {}
        for name, ref in refs.items():
            set_rows, outputs = measure_set(name, ref, engines, args.x4plus_frames, use_vmaf, tmp)
            rows.extend(set_rows)
            if name == "chelsea":
                figure_outputs = {k: v[0] for k, v in outputs.items() if k != X4PLUS}
                figure_ref = ref[0]
        if args.figure and figure_outputs:
            h, w = figure_ref.shape[:2]
            crop_figure(Path(args.figure), figure_ref, figure_outputs, (int(w * 0.30), int(h * 0.42), 128))
            print(f"figure: {args.figure}", file=sys.stderr)
    header = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
              f"command: {command_line(MODULE, argv)}; versions: {json.dumps(versions())}")
    report = "\n\n".join([header, "## Per set", _table(rows), "## Mean over sets", _summary(rows)])
    print(report)
    stamp = timestamp()
    (out_dir / f"model_choice-{stamp}.md").write_text(report + "\n", encoding="utf-8")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), out_dir / f"model_choice-{stamp}.parquet")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
