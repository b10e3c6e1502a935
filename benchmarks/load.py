"""Load: several jobs submitted at once to one live `vup serve`, through the page, the CLI and the inbox.

    python -m benchmarks.load [--jobs 5] [--seconds 2 --size 96x64 --chunk-seconds 0.5 --scale 2]   (or: vup bench load)
    python -m benchmarks.load --claims [--trials 40]    # the gpu-slot claim race, with and without the claim lock

Starts `vup serve` (Dagster webserver + daemon + the Gradio page) on free loopback ports in a fresh temporary
workspace, generates small distinct clips and submits every job at the same moment: the page's ``/process``
API (gradio_client), `vup enhance` subprocesses (their own process, ``execute_in_process`` against the same
instance) and files dropped in the inbox folder (the ``inbox_sensor`` of the daemon). The first two jobs are
the SAME file (same partition) through two routes (page and CLI), so they run at the same time on the same
chunks. Routes go round ``ui, cli, inbox, ui, cli`` (five jobs: two page, two CLI, one inbox).

Then it checks, from the Dagster instance and the files:

* every run ended SUCCESS;
* every output has the input's size times the scale, the input's frame count and its audio;
* jobs of the same partition produced byte-identical outputs;
* every chunk manifest in the store validates (size and sha256) and no temporary chunk file is left;
* the ``gpu`` pool: the STEP_START .. STEP_SUCCESS/FAILURE interval of every model step (the assets with
  ``pool="gpu"``) of every run, whichever process ran it, overlaps no other (the largest number of model steps
  running at once must be 1, the pool's limit);
* no concurrency slot of the pool is still claimed, and no step is still pending, once every run has ended.

Prints a Markdown table (job, route, partition, run, status, wall seconds, upscale chunks computed/reused,
output ok) and the figures (jobs, wall time, failures, most model steps at once) with the machine, the command
and the versions, and writes them under ``benchmarks/results/``. tests/reliability/test_load.py runs the same
scenario and asserts on it. Wall times are of this machine at that moment: other programs share the CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, RESULTS, command_line, versions

ROUTES = ("ui", "cli", "inbox", "ui", "cli")
IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat")
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
GPU_POOL = "gpu"
SERVE_START_SECONDS = 240.0


# ------------------------------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Served:
    """A live `vup serve`: its workspace, the page and the Dagster webserver, its process and log."""

    root: Path
    page_url: str
    dagster_url: str
    process: subprocess.Popen
    log: Path
    start_seconds: float

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The ``data`` of a GraphQL query to the Dagster webserver."""
        request = urllib.request.Request(
            f"{self.dagster_url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def serve_env(root: Path) -> dict[str, str]:
    """The environment of a `vup serve` (and of `vup enhance`) for the workspace ``root``; the inbox is
    ``<root>/inbox`` (``VUP_INBOX`` dropped)."""
    env = {**os.environ, "VUP_WORKSPACE": str(root), "DAGSTER_HOME": str(root / "dagster"),
           "GRADIO_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1"}
    for name in ("VUP_INBOX", "VUP_AUTH", "VUP_MAX_UPLOAD_MB"):
        env.pop(name, None)
    return env


def vup_command() -> list[str]:
    script = Path(sys.executable).with_name("vup")
    return [str(script)] if script.exists() else [sys.executable, "-c", ("import sys; from orchestration.cli.commands "
                                                                          "import main; sys.exit(main())")]


def start_serve(root: Path, log: Path, timeout: float = SERVE_START_SECONDS) -> Served:
    """Start `vup serve` on free loopback ports for the workspace ``root`` (its own process group, output to
    ``log``) and wait until the page and the Dagster webserver answer.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout`` seconds (the end of its logs says why);
            whatever it started is stopped.
    """
    page_port, dagster_port = free_port(), free_port()
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*vup_command(), "serve", "--port", str(page_port), "--dagster-port", str(dagster_port), "--quiet"],
            cwd=REPO, env=serve_env(root), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    page_url, dagster_url = f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{dagster_port}"
    deadline = time.monotonic() + timeout
    while not (answers(f"{page_url}/config") and answers(f"{dagster_url}/server_info")):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_serve(process)
            dagster_log = root / "logs" / "dagster.log"
            detail = dagster_log.read_text(errors="replace")[-3000:] if dagster_log.exists() else ""
            raise RuntimeError(f"vup serve did not come up:\n{log.read_text(errors='replace')[-3000:]}\n{detail}")
        time.sleep(1)
    return Served(root, page_url, dagster_url, process, log, time.perf_counter() - started)


