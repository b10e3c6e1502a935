"""Fault trials: `vup enhance` killed with SIGKILL at random points across every stage, then run again.

    python -m benchmarks.faults [--trials 20] [--seed 1] [--chunk-seconds 0.25]     (also: vup bench faults)
    python -m benchmarks.faults --disk       # the disk-space estimate against the peak use of real runs

Kill trials. One uninterrupted run gives the reference output's sha256. Each trial then starts `vup enhance` as a
real subprocess in its own process group, on a fresh workspace, and kills the whole group with SIGKILL at a
point drawn with a seeded RNG: a stage (decode, upscale, interpolate, coherence, encode, report, in turn from a
shuffled order so every stage gets its share), a chunk of it, and a delay of up to 90% of that stage's measured
seconds per chunk. The harness sees the run's progress from outside, as files appear: a chunk's manifest in
``chunks/<stage>/``, the encode's temporary folder, the encode's ``result.json``. After the kill it checks every
manifest in the chunk store (size and sha256), counts orphan chunk files and temporary files, and flips one byte
in the middle of one committed chunk (a bad checksum the next run must catch). Then it runs the same command
again to the end and records: exit status, whether the output's sha256 equals the reference's, how many chunks
the second run reused and how many it computed (from its per-chunk progress events), whether the corrupted
chunk was redone, whether every manifest validates afterwards, the temporary files left, and whether the killed
run was marked ended and its `gpu` pool slot freed (orchestration.sensors.watchdog.reclaim_abandoned_runs).

The clip: a photo filmed by a moving camera, 64x48, 1.5 s at 12 fps with audio (18 frames), x4, interpolated x2
(optical flow), flow temporal coherence, x264 veryfast, chunks of 0.25 s (6 chunks per stage): every stage does
work and a run takes a few seconds after the start-up. Not a test: nothing is asserted here
(tests/reliability/test_faults.py asserts on the same trials).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.common import REPO, RESULTS, command_line, versions

# kill stages in pipeline order: (name, folder of committed chunks or None)
STAGES = ("frames", "upscale", "interpolate", "cohere", "encode", "report")
CHUNK_STAGES = ("frames", "upscale", "interpolate", "cohere")  # store folders are the ops' names
RUN_TIMEOUT_S = 300.0
_POLL_S = 0.01


@dataclass(frozen=True)
class ClipSpec:
    width: int = 64
    height: int = 48
    seconds: float = 1.5
    fps: int = 12
    chunk_seconds: float = 0.25


def enhance_args(clip: Path, output: Path, spec: ClipSpec) -> list[str]:
    """The `vup enhance` arguments of every run (reference and trials): all stages do work."""
    return ["enhance", str(clip), "-o", str(output), "--chunk-seconds", f"{spec.chunk_seconds:g}", "--scale", "4",
            "--interpolate", "2", "--interp-method", "flow", "--temporal", "flow", "--preset", "veryfast",
            "--device", "cpu", "-q"]


def make_clip(folder: Path, spec: ClipSpec) -> Path:
    from stages.quality.samples import make_sample_clip

    return make_sample_clip(folder / "clip.mp4", width=spec.width, height=spec.height, seconds=spec.seconds,
                            fps=spec.fps, audio=True)


def run_env(workspace: Path) -> dict[str, str]:
    env = {**os.environ, "VUP_WORKSPACE": str(workspace), "DAGSTER_HOME": str(workspace / "dagster"),
           "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("VUP_SLOW_TIER", None)
    return env


def start(args: list[str], workspace: Path, log: Path) -> subprocess.Popen:
    """`vup ARGS` as a subprocess in its own process group (so SIGKILL reaches ffmpeg children too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "orchestration.cli.commands", *args, "--workspace", str(workspace)],
                                cwd=REPO, env=run_env(workspace), stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        handle.close()


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        return -9


def sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ the chunk store


