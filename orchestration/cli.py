"""`vup`: the command line. Runs go through the embedded Dagster instance, so they show in the Dagster UI."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from stages.errors import StageError

log = logging.getLogger("vup")


def _workspace(args: argparse.Namespace):
    from orchestration.workspace import Workspace, default_workspace, prepare_dagster_home

    root = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    workspace = Workspace(root.resolve()).ensure()
    os.environ["VUP_WORKSPACE"] = str(workspace.root)
    prepare_dagster_home(workspace)
    return workspace


class _Progress:
    """One tqdm bar per stage, fed by the run's per-chunk events; a stage's bar opens when the one before it
    is full, so its clock starts when the stage does."""

    STAGES = ("frames", "upscale", "encode")
    LABELS = {"frames": "decode ", "upscale": "upscale", "encode": "encode "}

    def __init__(self, total_frames: int, enabled: bool) -> None:
        self.total = total_frames
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def _bar(self, stage: str):
        from tqdm import tqdm

        if stage not in self.bars:
            for other in self.bars.values():
                other.close()
            self.bars[stage] = tqdm(total=self.total, desc=self.LABELS.get(stage, stage), unit="frame", leave=True)
        return self.bars[stage]

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        stage = str(event.get("stage"))
        bar = self._bar(stage)
        bar.update(int(event.get("frames", 0)))
        if event.get("reused"):
            bar.set_postfix_str("cached")
        if bar.n >= self.total and stage in self.STAGES[:-1]:
            self._bar(self.STAGES[self.STAGES.index(stage) + 1])

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_enhance(args: argparse.Namespace) -> int:
    from orchestration.config import ChunkPlanConfig, EncodeConfig, UpscaleConfig
    from orchestration.runner import EnhanceRequest, run_enhance, validate_request
    from stages.model_selection import select_model
    from stages.models.store import ModelStore

    workspace = _workspace(args)
    request = EnhanceRequest(
        input=Path(args.input).expanduser(),
        output=Path(args.output).expanduser() if args.output else None,
        chunk=ChunkPlanConfig(chunk_seconds=args.chunk_seconds, scene_detection=not args.no_scene_detection),
        upscale=UpscaleConfig(
            model=args.model, model_path=args.model_path, scale=args.scale, tile=args.tile,
            tile_overlap=args.tile_overlap, batch=args.batch,
        ),
        encode=EncodeConfig(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt),
        device=args.device,
        precision=args.precision,
    )
    info = validate_request(request)
    # Fetch (convert or download) the weights here, with a progress bar, before the run starts.
    selection = select_model(ModelStore(progress=not args.quiet), args.model, args.scale, args.model_path)
    if selection.note and not args.quiet:
        print(selection.note, file=sys.stderr)
    out_w, out_h = info.width * args.scale, info.height * args.scale
    if not args.quiet:
        print(
            f"{request.input.name}: {info.width}x{info.height} {info.avg_fps:.3f} fps, {info.frame_count} frames "
            f"-> {out_w}x{out_h} with {selection.model_id} ({selection.source})",
            file=sys.stderr,
        )
    progress = _Progress(info.frame_count, enabled=not args.quiet)
    try:
        outcome = run_enhance(workspace, request, on_event=progress, log_level="DEBUG" if args.verbose else "WARNING")
    finally:
        progress.close()
    if not outcome.success:
        print(f"error: {outcome.error}", file=sys.stderr)
        print(f"(run {outcome.run_id} in {workspace.dagster_home}; `vup dev` shows its logs)", file=sys.stderr)
        return 1
    report = outcome.report or {}
    flicker = report.get("flicker", {})
    files = report.get("files", {})
    print(f"output:   {outcome.output}")
    print(f"          {report['output']['width']}x{report['output']['height']}, {report['output']['frames']} frames, "
          f"{report['output']['duration_s']:.3f} s, {report['output']['codec']}")
    print(f"model:    {report.get('model')} ({report.get('plan')}) on {report.get('device')} {report.get('precision')}")
    if flicker.get("output") is not None:
        ratio = flicker.get("ratio")
        print(f"flicker:  {flicker['output']:.4f} (lanczos {flicker['lanczos_baseline']:.4f}, ratio "
              f"{ratio:.3f})" if ratio is not None else f"flicker:  {flicker['output']:.4f}")
    print(f"report:   {Path(files.get('summary_json', '')).parent}")
    print(f"dagster:  {workspace.dagster_home} (run {outcome.run_id}, partition {outcome.partition_key}; "
          "`vup dev` opens the UI)")
    print(f"time:     {outcome.seconds:.1f} s")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from stages.probe import probe_video

    info = probe_video(Path(args.input).expanduser())
    data = info.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for name, value in data.items():
        if name in ("audio_streams", "subtitle_streams"):
            print(f"{name}:")
            for stream in value:
                print("  " + ", ".join(f"{k}={v}" for k, v in stream.items()))
        else:
            print(f"{name}: {value}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from stages.models.store import ModelStore

    rows = ModelStore(allow_download=False, progress=False).list()
    if args.json:
        print(json.dumps([
            {"id": s.entry.id, "scale": s.entry.scale, "architecture": s.entry.architecture,
             "license": s.entry.license, "available": s.available, "source": s.source,
             "path": str(s.path) if s.path else None, "reason": s.reason, "description": s.entry.description}
            for s in rows
        ], indent=2))
        return 0
    print(f"{'id':30} {'scale':>5} {'architecture':16} {'licence':13} {'weights':12} description")
    for s in rows:
        where = s.source if s.available else "download"
        print(f"{s.entry.id:30} {'x' + str(s.entry.scale):>5} {s.entry.architecture[:16]:16} "
              f"{s.entry.license[:13]:13} {where or '-':12} {s.entry.description}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    env = {**os.environ, "VUP_WORKSPACE": str(workspace.root), "DAGSTER_HOME": str(workspace.dagster_home)}
    command = [sys.executable, "-m", "dagster", "dev", "-m", "orchestration.definitions",
               "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {workspace.dagster_home}); Ctrl-C stops it",
          file=sys.stderr)
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C: let `dagster dev` stop its webserver, daemon and code server, then make sure it is gone.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from stages.samples import make_sample_clip

    workspace = _workspace(args)
    folder = workspace.root / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "sample.mp4"
    make_sample_clip(clip, width=args.width, height=args.height, seconds=args.seconds, fps=24, audio=True)
    print(f"sample:   {clip} ({args.width}x{args.height}, {args.seconds} s, 24 fps, with audio)")
    args.input = str(clip)
    args.output = str(folder / f"sample_x{args.scale}.mp4")
    return cmd_enhance(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks import throughput

    name, *rest = args.bench_args or ["throughput"]
    if name != "throughput":
        print(f"error: bench: unknown benchmark {name!r}; available: throughput", file=sys.stderr)
        return 2
    return throughput.main(rest)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="state folder (default: $VUP_WORKSPACE or the per-user data folder)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def _add_enhance_options(parser: argparse.ArgumentParser) -> None:
    from stages.models.catalog import DEFAULT_UPSCALE_MODEL

    parser.add_argument("--model", default=DEFAULT_UPSCALE_MODEL, help="catalog id (see `vup models list`)")
    parser.add_argument("--model-path", help="any .pth/.safetensors model spandrel recognises (wins over --model)")
    parser.add_argument("--scale", type=int, default=4, help="2, 4 or 8 (default 4)")
    parser.add_argument("--tile", type=int, default=0, help="input tile size in pixels, 0 = automatic")
    parser.add_argument("--tile-overlap", type=int, default=16, help="tile overlap in input pixels (default 16)")
    parser.add_argument("--batch", type=int, default=0, help="frames per model call, 0 = automatic")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps, xpu or cpu")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--codec", default="h264", help="h264 or h265")
    parser.add_argument("--crf", type=int, default=18, help="quality, 0 (lossless) to 51 (default 18)")
    parser.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    parser.add_argument("--pix-fmt", default=None, help="output pixel format (default yuv420p, 10-bit for 10-bit input)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length in seconds (default 10)")
    parser.add_argument("--no-scene-detection", action="store_true", help="do not move chunk cuts to scene changes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vup", description="Video Upscaler Pro: AI video enhancement on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)

    enhance = sub.add_parser("enhance", help="upscale a video")
    enhance.add_argument("input", help="source video")
    enhance.add_argument("-o", "--output", help="output file (.mp4, .mkv, .mov); default under the workspace")
    _add_enhance_options(enhance)
    _add_common(enhance)
    enhance.set_defaults(func=cmd_enhance)

    probe = sub.add_parser("probe", help="show what a video contains")
    probe.add_argument("input")
    probe.add_argument("--json", action="store_true")
    _add_common(probe)
    probe.set_defaults(func=cmd_probe)

    models = sub.add_parser("models", help="model catalog")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_list = models_sub.add_parser("list", help="list the catalog and where each model's weights are")
    models_list.add_argument("--json", action="store_true")
    _add_common(models_list)
    models_list.set_defaults(func=cmd_models_list)

    dev = sub.add_parser("dev", help="start the Dagster webserver and daemon for this workspace")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dev.add_argument("--port", type=int, default=3000)
    _add_common(dev)
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="make a sample clip and enhance it end to end")
    demo.add_argument("--width", type=int, default=320)
    demo.add_argument("--height", type=int, default=180)
    demo.add_argument("--seconds", type=float, default=2.0)
    _add_enhance_options(demo)
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks (print figures)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(func=cmd_bench, workspace=None, quiet=False, verbose=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("DAGSTER_CLI_LOG_LEVEL", "WARNING")
        logging.getLogger("dagster").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept and reused by the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