def stop_serve(process: subprocess.Popen) -> tuple[int | None, bool]:
    """Stop a `vup serve` as a service manager does: SIGTERM, up to 90 s for it to exit, up to 30 s more for
    every process it started to go, then SIGKILL of its process group. Returns its exit code (None: it had to
    be killed) and whether processes it started were still running when it was killed."""
    code = process.poll()
    if code is None:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            code = None
    deadline = time.monotonic() + 30
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftover = group_alive(process.pid)
    if leftover:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return code, leftover


@contextmanager
def live_serve(root: Path, log: Path, timeout: float = SERVE_START_SECONDS) -> Iterator[Served]:
    """`vup serve` (:func:`start_serve`) for the workspace ``root``, stopped (:func:`stop_serve`) on leaving.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout`` seconds.
    """
    served = start_serve(root, log, timeout)
    try:
        yield served
    finally:
        stop_serve(served.process)


# ---------------------------------------------------------------------------------------------------- the jobs


@dataclass(frozen=True)
class LoadOptions:
    jobs: int = 5
    width: int = 96
    height: int = 64
    seconds: float = 2.0
    fps: float = 12.0
    chunk_seconds: float = 0.5
    scale: int = 2
    timeout: float = 900.0


@dataclass
class Job:
    """One submission: its route, its clip and, once known, its run and what became of it."""

    name: str
    route: str
    clip: Path
    partition: str
    output: Path | None = None  # where the CLI was told to write (page and inbox runs: read from the run)
    run_id: str | None = None
    status: str = "NOT SUBMITTED"
    submit_error: str | None = None
    wall_s: float | None = None
    upscale_computed: int = 0
    upscale_reused: int = 0
    output_ok: bool = False
    output_problem: str | None = None
    output_sha256: str | None = None
    cli_process: subprocess.Popen | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Interval:
    run_id: str
    step: str
    start: float
    end: float
    finished: bool


@dataclass
class LoadReport:
    """What a load run found; ``problems`` is empty when every check passed."""

    options: dict[str, Any]
    jobs: list[dict[str, Any]]
    serve_start_s: float
    wall_s: float
    failures: int
    runs_in_instance: int
    gpu_steps: list[str]
    model_steps: int
    max_simultaneous_model_steps: int
    max_model_overlap_s: float
    gpu_slots_claimed_after: list[str]
    gpu_steps_pending_after: list[str]
    gpu_pool_limit: int | None
    chunks_checked: int
    chunk_problems: list[str]
    chunk_temp_files: list[str]
    same_partition_groups: list[dict[str, Any]]
    same_partition_overlap_s: float | None
    problems: list[str]


def _clip_settings(options: LoadOptions) -> dict[str, Any]:
    return {"scale": options.scale, "chunk_seconds": options.chunk_seconds, "temporal": "none", "crf": 18}


def plan_jobs(options: LoadOptions, folder: Path) -> list[Job]:
    """``options.jobs`` jobs on routes ``ui, cli, inbox, ui, cli...``; jobs 0 and 1 share one clip (same
    partition), every other job has a clip of its own (another photo, or another frame rate)."""
    from stages.quality.samples import make_sample_clip
    from stages.store.fsutil import sha256_file

    if options.jobs < 2:
        raise ValueError("load: --jobs must be at least 2 (the first two are the same file through two routes)")
    folder.mkdir(parents=True, exist_ok=True)
    clips: list[Path] = []
    for n in range(options.jobs - 1):
        clips.append(make_sample_clip(folder / f"clip{n}.mp4", width=options.width, height=options.height,
                                      seconds=options.seconds, fps=options.fps + n // len(IMAGES),
                                      image=IMAGES[n % len(IMAGES)], audio=True))
    jobs = []
    for j in range(options.jobs):
        clip = clips[0] if j < 2 else clips[j - 1]
        route = ROUTES[j % len(ROUTES)]
        jobs.append(Job(f"job{j}", route, clip, sha256_file(clip)[:16]))
    return jobs


