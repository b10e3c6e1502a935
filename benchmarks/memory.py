"""Memory stays flat with video length: peak RSS of the end-to-end job on a short and a long clip.

    python -m benchmarks.memory [--short 10 --long 60 --width 320 --height 180 --scale 4]

Each clip runs the whole job (probe, chunks, upscale, encode, report, through Dagster) in its own child process,
so each peak RSS (``ru_maxrss``) is that job's alone; a sampler thread also records the RSS over time. The result
is the long clip's peak RSS relative to the short clip's (the target is within 10%). Prints a Markdown table with
the machine, the command and the versions, and writes it (and JSON) under ``benchmarks/results/``. Not a test:
nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import RESULTS, command_line, maxrss_mib, versions, vm_hwm_mib


def _rss_mib() -> float:
    """Current resident set size of this process (``VmRSS``), from /proc; 0 without /proc."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _peak_rss_mib() -> float:
    """Peak RSS of this process alone: VmHWM (ru_maxrss can carry the parent's peak over fork + exec)."""
    return vm_hwm_mib() or maxrss_mib()


def _worker(args: argparse.Namespace) -> dict:
    """One clip, one job, in this (child) process; returns its figures."""
    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.resources.config import ChunkPlanConfig, UpscaleConfig
    from orchestration.resources.workspace import Workspace
    from stages.quality.samples import make_sample_clip

    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - started, _rss_mib()))
            stop.wait(0.5)

    with tempfile.TemporaryDirectory(prefix="vup-mem-") as tmp:
        tmp_path = Path(tmp)
        clip = make_sample_clip(tmp_path / "clip.mp4", width=args.width, height=args.height, seconds=args.seconds,
                                fps=args.fps, audio=True)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        job_started = time.perf_counter()
        outcome = run_enhance(Workspace(tmp_path / "workspace"), EnhanceRequest(
            input=clip, output=tmp_path / "out.mp4", chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds),
            upscale=UpscaleConfig(model=args.model, scale=args.scale)))
        seconds = time.perf_counter() - job_started
        stop.set()
        sampler.join()
        if not outcome.success:
            raise SystemExit(f"memory benchmark: the run failed: {outcome.error}")
        frames = outcome.report["output"]["frames"]
    quarters = []
    for q in (0.25, 0.5, 0.75, 1.0):
        upto = [rss for t, rss in samples if t <= q * samples[-1][0]] or [samples[0][1]]
        quarters.append(round(max(upto), 1))
    return {"seconds_of_video": args.seconds, "frames": frames, "job_s": round(seconds, 1),
            "peak_rss_mib": round(_peak_rss_mib(), 1),
            "rss_by_quarter_mib": quarters}


def _run_child(args: argparse.Namespace, seconds: float) -> dict:
    command = [sys.executable, "-m", "benchmarks.memory", "--worker", "--seconds", str(seconds),
               "--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps),
               "--scale", str(args.scale), "--model", args.model, "--chunk-seconds", str(args.chunk_seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memory benchmark: the {seconds} s run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def to_markdown(result: dict) -> str:
    rows = [("machine", result["machine"]), ("clip", result["clip"]),
            ("command", f"`{result['command']}`"), ("versions", ", ".join(f"{k} {v}" for k, v in
                                                                         result["versions"].items()))]
    text = "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n\n"
    text += "| video | frames | job time | peak RSS | RSS max by quarter of the run |\n|---|---|---|---|---|\n"
    for run in result["runs"]:
        text += (f"| {run['seconds_of_video']:g} s | {run['frames']} | {run['job_s']} s | {run['peak_rss_mib']} MiB | "
                 f"{' / '.join(str(q) for q in run['rss_by_quarter_mib'])} MiB |\n")
    text += (f"\nLong clip's peak RSS / short clip's: **{result['ratio']:.3f}** "
             f"({'within' if abs(result['ratio'] - 1) <= 0.10 else 'outside'} the 10% target).\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=float, default=10.0, help="seconds of the short clip")
    parser.add_argument("--long", type=float, default=60.0, help="seconds of the long clip")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    runs = [_run_child(args, args.short), _run_child(args, args.long)]
    from stages.device import cpu_name

    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": command_line("benchmarks.memory", list(argv or sys.argv[1:])),
        "machine": f"{cpu_name()}, {platform.machine()}",
        "clip": f"{args.width}x{args.height} at {args.fps} fps, x{args.scale} with {args.model}, "
                f"chunks of {args.chunk_seconds:g} s",
        "versions": versions(("torch", "av", "dagster"), ffmpeg=False),
        "runs": runs,
        "ratio": runs[1]["peak_rss_mib"] / runs[0]["peak_rss_mib"],
    }
    text = to_markdown(result)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = result["date"].replace(":", "").replace("-", "")
    (RESULTS / f"memory-{stamp}.md").write_text(text, encoding="utf-8")
    (RESULTS / f"memory-{stamp}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
