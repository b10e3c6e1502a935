"""How good the page's ETA is: replay a real run's per-chunk events through the page's estimator.

    python -m benchmarks.eta [--runs 320x180:20:none,480x270:12:flow] [--chunk-seconds 2 --scale 4]

Each clip runs end to end through Dagster in this process (generated clips, the default model, one fresh
workspace and instance for all). Afterwards, for every per-chunk event a run logged,
``orchestration.launch.eta.estimate_progress`` is given the events up to that one, as the page would have seen them,
and its "seconds left" is compared with the time the run really took from there to its last event: once with the
fixed priors, and, from the second clip on, with priors learned from the clips before (what the page uses once
this machine has finished runs). Prints Markdown tables (stage, chunk, predicted and actual seconds left, error)
with the machine, the command and the versions, and the largest error once the first upscale chunks are done;
writes them under ``benchmarks/results/``. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, command_line, versions


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eta", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="320x180:20:none,480x270:12:flow",
                        help="clips as WIDTHxHEIGHT:SECONDS:TEMPORAL, comma-separated, run in this order in one "
                             "instance (default: 320x180:20:none,480x270:12:flow)")
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--chunk-seconds", type=float, default=2.0)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--settle-after", type=int, default=2,
                        help="upscale chunks after which the error is summarised (default 2)")
    return parser.parse_args(argv)


def _replay(events: list[tuple[dict, float]], stages: list[str], ratio: float, priors: dict[str, float] | None,
            settle_after: int) -> tuple[list[dict], float | None]:
    """The estimator's answer after each event vs the real time left; and the worst |error| once settled."""
    from orchestration.launch.eta import estimate_progress

    end = events[-1][1]
    rows = []
    upscale_done = 0
    for i, (event, stamp) in enumerate(events):
        upscale_done += event["stage"] == "upscale"
        fraction, _stage, eta = estimate_progress([e for e, _ in events[: i + 1]], stages, ratio, priors)
        actual = end - stamp
        error = (eta - actual) / actual if eta is not None and actual > 0.5 else None
        rows.append({"stage": event["stage"], "chunk": event["chunk"] + 1, "chunks": event["chunks"],
                     "done_pct": round(100 * fraction, 1), "eta_s": None if eta is None else round(eta, 2),
                     "actual_s": round(actual, 2), "error_pct": None if error is None else round(100 * error, 1),
                     "settled": upscale_done >= settle_after})
    settled = [abs(r["error_pct"]) for r in rows if r["settled"] and r["error_pct"] is not None]
    return rows, (max(settled) if settled else None)


def _table(rows: list[dict]) -> list[str]:
    lines = ["| stage | chunk | done | predicted left (s) | actual left (s) | error |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['stage']} | {r['chunk']}/{r['chunks']} | {r['done_pct']:.0f}% | "
        f"{'estimating' if r['eta_s'] is None else r['eta_s']} | {r['actual_s']} | "
        f"{'' if r['error_pct'] is None else str(r['error_pct']) + '%'} |" for r in rows if r["stage"] != "frames"
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    from dagster import DagsterInstance

    from orchestration.launch.eta import _stages_of, learn_priors
    from orchestration.launch.events import progress_events
    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.resources.config import (
        ChunkPlanConfig,
        TemporalConfig,
        UpscaleConfig,
    )
    from orchestration.resources.workspace import Workspace
    from stages.quality.samples import make_sample_clip

    specs = []
    for item in args.runs.split(","):
        size, seconds, temporal = item.split(":")
        width, height = (int(v) for v in size.split("x"))
        specs.append((width, height, float(seconds), temporal))
    results = []
    history = []
    lines = [
        f"# ETA accuracy ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), {platform.platform()}",
        f"- command: `{command_line('benchmarks.eta', argv)}`",
        f"- versions: {versions()}",
        (f"- every clip at {args.fps:g} fps, chunks of {args.chunk_seconds:g} s, x{args.scale}, default model, CPU; "
        "error = (predicted - actual) / actual seconds left"),
    ]
    with tempfile.TemporaryDirectory(prefix="vup-eta-") as tmp:
        root = Path(tmp) / "ws"
        os.environ["DAGSTER_HOME"] = str(root / "dagster")
        for n, (width, height, seconds, temporal) in enumerate(specs):
            clip = make_sample_clip(Path(tmp) / f"clip{n}.mp4", width=width, height=height, seconds=seconds,
                                    fps=args.fps, audio=False)
            request = EnhanceRequest(
                input=clip, output=Path(tmp) / f"out{n}.mp4",
                chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds, scene_detection=False),
                upscale=UpscaleConfig(scale=args.scale), temporal=TemporalConfig(method=temporal))
            outcome = run_enhance(Workspace(root), request)
            if not outcome.success:
                print(f"error: the run failed: {outcome.error}", file=sys.stderr)
                return 1
            instance = DagsterInstance.get()
            stages, ratio, _ = _stages_of(instance.get_run_by_id(outcome.run_id).run_config)
            events = progress_events(instance, outcome.run_id)
            title = f"{width}x{height}, {seconds:g} s, temporal {temporal} (stages {', '.join(stages)})"
            variants = [("fixed priors", None)]
            if history:
                variants.append((f"priors learned from the {len(history)} run(s) before", learn_priors(history)))
            for name, priors in variants:
                rows, worst = _replay(events, stages, ratio, priors, args.settle_after)
                summary = f"{worst:.1f}%" if worst is not None else "n/a"
                results.append({"clip": title, "priors": name, "worst_settled_pct": worst, "rows": rows})
                lines += ["", f"## {title}, {name}", "",
                          f"Largest |error| after {args.settle_after} upscale chunks: **{summary}**", "",
                          *_table(rows)]
            history.append(([e for e, _ in events], stages, ratio))
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"eta-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"eta-{stamp}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