@dataclass
class StoreScan:
    """The chunk store as found: valid and bad manifests, chunk files without one, temporary files."""

    valid: dict[str, list[Path]] = field(default_factory=dict)  # stage folder -> manifests that validate
    bad: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)

    @property
    def committed(self) -> int:
        return sum(len(v) for v in self.valid.values())


def scan_store(chunks: Path) -> StoreScan:
    """Check every manifest under ``chunks`` (size and sha256 of its chunk file) without changing anything."""
    scan = StoreScan()
    for folder in sorted(p for p in chunks.glob("*") if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        for name in sorted(names):
            path = folder / name
            if name.startswith("."):
                scan.temps.append(f"{folder.name}/{name}")
            elif name.endswith(".json"):
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    media = folder / f"{path.stem}.nut"
                    ok = (record["key"] == path.stem and media.is_file()
                          and media.stat().st_size == record["size_bytes"] and sha256(media) == record["sha256"])
                except (OSError, ValueError, KeyError):
                    ok = False
                if ok:
                    scan.valid.setdefault(folder.name, []).append(path)
                else:
                    scan.bad.append(f"{folder.name}/{name}")
            elif name.endswith(".nut") and f"{name[:-4]}.json" not in names:
                scan.orphans.append(f"{folder.name}/{name}")
    return scan


def corrupt_one(scan: StoreScan, rng: random.Random) -> tuple[str, str, str] | None:
    """Flip one byte in the middle of a random committed chunk (size unchanged); (folder, key, its sha256)."""
    candidates = [(folder, path) for folder, paths in sorted(scan.valid.items()) for path in paths]
    if not candidates:
        return None
    folder, manifest = rng.choice(candidates)
    media = manifest.with_suffix(".nut")
    data = bytearray(media.read_bytes())
    data[len(data) // 2] ^= 0xFF
    media.write_bytes(bytes(data))
    return folder, manifest.stem, json.loads(manifest.read_text(encoding="utf-8"))["sha256"]


# ------------------------------------------------------------------------------------------ progress seen


def _manifests(workspace: Path, stage: str) -> int | None:
    folder = workspace / "chunks" / stage
    try:
        return sum(1 for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    except OSError:
        return None


def _encode_started(workspace: Path) -> bool:
    return any((workspace / "outputs" / ".cache").glob("*/.video.*.part"))


def _encode_done(workspace: Path) -> bool:
    return any((workspace / "outputs" / ".cache").glob("*/result.json"))


def observed_point(workspace: Path) -> tuple[str, int | None]:
    """The stage under way as the files show it (the last one that has started), and its committed chunks."""
    if _encode_done(workspace):
        return "report", None
    if _encode_started(workspace):
        return "encode", None
    for stage in reversed(CHUNK_STAGES):
        count = _manifests(workspace, stage)
        if count is not None:
            return stage, count
    return "startup", None


def _reached(workspace: Path, stage: str, chunk: int) -> bool:
    if stage == "encode":  # the encode's folder lives for a moment: a late look finds the report under way
        return _encode_started(workspace) or _encode_done(workspace)
    if stage == "report":
        return _encode_done(workspace)
    count = _manifests(workspace, stage)
    return count is not None and count >= chunk


# ------------------------------------------------------------------------------------------ Dagster records


def _instance(workspace: Path):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(workspace / "dagster"))


def run_records(workspace: Path) -> list[dict]:
    """Every run of the workspace's instance, oldest first: id, status, progress events, slots held."""
    from orchestration.launch.events import progress_events

    instance = _instance(workspace)
    try:
        held = instance.event_log_storage.get_concurrency_run_ids()
        runs = []
        for run in reversed(instance.get_runs()):
            events = progress_events(instance, run.run_id)
            runs.append({"run_id": run.run_id, "status": run.status.value, "events": events,
                         "holds_slot": run.run_id in held})
        return runs
    finally:
        instance.dispose()


def stage_seconds(events: list[tuple[dict, float]], started: float) -> dict[str, float]:
    """Seconds per chunk of each stage in a run (the median: the first upscale chunk also loads the model, from its
    progress events), and the start-up before them."""
    per: dict[str, list[float]] = {}
    for event, _stamp in events:
        per.setdefault(str(event["stage"]), []).append(float(event.get("seconds", 0.0)))
    result = {stage: max(0.05, sorted(v)[len(v) // 2]) for stage, v in per.items()}
    if events:
        result["startup"] = max(0.1, events[0][1] - started)
    return result


# ------------------------------------------------------------------------------------------ trials


@dataclass
class Reference:
    sha256: str
    seconds: float
    chunks: int
    stage_seconds: dict[str, float]


def reference_run(clip: Path, folder: Path, spec: ClipSpec) -> Reference:
    """One uninterrupted run on its own workspace: the output's sha256 and each stage's seconds per chunk."""
    workspace, output = folder / "ws", folder / "reference.mp4"
    started = time.time()
    process = start(enhance_args(clip, output, spec), workspace, folder / "reference.log")
    code = finish(process)
    digest = sha256(output)
    if code != 0 or digest is None:
        raise RuntimeError(f"faults: the reference run failed (exit {code}); see {folder / 'reference.log'}")
    runs = run_records(workspace)
    events = runs[-1]["events"]
    chunks = max((int(e["chunks"]) for e, _ in events if e["stage"] == "upscale"), default=1)
    return Reference(digest, time.time() - started, chunks, stage_seconds(events, started))


@dataclass
class Trial:
    number: int
    target: str
    killed: bool
    stage: str
    chunk: str
    seconds: float
    bad_after_kill: int
    orphans_after_kill: int
    temps_after_kill: int
    corrupted: str
    resumed_ok: bool
    identical: bool
    reused: int
    computed: int
    corrupt_redone: bool | None
    bad_after_resume: int
    temps_after_resume: int
    killed_run_ended: bool
    slots_free: bool
    resume_seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return (self.resumed_ok and self.identical and self.bad_after_kill == 0 and self.bad_after_resume == 0
                and self.corrupt_redone is not False and self.killed_run_ended and self.slots_free
                and self.temps_after_resume == 0)


def plan_kills(count: int, rng: random.Random, chunks: int, timings: dict[str, float],
               stages: tuple[str, ...] = STAGES) -> list[tuple[str, int, float]]:
    """(stage, chunk, delay) for each trial: ``stages`` in turn from a shuffled order, chunk and delay at random."""
    order = list(stages)
    plan = []
    while len(plan) < count:
        rng.shuffle(order)
        for stage in order:
            chunk = rng.randrange(chunks) if stage in CHUNK_STAGES else 0
            plan.append((stage, chunk, rng.uniform(0.0, 0.9 * timings.get(stage, 0.5))))
    return plan[:count]


def run_trial(number: int, clip: Path, folder: Path, spec: ClipSpec, reference: Reference,
              kill: tuple[str, int, float], rng: random.Random) -> Trial:
    """Kill a run at ``kill`` = (stage, chunk, delay), check the store, corrupt a chunk, run again, compare."""
    stage, chunk, delay = kill
    workspace, output = folder / "ws", folder / "out.mp4"
    args = enhance_args(clip, output, spec)
    log = folder / "trial.log"
    target = f"{stage} {chunk + 1}/{reference.chunks} +{delay:.2f} s" if stage in CHUNK_STAGES \
        else f"{stage} +{delay:.2f} s"
    started = time.perf_counter()
    process = start(args, workspace, log)
    killed = False
    while process.poll() is None and time.perf_counter() - started < RUN_TIMEOUT_S:
        if _reached(workspace, stage, chunk):
            time.sleep(delay)
            if process.poll() is None:
                seen_stage, seen_chunk = observed_point(workspace)
                kill_group(process)
                killed = True
            break
        time.sleep(_POLL_S)
    seconds = time.perf_counter() - started
    if not killed:
        finish(process)
        seen_stage, seen_chunk = "finished", None
    after_kill = scan_store(workspace / "chunks")
    corrupted = corrupt_one(after_kill, rng) if killed else None
    resume_started = time.perf_counter()
    code = finish(start(args, workspace, log))
    resume_seconds = time.perf_counter() - resume_started
    after = scan_store(workspace / "chunks")
    runs = run_records(workspace)
    last = runs[-1]["events"] if runs else []
    reused = sum(1 for e, _ in last if e.get("reused") and e["stage"] in CHUNK_STAGES)
    computed = sum(1 for e, _ in last if not e.get("reused") and e["stage"] in CHUNK_STAGES)
    redone = None
    if corrupted is not None:
        folder_name, key, _sha = corrupted
        manifest = workspace / "chunks" / folder_name / f"{key}.json"
        media = manifest.with_suffix(".nut")
        redone = manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8"))["sha256"] == sha256(media)
    ended = all(r["status"] not in ("STARTED", "STARTING", "NOT_STARTED", "CANCELING") for r in runs)
    digest = sha256(output)
    error = ""
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        error = " | ".join(tail)
    return Trial(
        number=number, target=target, killed=killed, stage=seen_stage,
        chunk="" if seen_chunk is None else f"{seen_chunk} done", seconds=round(seconds, 2),
        bad_after_kill=len(after_kill.bad), orphans_after_kill=len(after_kill.orphans),
        temps_after_kill=len(after_kill.temps),
        corrupted=f"{corrupted[0]}/{corrupted[1][:8]}" if corrupted else "",
        resumed_ok=code == 0, identical=digest == reference.sha256, reused=reused, computed=computed,
        corrupt_redone=redone, bad_after_resume=len(after.bad), temps_after_resume=len(after.temps),
        killed_run_ended=ended, slots_free=not any(r["holds_slot"] for r in runs),
        resume_seconds=round(resume_seconds, 2), error=error,
    )


def run_trials(count: int, seed: int, root: Path, spec: ClipSpec = ClipSpec(), progress=None,
               stages: tuple[str, ...] = STAGES, clip: Path | None = None,
               reference: Reference | None = None) -> tuple[Reference, list[Trial]]:
    """The reference run (unless given, with its ``clip``), then ``count`` kill trials (in ``stages``), each in its
    own folder under ``root``."""
    rng = random.Random(seed)
    if clip is None or reference is None:
        clip = make_clip(root, spec)
        reference = reference_run(clip, root / "reference", spec)
    trials = []
    kills = plan_kills(count, rng, reference.chunks, reference.stage_seconds, stages)
    for number, kill in enumerate(kills, start=1):
        folder = root / f"trial{number:02d}"
        folder.mkdir(parents=True)
        trial = run_trial(number, clip, folder, spec, reference, kill, rng)
        trials.append(trial)
        if progress is not None:
            progress(trial)
        if trial.ok:
            shutil.rmtree(folder, ignore_errors=True)  # keep only what a failed trial left, to look at
    return reference, trials


TABLE_HEADER = ("| # | kill target | killed at (stage, chunks done, s) | bad after kill | orphans / temps after kill "
                "| corrupted on purpose | resumed ok | bit-identical | reused / computed | corrupt redone "
                "| bad / temps after | killed run ended, slot free |")


def table(trials: list[Trial]) -> list[str]:
    lines = [TABLE_HEADER, "|" + "---|" * (TABLE_HEADER.count("|") - 1)]
    for t in trials:
        where = f"{t.stage} {t.chunk} {t.seconds:.1f} s".replace("  ", " ") if t.killed else "not killed (finished)"
        redone = "-" if t.corrupt_redone is None else ("yes" if t.corrupt_redone else "**no**")
        lines.append(
            f"| {t.number} | {t.target} | {where} | {t.bad_after_kill} | {t.orphans_after_kill} / "
            f"{t.temps_after_kill} | {t.corrupted or '-'} | {'yes' if t.resumed_ok else '**no**'} | "
            f"{'yes' if t.identical else '**no**'} | {t.reused} / {t.computed} | {redone} | "
            f"{t.bad_after_resume} / {t.temps_after_resume} | "
            f"{'yes' if t.killed_run_ended else '**no**'}, {'yes' if t.slots_free else '**no**'} |")
    return lines


def summary(trials: list[Trial]) -> list[str]:
    killed = [t for t in trials if t.killed]
    per_stage = {stage: sum(1 for t in killed if t.stage == stage) for stage in ("startup", *STAGES)}
    return [
        f"- trials: {len(trials)}, killed: {len(killed)}; kills per stage (as seen at the kill): "
        + ", ".join(f"{k} {v}" for k, v in per_stage.items()),
        (f"- resumed ok: {sum(t.resumed_ok for t in trials)}/{len(trials)}; bit-identical to the uninterrupted run: "
        f"{sum(t.identical for t in trials)}/{len(trials)}"),
        (f"- bad manifests after a kill: {sum(t.bad_after_kill for t in trials)}; chunk files without manifest: "
        f"{sum(t.orphans_after_kill for t in trials)}; temporary files: {sum(t.temps_after_kill for t in trials)} "
        f"(all removed by the next run: {sum(t.temps_after_resume for t in trials) == 0})"),
        (f"- chunks corrupted on purpose: {sum(bool(t.corrupted) for t in trials)}, redone: "
        f"{sum(bool(t.corrupt_redone) for t in trials)}; reused by the reruns: {sum(t.reused for t in trials)}, "
        f"computed: {sum(t.computed for t in trials)}"),
        (f"- killed runs marked ended and their pool slots freed: "
         f"{sum(t.killed_run_ended and t.slots_free for t in trials)}/{len(trials)}"),
    ]


# ------------------------------------------------------------------------------------------ disk estimate


@dataclass
class DiskCase:
    name: str
    estimate: int
    actual: int
    chunks_estimate: int
    chunks_actual: int
    bytes_per_pixel: float
    seconds: float
    stage_bytes_per_pixel: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.estimate / max(1, self.actual)


def stage_density(chunks: Path) -> dict[str, float]:
    """Bytes per pixel of the stored chunks of each stage (file bytes over width x height x frames)."""
    sizes: dict[str, list[int]] = {}
    for manifest in chunks.glob("*/*.json"):
        record = json.loads(manifest.read_text(encoding="utf-8"))
        pair = sizes.setdefault(manifest.parent.name, [0, 0])
        pair[0] += int(record["size_bytes"])
        pair[1] += int(record["width"]) * int(record["height"]) * int(record["frame_count"])
    return {stage: round(b / p, 2) for stage, (b, p) in sorted(sizes.items()) if p}


class PeakUse:
    """Peak bytes used under ``folders`` while a job runs: ``statvfs`` of a private file system when ``exact``
    (nothing else writes there), else the sum of the files' allocated blocks, polled."""

    def __init__(self, folders: list[Path], exact: bool, interval: float = 0.02) -> None:
        self.folders, self.exact, self.interval = folders, exact, interval
        self.base = self._used()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-use", daemon=True)

    def _used(self) -> int:
        if self.exact:
            usage = shutil.disk_usage(self.folders[0])
            return usage.total - usage.free
        total = 0
        for folder in self.folders:
            for base, _dirs, files in os.walk(folder):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(base, name)).st_blocks * 512
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._used())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._used())

    @property
    def added(self) -> int:
        return self.peak - self.base


@contextlib.contextmanager
def private_disk(folder: Path, size_mb: int):
    """A tmpfs of ``size_mb`` MB mounted at ``folder`` (yields True), or the folder as it is (False) where mounting
    is not allowed (not root, no tmpfs)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                                 capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def disk_case(name: str, clip: Path, root: Path, *, scale: int = 4, interpolate: int | None = 2,
              temporal: str = "flow", chunk_seconds: float = 0.5, size_mb: int = 512) -> DiskCase:
    """Estimate a job's space (orchestration.launch.diskcheck), run it in this process on a fresh workspace, and measure
    the peak bytes it added (on a private tmpfs where mounting is allowed)."""
    from orchestration.launch.diskcheck import estimate_request_space
    from orchestration.launch.request import EnhanceRequest
    from orchestration.launch.runner import run_enhance
    from orchestration.resources.config import (
        ChunkPlanConfig,
        EncodeConfig,
        InterpolateConfig,
        TemporalConfig,
        UpscaleConfig,
    )
    from orchestration.resources.workspace import Workspace
    from stages.media.probe import probe_video

    disk = root / f"disk-{name}"
    with private_disk(disk, size_mb) as exact:
        workspace = Workspace(disk / "ws")
        previous = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(workspace.root / "dagster")
        try:
            request = EnhanceRequest(
                input=clip, output=disk / "out.mp4", chunk=ChunkPlanConfig(chunk_seconds=chunk_seconds),
                upscale=UpscaleConfig(scale=scale), encode=EncodeConfig(preset="veryfast"),
                interpolate=InterpolateConfig(method="flow", factor=interpolate) if interpolate
                else InterpolateConfig(), temporal=TemporalConfig(method=temporal), device="cpu")
            info = probe_video(clip)
            estimate = estimate_request_space(request, info, workspace)
            started = time.perf_counter()
            with PeakUse([disk], exact) as peak:
                outcome = run_enhance(workspace, request)
            if not outcome.success:
                raise RuntimeError(f"faults: disk case {name} failed: {outcome.error}")
            chunks_actual = sum(p.stat().st_size for p in workspace.chunks.glob("*/*.nut"))
            return DiskCase(name, estimate.workspace_bytes, peak.added, estimate.chunk_bytes, chunks_actual,
                            estimate.bytes_per_pixel, time.perf_counter() - started, stage_density(workspace.chunks))
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous


def disk_clips(folder: Path) -> list[tuple[str, Path, dict]]:
    """Clips of different kinds for the estimate: camera-captured Vid4 (when ../shared has it), a photo filmed by
    a moving camera, ffmpeg's testsrc2 (synthetic), noise (the codec's worst case), 10-bit."""
    from stages.media.ffmpeg import run_ffmpeg
    from stages.quality.samples import make_sample_clip

    clips = [
        ("photo 64x48 x4, interp x2, flow", make_sample_clip(folder / "photo.mp4", width=64, height=48, seconds=1.5,
                                                               fps=12, audio=True), {}),
        ("photo 160x90 x4, no interp, no temporal",
         make_sample_clip(folder / "photo2.mp4", width=160, height=90, seconds=2, fps=12, audio=True),
         {"interpolate": None, "temporal": "none"}),
        ("photo 10-bit 96x54 x2, flow", make_sample_clip(folder / "ten.mp4", width=96, height=54, seconds=1, fps=12,
                                                          bit_depth=10, audio=False),
         {"scale": 2, "interpolate": None}),
    ]
    testsrc = folder / "testsrc2.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=12:duration=1.5", "-c:v", "libx264", "-crf", "18",
                "-pix_fmt", "yuv420p", str(testsrc)])
    clips.append(("testsrc2 96x64 x4, interp x2, flow", testsrc, {}))
    noise = folder / "noise.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "nullsrc=size=64x48:rate=12:duration=1.5", "-vf",
                "geq=random(1)*255:128:128,format=yuv420p", "-c:v", "libx264", "-crf", "10", str(noise)])
    clips.append(("noise 64x48 x4, interp x2, flow", noise, {}))
    vid4 = REPO.parent / "shared" / "testdata" / "vid4" / "GT" / "calendar"
    if vid4.is_dir():
        calendar = folder / "calendar.mp4"
        run_ffmpeg(["-framerate", "12", "-i", str(vid4 / "%03d.png"), "-vf", "scale=180:144:flags=bicubic",
                    "-frames:v", "24", "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(calendar)])
        clips.append(("Vid4 calendar 180x144 x4, no interp, flow", calendar, {"interpolate": None}))
    return clips


# ------------------------------------------------------------------------------------------ main


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="kill trials (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill points (default 1)")
    parser.add_argument("--chunk-seconds", type=float, default=0.25, help="chunk length (default 0.25 s)")
    parser.add_argument("--disk", action="store_true", help="measure the disk-space estimate instead")
    return parser.parse_args(argv)


def _header(title: str, argv: list[str]) -> list[str]:
    return [
        f"# {title} ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), {platform.platform()}",
        f"- command: `{command_line('benchmarks.faults', argv)}`",
        f"- versions: {versions()}",
    ]


def main_disk(argv: list[str]) -> int:
    lines = _header("Disk-space estimate against real runs", argv)
    lines += [("- estimate: orchestration.launch.diskcheck (chunks priced at the sampled bytes per pixel, the encode from "
              "the CRF, the rest fixed); actual: peak bytes the job added to a private tmpfs (statvfs) holding "
              "the workspace and the output, or the files' blocks polled where mounting is not allowed"), "",
              ("| clip | sampled B/px | B/px of the chunks per stage | chunks estimate | chunks actual | "
               "total estimate | peak actual | estimate / actual |"), "|---|---|---|---|---|---|---|---|"]
    from stages.store.diskspace import human_bytes

    results = []
    with tempfile.TemporaryDirectory(prefix="vup-disk-") as tmp:
        root = Path(tmp)
        for name, clip, options in disk_clips(root):
            case = disk_case(name.split(" ")[0] + str(len(results)), clip, root, **options)
            case.name = name
            results.append(case)
            density = ", ".join(f"{k} {v:.2f}" for k, v in case.stage_bytes_per_pixel.items())
            lines.append(f"| {name} | {case.bytes_per_pixel:.2f} | {density} | {human_bytes(case.chunks_estimate)} | "
                         f"{human_bytes(case.chunks_actual)} | {human_bytes(case.estimate)} | "
                         f"{human_bytes(case.actual)} | {case.ratio:.2f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"disk-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"disk-{stamp}.json").write_text(json.dumps([asdict(c) for c in results], indent=2), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.disk:
        return main_disk(argv)
    spec = ClipSpec(chunk_seconds=args.chunk_seconds)
    lines = _header(f"Kill -9 trials ({args.trials}, seed {args.seed})", argv)
    lines.append(f"- clip: {spec.width}x{spec.height}, {spec.seconds:g} s at {spec.fps} fps with audio; "
                 f"`vup {' '.join(enhance_args(Path('CLIP'), Path('OUT'), spec))}`; a fresh workspace per trial")
    with tempfile.TemporaryDirectory(prefix="vup-faults-") as tmp:
        def show(trial: Trial) -> None:
            print(table([trial])[-1], flush=True)

        print(TABLE_HEADER, flush=True)
        reference, trials = run_trials(args.trials, args.seed, Path(tmp), spec, progress=show)
    lines.append(f"- reference run: {reference.seconds:.1f} s, output sha256 {reference.sha256[:16]}..., "
                 f"{reference.chunks} chunks per stage; seconds per chunk: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in reference.stage_seconds.items()))
    lines += ["", *summary(trials), "", *table(trials)]
    errors = [f"- trial {t.number}: {t.error}" for t in trials if t.error]
    if errors:
        lines += ["", "Errors:", *errors]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"faults-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"faults-{stamp}.json").write_text(json.dumps([asdict(t) for t in trials], indent=2), encoding="utf-8")
    return 0 if all(t.ok for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