def _page_settings(options: LoadOptions) -> list[Any]:
    """Positional arguments of the page's /process endpoint (see ui/app.py on_process)."""
    from stages.models.catalog import DEFAULT_UPSCALE_MODEL

    return [DEFAULT_UPSCALE_MODEL, options.scale, False, "auto", "factor", 2, 60, "none", 0.6, "auto", 0, False,
            "h264", "mp4", 18, options.chunk_seconds]


RUN_ID = re.compile(r"\(run ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _submit(job: Job, served: Served, options: LoadOptions, workdir: Path, barrier: threading.Barrier,
            client: Any) -> None:
    """Wait for every job to be ready, then submit this one (the CLI one runs to its end here)."""
    barrier.wait()
    try:
        if job.route == "ui":
            import gradio_client

            run_id, message = client.predict(gradio_client.handle_file(str(job.clip)), *_page_settings(options),
                                             api_name="/process")
            if run_id:
                job.run_id = run_id
            else:
                job.submit_error = f"the page refused it: {message}"
        elif job.route == "cli":
            job.output = workdir / "cli-outputs" / f"{job.name}.mp4"
            command = [*vup_command(), "enhance", str(job.clip), "-o", str(job.output), "--workspace",
                       str(served.root), "--scale", str(options.scale), "--chunk-seconds", str(options.chunk_seconds),
                       "--crf", "18", "--temporal", "none", "--device", "auto", "-q"]  # as the page and inbox jobs
            job.cli_process = subprocess.Popen(command, cwd=REPO, env=serve_env(served.root), stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)
            out, err = job.cli_process.communicate()
            found = RUN_ID.search(out + err)
            job.run_id = found.group(1) if found else None
            if job.cli_process.returncode != 0 or job.run_id is None:
                tail = " | ".join((err or out).strip().splitlines()[-3:])
                job.submit_error = f"vup enhance exited {job.cli_process.returncode}: {tail}"
        else:
            inbox = served.root / "inbox"
            inbox.mkdir(parents=True, exist_ok=True)
            (inbox / f"{job.clip.stem}.json").write_text(json.dumps(_clip_settings(options)), encoding="utf-8")
            hidden = inbox / f".{job.clip.name}.part"  # hidden and partial: the sensor ignores it until renamed
            shutil.copyfile(job.clip, hidden)
            os.replace(hidden, inbox / job.clip.name)
    except Exception as exc:  # noqa: BLE001 - reported as this job's failure
        job.submit_error = f"{type(exc).__name__}: {exc}"


def _find_inbox_run(instance: Any, job: Job) -> str | None:
    from dagster import RunsFilter

    records = instance.get_run_records(
        RunsFilter(job_name="enhance_job", tags={"vup/launched_by": "inbox", "vup/source": job.clip.name}), limit=1)
    return records[0].dagster_run.run_id if records else None


def _wait(jobs: list[Job], threads: list[threading.Thread], instance: Any, started: float, deadline: float) -> None:
    """Poll the instance until every job's run has ended (or the deadline); fill status and wall time."""
    while True:
        pending = False
        for job, thread in zip(jobs, threads, strict=True):
            if job.status in TERMINAL or job.submit_error:
                continue
            if job.run_id is None and job.route == "inbox":
                job.run_id = _find_inbox_run(instance, job)
            if job.run_id is None:
                pending = pending or thread.is_alive() or job.route == "inbox"
                continue
            record = instance.get_run_record_by_id(job.run_id)
            if record is None:
                pending = True
                continue
            job.status = record.dagster_run.status.value
            if job.status in TERMINAL:
                end = record.end_time or time.time()
                job.wall_s = end - started
            else:
                pending = True
        if not pending or time.time() > deadline:
            return
        time.sleep(1.0)


# --------------------------------------------------------------------------------------------------- checks


def gpu_steps() -> list[str]:
    """Step keys of the assets that run in the ``gpu`` pool (from the definitions)."""
    from orchestration.graphs.enhance import ENHANCE_ASSETS

    return sorted({assets_def.op.name for assets_def in ENHANCE_ASSETS if assets_def.op.pool == GPU_POOL})


