"""Throughput benchmark: model-only and end-to-end fps, peak RSS, device and precision.

    python -m benchmarks.throughput [--width 480 --height 270 --frames 24 --model realesr-animevideov3]

Prints a Markdown table with the machine, the command and the versions; also writes it (and JSON) under
``benchmarks/results/``. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _versions() -> dict[str, str]:
    import av
    import dagster
    import numpy
    import spandrel
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "spandrel": spandrel.__version__,
            "av": av.__version__, "dagster": dagster.__version__, "numpy": numpy.__version__}


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (decode, model, encode and Dagster all run in it)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict:
    import torch

    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.resources.config import ChunkPlanConfig, UpscaleConfig
    from orchestration.resources.workspace import Workspace
    from stages.device import choose_device, cpu_name
    from stages.media.chunking import ChunkSpec, extract_chunk
    from stages.media.chunkio import read_frames
    from stages.media.probe import probe_video
    from stages.models.store import ModelStore
    from stages.ops.upscale.engine import Upscaler, plan_scale
    from stages.ops.upscale.selection import select_model
    from stages.quality.samples import make_sample_clip

    fps = 24
    with tempfile.TemporaryDirectory(prefix="vup-bench-") as tmp:
        tmp_path = Path(tmp)
        clip = make_sample_clip(tmp_path / "bench.mp4", width=args.width, height=args.height,
                                seconds=args.frames / fps, fps=fps, audio=True)
        info = probe_video(clip)
        spec = ChunkSpec(0, 0, info.frame_count, info.start_pts, None)
        extract_chunk(clip, info, spec, tmp_path / "frames.mkv")
        frames = list(read_frames(tmp_path / "frames.mkv"))

        choice = choose_device(args.device, args.precision)
        selection = select_model(ModelStore(progress=True), args.model, args.scale)
        upscaler = Upscaler(selection.load().descriptor, choice, tile=args.tile, batch=args.batch)
        steps = plan_scale(args.scale, selection.model_scale)
        upscaler.upscale(frames[:1], steps)  # warm-up (allocations, oneDNN/cuDNN kernel choice)
        if choice.kind == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        batch = upscaler.batch
        for i in range(0, len(frames), batch):
            out = upscaler.upscale(frames[i:i + batch], steps)
        if choice.kind == "cuda":
            torch.cuda.synchronize()
        model_seconds = time.perf_counter() - started
        out_h, out_w = out[0].shape[:2]

        workspace = Workspace(tmp_path / "workspace")
        request = EnhanceRequest(
            input=clip, output=tmp_path / "out.mp4",
            chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds),
            upscale=UpscaleConfig(model=args.model, scale=args.scale, tile=args.tile, batch=args.batch),
            device=args.device, precision=args.precision,
        )
        started = time.perf_counter()
        outcome = run_enhance(workspace, request)
        e2e_seconds = time.perf_counter() - started
        if not outcome.success:
            raise SystemExit(f"benchmark: the end-to-end run failed: {outcome.error}")
        timings = outcome.report["timings_s"]
        return {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.throughput", *sys.argv[1:]]),
            "machine": f"{cpu_name()}, {choice.threads} threads, {platform.machine()}",
            "device": choice.device,
            "device_name": choice.name,
            "precision": upscaler.precision,
            "model": selection.model_id,
            "plan": " -> ".join(("resize" if s.resize else "model") + f" x{s.factor}" for s in steps),
            "input": f"{info.width}x{info.height}",
            "output": f"{out_w}x{out_h}",
            "frames": len(frames),
            "model_only_fps": len(frames) / model_seconds,
            "model_only_s_per_frame": model_seconds / len(frames),
            "end_to_end_fps": len(frames) / e2e_seconds,
            "end_to_end_s": e2e_seconds,
            "stage_s": {k: round(float(v), 2) for k, v in timings.items()},
            "peak_rss_mib": round(_peak_rss_mib(), 1),
            "versions": _versions(),
            "frame_rate": str(Fraction(fps)),
        }


def to_markdown(r: dict) -> str:
    rows = [
        ("machine", r["machine"]), ("device", f"{r['device']} ({r['device_name']})"), ("precision", r["precision"]),
        ("model", f"{r['model']} ({r['plan']})"), ("frames", f"{r['frames']} x {r['input']} -> {r['output']}"),
        ("model only", f"{r['model_only_fps']:.3f} fps ({r['model_only_s_per_frame']:.3f} s/frame)"),
        ("end to end", f"{r['end_to_end_fps']:.3f} fps ({r['end_to_end_s']:.1f} s: decode + infer + encode + report, "
                       "through Dagster)"),
        ("stages", ", ".join(f"{k} {v} s" for k, v in r["stage_s"].items())),
        ("peak RSS", f"{r['peak_rss_mib']} MiB (the whole process: model-only pass, then the Dagster run)"),
        ("versions", ", ".join(f"{k} {v}" for k, v in r["versions"].items())),
        ("command", f"`{r['command']}`"), ("date", r["date"]),
    ]
    return "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = run(args)
    text = to_markdown(result)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = result["date"].replace(":", "").replace("-", "")
    (RESULTS / f"throughput-{stamp}.md").write_text(text, encoding="utf-8")
    (RESULTS / f"throughput-{stamp}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