def model_step_intervals(instance: Any, run_ids: list[str], steps: list[str]) -> list[Interval]:
    """STEP_START .. STEP_SUCCESS / STEP_FAILURE of the model steps of ``run_ids`` (event log timestamps, so
    the same clock whichever process ran the step); a step with no end closes at the run's end (or now)."""
    from dagster import DagsterEventType

    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    intervals = []
    for run_id in run_ids:
        opened: dict[str, float] = {}
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event is None or event.step_key not in steps:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                opened[event.step_key] = entry.timestamp
            elif event.step_key in opened:
                intervals.append(Interval(run_id, event.step_key, opened.pop(event.step_key), entry.timestamp, True))
        if opened:
            record = instance.get_run_record_by_id(run_id)
            end = (record.end_time if record is not None else None) or time.time()
            intervals += [Interval(run_id, step, start, end, False) for step, start in opened.items()]
    return intervals


def max_simultaneous(intervals: list[Interval]) -> int:
    """The largest number of intervals open at one instant (an end and a start at the same instant do not
    overlap)."""
    points = sorted([(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals])
    most = current = 0
    for _when, delta in points:
        current += delta
        most = max(most, current)
    return most


def max_pairwise_overlap(intervals: list[Interval]) -> float:
    """The longest time any two intervals ran together, in seconds (0 when none did)."""
    ordered = sorted(intervals, key=lambda i: i.start)
    best = 0.0
    for n, first in enumerate(ordered):
        for second in ordered[n + 1:]:
            if second.start >= first.end:
                break
            best = max(best, min(first.end, second.end) - second.start)
    return best


def check_chunks(chunks: Path) -> tuple[int, list[str], list[str]]:
    """(manifests checked, problems, temporary files left) of a chunk store, read only: each manifest must
    name its own stage and key and its chunk file must have the recorded size and sha256."""
    from stages.store.chunk_store import ChunkRecord
    from stages.store.fsutil import sha256_file

    checked, problems, temps = 0, [], []
    if not chunks.is_dir():
        return 0, [], []
    for manifest in sorted(chunks.glob("*/*.json")):
        stage, key = manifest.parent.name, manifest.stem
        checked += 1
        try:
            record = ChunkRecord.from_dict(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"{stage}/{key}: unreadable manifest ({exc})")
            continue
        media = manifest.with_name(Path(record.path).name)
        if record.stage != stage or record.key != key:
            problems.append(f"{stage}/{key}: the manifest is of {record.stage}/{record.key}")
        elif not media.is_file():
            problems.append(f"{stage}/{key}: no chunk file")
        elif media.stat().st_size != record.size_bytes:
            problems.append(f"{stage}/{key}: size {media.stat().st_size} != {record.size_bytes}")
        elif sha256_file(media) != record.sha256:
            problems.append(f"{stage}/{key}: sha256 differs from the manifest's")
    temps = sorted(str(p.relative_to(chunks)) for p in chunks.rglob(".*") if ".tmp" in p.name)
    return checked, problems, temps


def _run_output(instance: Any, run_id: str) -> str | None:
    """The output file the run was told to write (``encoded_video``'s ``output_path``; the page, the inbox and
    `vup enhance -o` all set it)."""
    run = instance.get_run_by_id(run_id)
    config = ((run.run_config or {}).get("ops", {}).get("encoded_video", {}).get("config", {})) if run else {}
    return config.get("output_path")


def _check_output(instance: Any, job: Job, options: LoadOptions) -> None:
    from orchestration.launch.events import progress_events
    from stages.media.probe import probe_video
    from stages.store.fsutil import sha256_file

    for event, _logged in progress_events(instance, job.run_id):
        if event.get("stage") == "upscale":
            if event.get("reused"):
                job.upscale_reused += 1
            else:
                job.upscale_computed += 1
    path = _run_output(instance, job.run_id)
    if path is None or not Path(path).is_file():
        job.output_problem = f"no output file ({path})"
        return
    job.output = Path(path)
    source, result = probe_video(job.clip), probe_video(path)
    expected = (source.width * options.scale, source.height * options.scale)
    if (result.width, result.height) != expected:
        job.output_problem = f"size {result.width}x{result.height}, expected {expected[0]}x{expected[1]}"
    elif result.frame_count != source.frame_count:
        job.output_problem = f"{result.frame_count} frames, expected {source.frame_count}"
    elif len(result.audio_streams) != len(source.audio_streams):
        job.output_problem = f"{len(result.audio_streams)} audio streams, expected {len(source.audio_streams)}"
    job.output_ok = job.output_problem is None
    job.output_sha256 = sha256_file(path)


def _overlap_of_runs(instance: Any, run_ids: list[str]) -> float | None:
    """How long the runs were all STARTED at once (None when a run has no start or end)."""
    spans = []
    for run_id in run_ids:
        record = instance.get_run_record_by_id(run_id)
        if record is None or record.start_time is None or record.end_time is None:
            return None
        spans.append((record.start_time, record.end_time))
    return max(0.0, min(e for _s, e in spans) - max(s for s, _e in spans))


# ------------------------------------------------------------------------------------------------ the scenario


def run_load(options: LoadOptions, workdir: Path) -> LoadReport:
    """Start `vup serve` in ``workdir/ws``, submit every job at once, wait, check (see the module docstring)."""
    import gradio_client
    from dagster import DagsterInstance, RunsFilter

    jobs = plan_jobs(options, workdir / "clips")
    root = workdir / "ws"
    with live_serve(root, workdir / "serve.log") as served:
        instance = DagsterInstance.from_config(str(root / "dagster"))
        try:
            clients = {job.name: gradio_client.Client(served.page_url, verbose=False,
                                                      download_files=str(workdir / "downloads"))
                       for job in jobs if job.route == "ui"}
            barrier = threading.Barrier(len(jobs) + 1)
            threads = [threading.Thread(target=_submit, name=f"submit-{job.name}", daemon=True,
                                        args=(job, served, options, workdir, barrier, clients.get(job.name)))
                       for job in jobs]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.time()
            _wait(jobs, threads, instance, started, started + options.timeout)
            for thread in threads:
                thread.join(timeout=max(1.0, started + options.timeout - time.time()))
            _wait(jobs, threads, instance, started, started + options.timeout)
            wall = max([j.wall_s for j in jobs if j.wall_s is not None], default=time.time() - started)
            report = _check(instance, jobs, options, root, served.start_seconds, wall)
        finally:
            for job in jobs:
                if job.cli_process is not None and job.cli_process.poll() is None:
                    job.cli_process.kill()
            runs = instance.get_run_records(RunsFilter(job_name="enhance_job"))
            instance.dispose()
    report.runs_in_instance = len(runs)
    if len(runs) != len(jobs):
        report.problems.append(f"{len(runs)} enhance_job runs in the instance for {len(jobs)} jobs")
    return report


def _check(instance: Any, jobs: list[Job], options: LoadOptions, root: Path, serve_start: float,
           wall: float) -> LoadReport:
    problems: list[str] = []
    for job in jobs:
        if job.submit_error:
            problems.append(f"{job.name} ({job.route}): {job.submit_error}")
        elif job.status != "SUCCESS":
            problems.append(f"{job.name} ({job.route}): run {job.run_id} ended {job.status}")
        if job.run_id is not None and job.status == "SUCCESS":
            _check_output(instance, job, options)
            if not job.output_ok:
                problems.append(f"{job.name} ({job.route}): output {job.output_problem}")
    groups = []
    overlap = None
    by_partition: dict[str, list[Job]] = {}
    for job in jobs:
        by_partition.setdefault(job.partition, []).append(job)
    for partition, members in by_partition.items():
        if len(members) < 2:
            continue
        digests = {j.output_sha256 for j in members}
        identical = len(digests) == 1 and None not in digests
        groups.append({"partition": partition, "jobs": [j.name for j in members],
                       "routes": [j.route for j in members], "identical": identical})
        if not identical:
            problems.append(f"partition {partition}: the outputs of {', '.join(j.name for j in members)} differ")
        run_ids = [j.run_id for j in members if j.run_id]
        if len(run_ids) == len(members):
            overlap = _overlap_of_runs(instance, run_ids)
    steps = gpu_steps()
    run_ids = [j.run_id for j in jobs if j.run_id]
    intervals = model_step_intervals(instance, run_ids, steps)
    most, longest = max_simultaneous(intervals), max_pairwise_overlap(intervals)
    if most > 1:
        problems.append(f"gpu pool: {most} model steps ran at once (longest overlap {longest:.2f} s)")
    if any(not i.finished for i in intervals):
        problems.append("gpu pool: model steps without an end event: "
                        + ", ".join(f"{i.run_id[:8]}/{i.step}" for i in intervals if not i.finished))
    info = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    claimed = [f"{s.run_id[:8]}/{s.step_key}" for s in info.claimed_slots]
    pending = [f"{s.run_id[:8]}/{s.step_key}" for s in info.pending_steps]
    if claimed or pending:
        problems.append(f"gpu pool: still claimed {claimed or 'none'}, pending {pending or 'none'} after every "
                        "run ended")
    checked, chunk_problems, temps = check_chunks(root / "chunks")
    problems += [f"chunk {p}" for p in chunk_problems]
    if temps:
        problems.append(f"chunk store: {len(temps)} temporary file(s) left: {', '.join(temps[:5])}")
    failures = sum(1 for j in jobs if j.submit_error or j.status != "SUCCESS" or not j.output_ok)
    rows = []
    for job in jobs:
        row = {f.name: getattr(job, f.name) for f in fields(job) if f.name != "cli_process"}
        row["clip"], row["output"] = str(job.clip), str(job.output) if job.output else None
        rows.append(row)
    return LoadReport(
        options=asdict(options), jobs=rows, serve_start_s=serve_start, wall_s=wall, failures=failures,
        runs_in_instance=0, gpu_steps=steps, model_steps=len(intervals), max_simultaneous_model_steps=most,
        max_model_overlap_s=longest, gpu_slots_claimed_after=claimed, gpu_steps_pending_after=pending,
        gpu_pool_limit=info.limit, chunks_checked=checked, chunk_problems=chunk_problems, chunk_temp_files=temps,
        same_partition_groups=groups, same_partition_overlap_s=overlap, problems=problems,
    )


# ------------------------------------------------------------------------------------------------------ report


def markdown(report: LoadReport, argv: list[str]) -> str:
    o = report.options
    lines = [
        f"# Load: {len(report.jobs)} jobs at once ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), {platform.platform()}",
        f"- command: `{command_line('benchmarks.load', argv)}`",
        f"- versions: {versions(('torch', 'dagster', 'gradio', 'gradio_client', 'av'))}",
        (f"- clips {o['width']}x{o['height']}, {o['seconds']:g} s at {o['fps']:g} fps with audio, chunks of "
        f"{o['chunk_seconds']:g} s, x{o['scale']}, default model, device auto; routes {', '.join(ROUTES)} "
        "(jobs 0 and 1: the same file); one `vup serve` (webserver, daemon, page) in a fresh workspace"),
        ("- wall s: from the moment every job was submitted to the end of its run (Dagster's end time); "
        "other programs share this machine's CPU"),
        "",
        "| job | route | partition | run | status | wall s | upscale chunks computed/reused | output ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for job in report.jobs:
        wall = f"{job['wall_s']:.1f}" if job["wall_s"] is not None else "-"
        ok = "yes" if job["output_ok"] else f"no ({job['output_problem'] or job['submit_error'] or job['status']})"
        lines.append(f"| {job['name']} | {job['route']} | {job['partition']} | {(job['run_id'] or '-')[:8]} | "
                     f"{job['status']} | {wall} | {job['upscale_computed']}/{job['upscale_reused']} | {ok} |")
    same = ", ".join(f"{g['partition']} ({'+'.join(g['routes'])}): {'identical' if g['identical'] else 'DIFFER'}"
                     for g in report.same_partition_groups) or "none"
    overlap = (f"{report.same_partition_overlap_s:.1f} s" if report.same_partition_overlap_s is not None else "n/a")
    lines += [
        "",
        (f"- jobs: **{len(report.jobs)}**, failures: **{report.failures}**, wall time: **{report.wall_s:.1f} s** "
        f"(serve start-up before that: {report.serve_start_s:.1f} s)"),
        (f"- gpu pool (limit {report.gpu_pool_limit}, steps {', '.join(report.gpu_steps)}): "
        f"{report.model_steps} model steps, most at once **{report.max_simultaneous_model_steps}**, "
        f"longest overlap {report.max_model_overlap_s:.2f} s; slots claimed after: "
        f"{report.gpu_slots_claimed_after or 'none'}, pending: {report.gpu_steps_pending_after or 'none'}"),
        f"- same partition: {same}; those runs were STARTED together for {overlap}",
        (f"- chunk store: {report.chunks_checked} manifests checked, {len(report.chunk_problems)} invalid, "
        f"{len(report.chunk_temp_files)} temporary files left"),
        f"- enhance_job runs in the instance: {report.runs_in_instance}",
        "- problems: " + ("none" if not report.problems else "; ".join(report.problems)),
    ]
    return "\n".join(lines)


def claim_race(root: Path, trials: int = 40, *, serialized: bool = True) -> tuple[int, Any]:
    """Two claimers (threads, each with its own instance on the SQLite storage in ``root``) claim the one slot of
    the ``gpu`` pool at the same moment, ``trials`` times; returns how many times both won, and the pool's
    concurrency info at the end. ``serialized=False`` measures Dagster's own claim, without the file lock of
    orchestration/resources/concurrency.py (restored afterwards)."""
    from dagster import DagsterInstance
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
        SqliteEventLogStorage,
    )

    import orchestration.definitions  # noqa: F401 - installs the serialized claim, as every run process does

    locked = SqliteEventLogStorage.claim_concurrency_slot
    if not serialized:
        SqliteEventLogStorage.claim_concurrency_slot = locked.__wrapped__
    (root / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\n    granularity: op\n")
    instances = [DagsterInstance.from_config(str(root)) for _ in range(2)]
    storage = instances[0].event_log_storage
    try:
        storage.initialize_concurrency_limit_to_default("gpu")
        doubles = 0
        for n in range(trials):
            runs = [f"run{n}-a", f"run{n}-b"]
            for run_id in runs:  # both steps assigned first, as two claims at the same moment are
                storage.add_pending_step("gpu", run_id, "upscale", should_assign=True)
            barrier, won = threading.Barrier(2), []

            def claim(i: int, runs=runs, barrier=barrier, won=won) -> None:
                barrier.wait()
                status = instances[i].event_log_storage.claim_concurrency_slot("gpu", runs[i], "upscale")
                won.append(status.is_claimed)

            threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            doubles += sum(won) > 1
            for run_id in runs:
                storage.free_concurrency_slots_for_run(run_id)
        return doubles, storage.get_concurrency_info("gpu")
    finally:
        SqliteEventLogStorage.claim_concurrency_slot = locked
        for instance in instances:
            instance.dispose()


def _claims_report(trials: int, argv: list[str]) -> str:
    rows = []
    for serialized in (False, True):
        root = Path(tempfile.mkdtemp(prefix="vup-claims-"))
        try:
            doubles, _info = claim_race(root, trials, serialized=serialized)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append(f"| {'with' if serialized else 'without'} the claim lock | {doubles} of {trials} |")
    return "\n".join([
        f"# gpu-slot claim race ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
        f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), {platform.platform()}",
        f"- command: `{command_line('benchmarks.load', argv)}`",
        f"- versions: {versions(('dagster',))}",
        "- two threads, each with its own DagsterInstance on one SQLite storage, claim the one slot at once", "",
        "| claim | both won |", "|---|---|", *rows,
    ])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5, help="jobs submitted at once (default 5; at least 2)")
    parser.add_argument("--size", default="96x64", help="clip size WIDTHxHEIGHT (default 96x64)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    parser.add_argument("--fps", type=float, default=12.0, help="clip frame rate (default 12)")
    parser.add_argument("--chunk-seconds", type=float, default=0.5, help="chunk length (default 0.5)")
    parser.add_argument("--scale", type=int, default=2, help="upscale factor (default 2)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every run (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace (its path is printed)")
    parser.add_argument("--claims", action="store_true", help="measure the gpu-slot claim race instead")
    parser.add_argument("--trials", type=int, default=40, help="claim-race trials (default 40)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.claims:
        print(_claims_report(args.trials, argv))
        return 0
    width, height = (int(v) for v in args.size.lower().split("x"))
    options = LoadOptions(jobs=args.jobs, width=width, height=height, seconds=args.seconds, fps=args.fps,
                          chunk_seconds=args.chunk_seconds, scale=args.scale, timeout=args.timeout)
    workdir = Path(tempfile.mkdtemp(prefix="vup-load-"))
    try:
        report = run_load(options, workdir)
    finally:
        if args.keep:
            print(f"workspace kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = markdown(report, argv)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"load-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"load-{stamp}.json").write_text(json.dumps(asdict(report), indent=2, default=str), encoding="utf-8")
    print(f"\nwritten: benchmarks/results/load-{stamp}.md and .json", file=sys.stderr)
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
