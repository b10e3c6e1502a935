"""Faults: kill -9 at random points of a run, a disk that fills up during a job, the disk-space check before one,
and runs whose process died holding the `gpu` pool slot.

The kill trials and the disk-space measurement are benchmarks/faults.py's (``python -m benchmarks.faults``
prints the same trials as a table, ``--disk`` the estimate against real runs); here they are asserted. A small
tmpfs is mounted where the machine allows it (root); elsewhere the full disk is an injected ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from benchmarks.faults import (
    CHUNK_STAGES,
    STAGES,
    ClipSpec,
    Reference,
    disk_case,
    make_clip,
    private_disk,
    run_trials,
    scan_store,
    sha256,
    stage_seconds,
    table,
)
from orchestration.cli import main
from orchestration.launch.diskcheck import estimate_request_space
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.launch.validate import validate_request
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    TemporalConfig,
    UpscaleConfig,
)
from orchestration.resources.process import HOST_TAG, PID_TAG, process_tags
from orchestration.resources.workspace import Workspace, prepare_dagster_home
from orchestration.sensors.watchdog import reclaim_abandoned_runs
from stages.errors import ChunkError, DiskFullError, DiskSpaceError
from stages.media.chunkio import ChunkWriter
from stages.media.probe import probe_video
from stages.store import diskspace
from stages.store.chunk_store import ChunkContent, ChunkStore
from stages.store.fsutil import atomic_write_bytes

SPEC = ClipSpec()  # 64x48, 1.5 s at 12 fps with audio, chunks of 0.25 s: 6 chunks per stage


def _mountable() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("faults"), SPEC)


def _request(clip: Path, output: Path, **encode) -> EnhanceRequest:
    """The request of the kill trials (every stage does work), run in this process."""
    return EnhanceRequest(
        input=clip, output=output, chunk=ChunkPlanConfig(chunk_seconds=SPEC.chunk_seconds),
        upscale=UpscaleConfig(scale=4), encode=EncodeConfig(preset="veryfast", **encode),
        interpolate=InterpolateConfig(method="flow", factor=2), temporal=TemporalConfig(method="flow"),
        device="cpu",
    )


@pytest.fixture(scope="module")
def reference(clip, tmp_path_factory) -> Reference:
    """An uninterrupted run in this process (a workspace of its own): its output's sha256 and each stage's seconds
    per chunk (the same bytes as `vup enhance` gives: the trials compare the CLI's output with it)."""
    root = tmp_path_factory.mktemp("reference")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(root / "ws" / "dagster")
    events: list[dict] = []
    try:
        outcome = run_enhance(Workspace(root / "ws"), _request(clip, root / "out.mp4"), on_event=events.append)
    finally:
        os.environ.pop("DAGSTER_HOME") if previous is None else os.environ.__setitem__("DAGSTER_HOME", previous)
    assert outcome.success, outcome.error
    chunks = max(int(e["chunks"]) for e in events if e["stage"] == "upscale")
    return Reference(sha256(root / "out.mp4"), outcome.seconds, chunks,
                     stage_seconds([(e, 0.0) for e in events], 0.0))


def _chunk_events(events: list[dict]) -> tuple[int, int]:
    """(reused, computed) chunks of the chunk stages among a run's progress events."""
    chunks = [e for e in events if e["stage"] in CHUNK_STAGES]
    return sum(1 for e in chunks if e["reused"]), sum(1 for e in chunks if not e["reused"])


# ------------------------------------------------------------------------------------------ kill -9


def _assert_trials(trials) -> None:
    print("\n" + "\n".join(table(trials)))
    for trial in trials:
        assert trial.killed, f"trial {trial.number}: the run ended before the kill point {trial.target}"
        assert trial.resumed_ok, f"trial {trial.number} ({trial.target}): the rerun failed: {trial.error}"
        assert trial.identical, f"trial {trial.number} ({trial.target}): output differs from the uninterrupted run"
        assert trial.bad_after_kill == 0 and trial.bad_after_resume == 0, trial
        assert trial.corrupt_redone in (True, None), f"trial {trial.number}: a corrupted chunk was reused"
        assert trial.killed_run_ended and trial.slots_free, f"trial {trial.number}: the killed run is still open"
        assert trial.temps_after_resume == 0, trial
        assert trial.orphans_after_kill == 0 or trial.bad_after_resume == 0


def test_kill_9_then_the_rerun_is_bit_identical_and_reuses_the_chunks(clip, reference, tmp_path):
    """Three real `vup enhance` processes killed with SIGKILL (in the upscale step, holding the gpu pool slot; in
    the coherence pass; in the encode), each rerun to the end: same bytes as an uninterrupted run."""
    _reference, trials = run_trials(3, seed=7, root=tmp_path, spec=SPEC, stages=("upscale", "cohere", "encode"),
                                    clip=clip, reference=reference)
    _assert_trials(trials)
    assert all(t.reused > 0 for t in trials)  # the rerun resumed, it did not start over
    assert {t.target.split()[0] for t in trials} == {"upscale", "cohere", "encode"}


@pytest.mark.soak
def test_kill_9_at_24_random_points_across_all_stages(clip, reference, tmp_path):
    """24 kills, four per stage (decode, upscale, interpolate, coherence, encode, report), random chunk and delay."""
    _reference, trials = run_trials(24, seed=2026, root=tmp_path, spec=SPEC, clip=clip, reference=reference)
    _assert_trials(trials)
    assert {t.target.split()[0] for t in trials} == set(STAGES)
    seen = {t.stage for t in trials}
    assert len(seen & set(STAGES)) >= 5, seen  # kills landed in (nearly) every stage, not only at one point


# ------------------------------------------------------------------------------------------ dead processes


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _add_run(instance: DagsterInstance, tags: dict[str, str], status=DagsterRunStatus.STARTED) -> str:
    run_id = make_new_run_id()
    instance.add_run(DagsterRun(job_name="enhance_job", run_id=run_id, tags=tags, status=status))
    return run_id


def test_a_run_whose_process_died_is_ended_and_its_gpu_slot_freed(workspace):
    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    host = socket.gethostname()
    dead = _dead_pid()
    dead_run = _add_run(instance, {PID_TAG: str(dead), HOST_TAG: host, "vup/launched_by": "cli"})
    canceling = _add_run(instance, {PID_TAG: str(dead), HOST_TAG: host}, DagsterRunStatus.CANCELING)
    live_run = _add_run(instance, process_tags())
    other_host = _add_run(instance, {PID_TAG: str(dead), HOST_TAG: "another-machine"})
    daemon_run = _add_run(instance, {"vup/launched_by": "ui"})
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("gpu")
    assert storage.claim_concurrency_slot("gpu", dead_run, "upscale").is_claimed
    assert not storage.claim_concurrency_slot("gpu", live_run, "upscale").is_claimed  # limit 1: it waits
    leftovers = [workspace.chunks / "upscaled" / f".0123abcd.{dead}.deadbeef.tmp.nut",
                 workspace.outputs / ".cache" / "k" / f".video.mp4.{dead}.x1y2z3.part" / "video.mp4"]
    kept = workspace.chunks / "upscaled" / f".4567cdef.{os.getpid()}.cafebabe.tmp.nut"
    for path in [*leftovers, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")

    assert set(reclaim_abandoned_runs(instance, workspace)) == {dead_run, canceling}
    status = {run_id: instance.get_run_by_id(run_id).status for run_id in
              (dead_run, canceling, live_run, other_host, daemon_run)}
    assert status[dead_run] == DagsterRunStatus.FAILURE
    assert status[canceling] == DagsterRunStatus.CANCELED
    assert status[live_run] == status[other_host] == status[daemon_run] == DagsterRunStatus.STARTED
    failure = [e for e in instance.all_logs(dead_run) if e.dagster_event and e.dagster_event.is_run_failure]
    assert f"pid {dead}" in failure[0].dagster_event.message and "killed" in failure[0].dagster_event.message
    claimed = {slot.run_id for slot in storage.get_concurrency_info("gpu").claimed_slots}
    assert dead_run not in claimed
    assert storage.claim_concurrency_slot("gpu", live_run, "upscale").is_claimed  # the waiter gets it
    assert not any(path.exists() for path in leftovers) and not leftovers[1].parent.exists()
    assert kept.exists()  # a live process's temp file is never touched
    assert reclaim_abandoned_runs(instance, workspace) == []  # nothing left to do


def test_a_slot_held_by_a_finished_run_is_freed(workspace):
    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    finished = _add_run(instance, {"vup/launched_by": "ui"}, DagsterRunStatus.SUCCESS)
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("gpu")
    assert storage.claim_concurrency_slot("gpu", finished, "interpolate").is_claimed
    reclaim_abandoned_runs(instance, workspace)
    assert storage.get_concurrency_info("gpu").claimed_slots == []


def test_cli_runs_carry_their_process(workspace, tiny_clip, tmp_path):
    outcome = run_enhance(workspace, EnhanceRequest(input=tiny_clip, output=tmp_path / "o.mp4",
                                                    upscale=UpscaleConfig(scale=1), device="cpu"))
    assert outcome.success, outcome.error
    tags = DagsterInstance.get().get_run_by_id(outcome.run_id).tags
    assert tags[PID_TAG] == str(os.getpid()) and tags[HOST_TAG] == socket.gethostname()


# ------------------------------------------------------------------------------------------ a full disk


def _no_temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".*") if p.name not in (".cache",)]


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_disk_full_mid_run_fails_cleanly_and_the_rerun_resumes(how, clip, reference, tmp_path, monkeypatch):
    """The disk fills during the job (another program's files, here a filler file): the run fails with one line
    saying what to do, leaves no temporary file and no output, keeps its finished chunks; once space is freed the
    rerun reuses them and gives the same bytes as an uninterrupted run."""
    disk = tmp_path / "disk"
    with private_disk(disk, 40) as mounted:
        if how == "tmpfs" and not mounted:
            pytest.skip("mounting a tmpfs is not allowed here (not root); the injected variant covers it")
        workspace = Workspace(disk / "ws")
        monkeypatch.setenv("VUP_WORKSPACE", str(workspace.root))
        monkeypatch.setenv("DAGSTER_HOME", str(workspace.root / "dagster"))
        output = disk / "out" / "result.mp4"
        filler = disk / "filler.bin"
        if how == "tmpfs":
            # leave about 6 MB free: the job needs about 9 MB (chunks 7.8 MB), so it fills the disk mid-run
            filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 6 * 1024 * 1024))
        else:
            real_put = ChunkStore.put
            calls = {"n": 0}

            def put_with_enospc(self, stage, key, produce, **kwargs):
                def produce_then_fill(tmp: Path):
                    content = produce(tmp)
                    calls["n"] += 1
                    if calls["n"] == 15:  # the 3rd interpolated chunk: decode and upscale are done
                        raise ChunkError(f"{stage}: cannot write {tmp}") from OSError(errno.ENOSPC,
                                                                                      "No space left on device")
                    return content

                return real_put(self, stage, key, produce_then_fill, **kwargs)

            monkeypatch.setattr(ChunkStore, "put", put_with_enospc)
        events: list[dict] = []
        first = run_enhance(workspace, _request(clip, output), on_event=events.append)
        assert not first.success
        assert first.error.startswith("disk full while writing the ") and "\n" not in first.error
        assert "free space and rerun: finished chunks are kept and reused" in first.error
        assert not output.exists()
        scan = scan_store(workspace.chunks)
        assert scan.bad == [] and scan.orphans == [] and scan.temps == []
        assert _no_temp_files(workspace.outputs) == [] and not list(output.parent.glob(".*"))
        done = scan.committed
        assert done >= 6  # at least the decoded frames

        if how == "tmpfs":
            filler.unlink()  # space freed
        else:
            monkeypatch.setattr(ChunkStore, "put", real_put)
        estimate = estimate_request_space(_request(clip, output), probe_video(clip), workspace)
        assert estimate.credited > 0  # the rerun is priced for what is left, not the whole job
        validate_request(_request(clip, output))  # and fits
        events.clear()
        second = run_enhance(workspace, _request(clip, output), on_event=events.append)
        assert second.success, second.error
        reused, _computed = _chunk_events(events)
        assert reused == done
        assert sha256(output) == reference.sha256
        assert scan_store(workspace.chunks).temps == []


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_disk_full_during_the_encode_keeps_the_previous_output(how, clip, tmp_path, monkeypatch):
    """The encode itself hits ENOSPC (from ffmpeg or PyAV): DiskFullError, no temporary folder left, and the output
    path keeps what it held before."""
    from stages.media import encode as encode_module
    from stages.media.chunking import decode_video_rgb
    from stages.media.encode import EncodeInput, EncodeSettings, encode_video
    from stages.media.probe import frame_timestamps

    info = probe_video(clip)
    chunk = tmp_path / "chunk.nut"
    with ChunkWriter(chunk, info.width * 4, info.height * 4) as writer:
        import cv2

        for frame in decode_video_rgb(clip):
            writer.write(cv2.resize(frame, (info.width * 4, info.height * 4), interpolation=cv2.INTER_CUBIC))
    pts = tuple(int(p) for p in frame_timestamps(str(clip), info))
    disk = tmp_path / "disk"
    with private_disk(disk, 1) as mounted:
        if how == "tmpfs" and not mounted:
            pytest.skip("mounting a tmpfs is not allowed here (not root); the injected variant covers it")
        out = disk / "result.mp4"
        out.write_bytes(b"previous result")
        if how == "tmpfs":
            filler = disk / "filler.bin"
            filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 8 * 1024))  # 8 kB left: less than the video
        else:
            def mux_on_a_full_disk(*args, **kwargs):
                raise encode_module.EncodeError("encode: mux: ffmpeg failed with exit code 1: result.mp4: No space "
                                                "left on device; check the input files and settings above")

            monkeypatch.setattr(encode_module, "_mux", mux_on_a_full_disk)
        with pytest.raises(DiskFullError, match=r"disk full while writing the encoded video result.mp4 to .*rerun"):
            encode_video([EncodeInput(str(chunk), pts)], info, out, EncodeSettings(preset="veryfast"))
        assert out.read_bytes() == b"previous result"
        assert [p.name for p in disk.iterdir() if p.name.startswith(".")] == []


def test_chunk_store_turns_enospc_into_disk_full_and_leaves_no_temp_file(tmp_path):
    store = ChunkStore(tmp_path / "chunks")

    def fill(tmp: Path) -> ChunkContent:
        tmp.write_bytes(b"half a chunk")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(DiskFullError) as caught:
        store.put("upscaled", "k" * 32, fill, index=3, start_frame=30)
    message = str(caught.value)
    assert message.startswith("disk full while writing the upscaled chunk 3 to ")
    assert str(tmp_path / "chunks" / "upscaled") in message and "finished chunks are kept and reused" in message
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert list((tmp_path / "chunks" / "upscaled").iterdir()) == []

    def wrapped(tmp: Path) -> ChunkContent:  # a stage that wraps the OS error in its own
        raise ChunkError("interpolate: writing failed") from OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="the interpolated chunk 0"):
        store.put("interpolated", "j" * 32, wrapped, index=0, start_frame=0)

    def other(tmp: Path) -> ChunkContent:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):  # other errors stay what they are
        store.put("frames", "i" * 32, other, index=0, start_frame=0)


def test_atomic_writes_turn_enospc_into_disk_full(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError, match="disk full while writing summary.json to"):
        atomic_write_bytes(tmp_path / "summary.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_to_a_full_disk_keeps_the_previous_output(tmp_path, monkeypatch):
    from orchestration.graphs import common as chunk_steps
    cached = tmp_path / "cache" / "video.mp4"
    cached.parent.mkdir()
    cached.write_bytes(b"new result")
    target = tmp_path / "elsewhere" / "result.mp4"
    target.parent.mkdir()
    target.write_bytes(b"previous result")

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def full_copy(src, dst):
        Path(dst).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chunk_steps.os, "link", cross_device)
    monkeypatch.setattr(chunk_steps.shutil, "copyfile", full_copy)
    with pytest.raises(DiskFullError, match="disk full while writing the output result.mp4"):
        chunk_steps.deliver_file(cached, target)
    assert target.read_bytes() == b"previous result" and sorted(p.name for p in target.parent.iterdir()) == [
        "result.mp4"]


# ------------------------------------------------------------------------------------------ before a job


def test_the_estimate_covers_the_real_use_within_3x(tmp_path):
    """Estimate (orchestration.launch.diskcheck) against the peak bytes real runs add (a private tmpfs where allowed): at
    least the real use, at most 3x. Two clips: a photo filmed by a moving camera through every stage, and noise,
    the chunk codec's worst case (the model turns it into texture: its output costs 1.6x the source per pixel)."""
    photo = make_clip(tmp_path, SPEC)
    noise = tmp_path / "noise.mp4"
    from stages.media.ffmpeg import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", "nullsrc=size=64x48:rate=12:duration=1.5", "-vf",
                "geq=random(1)*255:128:128,format=yuv420p", "-c:v", "libx264", "-crf", "10", str(noise)])
    cases = [disk_case("photo", photo, tmp_path, size_mb=64), disk_case("noise", noise, tmp_path, size_mb=64)]
    for case in cases:
        print(f"{case.name}: estimate {case.estimate} B, peak use {case.actual} B, ratio {case.ratio:.2f}, "
              f"chunks {case.chunks_estimate} / {case.chunks_actual} B, per stage {case.stage_bytes_per_pixel}")
        assert case.chunks_estimate >= case.chunks_actual
        assert 1.0 <= case.ratio <= 3.0, case


@pytest.mark.parametrize("how", ["tmpfs", "patched"])
def test_enhance_refuses_a_job_that_does_not_fit_with_the_numbers(how, clip, tmp_path, monkeypatch, capsys):
    disk = tmp_path / "disk"
    with private_disk(disk, 2) as mounted:
        if how == "tmpfs" and not mounted:
            pytest.skip("mounting a tmpfs is not allowed here (not root); the patched variant covers it")
        if how == "patched":
            monkeypatch.setattr(diskspace, "free_bytes", lambda path: 1_500_000)
        monkeypatch.setenv("VUP_WORKSPACE", str(disk / "ws"))  # the CLI sets both; restored after the test
        monkeypatch.setenv("DAGSTER_HOME", str(disk / "ws" / "dagster"))
        out = disk / "out.mp4"
        code = main(["enhance", str(clip), "-o", str(out), "--workspace", str(disk / "ws"), "--scale", "4",
                     "--interpolate", "2", "--interp-method", "flow", "--temporal", "flow", "--chunk-seconds",
                     "0.25", "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith("error: disk: this job needs about ") and "\n" not in err
        assert " MB is free; free " in err and "(--workspace / VUP_WORKSPACE)" in err
        assert "chunks " in err and "output " in err
        assert not out.exists() and not list((disk / "ws" / "chunks").rglob("*.nut"))


def test_an_output_on_another_disk_is_checked_too(clip, workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(diskspace, "same_disk", lambda a, b: False)
    monkeypatch.setattr(diskspace, "free_bytes",
                        lambda path: 1_000 if "elsewhere" in str(path) else 10**12)
    from orchestration.launch import diskcheck
    monkeypatch.setattr(diskcheck, "same_disk", lambda a, b: False)
    (tmp_path / "elsewhere").mkdir()
    request = _request(clip, tmp_path / "elsewhere" / "out.mp4")
    with pytest.raises(DiskSpaceError, match=r"disk: the output needs about .* is free; free .* another folder \(-o\)"):
        validate_request(request)
    monkeypatch.setenv(diskspace.CHECK_ENV, "0")
    validate_request(request)  # VUP_DISK_CHECK=0 turns the check off


def test_is_disk_full_reads_the_whole_chain():
    import sqlite3

    assert diskspace.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert diskspace.is_disk_full(sqlite3.OperationalError("database or disk is full"))
    wrapped = RuntimeError("encode failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert diskspace.is_disk_full(wrapped)
    assert not diskspace.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert diskspace.human_bytes(3_240_000_000) == "3.2 GB" and diskspace.human_bytes(999) == "999 B"


def test_manifests_carry_no_temp_names(tmp_path):
    """What the kill trials read: the scan tells valid, bad, orphan and temporary files apart."""
    folder = tmp_path / "chunks" / "frames"
    folder.mkdir(parents=True)
    (folder / "a.nut").write_bytes(b"x")
    (folder / "a.json").write_text(json.dumps({"key": "a", "size_bytes": 1, "sha256": sha256(folder / "a.nut")}))
    (folder / "b.nut").write_bytes(b"y")
    (folder / "c.json").write_text("{broken")
    (folder / ".d.123.tmp.nut").write_bytes(b"")
    (folder / "a.lock").write_bytes(b"")
    scan = scan_store(tmp_path / "chunks")
    assert scan.committed == 1 and scan.bad == ["frames/c.json"] and scan.orphans == ["frames/b.nut"]
    assert scan.temps == ["frames/.d.123.tmp.nut"]


def test_estimate_prices_only_the_stages_that_write_and_credits_what_is_stored():
    stages = (diskspace.StageSize("upscale", 10, 400, 200), diskspace.StageSize("interpolate", 20, 400, 200))
    shape = diskspace.JobShape(width=100, height=50, frames=10, bit_depth=8, duration=1.0, stages=stages, chunks=2)
    full = diskspace.estimate_job_space(shape, 2.0)
    assert full.chunks["frames"] == pytest.approx(100 * 50 * 10 * 2.0 * diskspace.FRAMES_MARGIN, abs=1)
    assert full.chunks["upscale"] == pytest.approx(400 * 200 * 10 * 3.3, abs=1)  # 2.0 x 1.65
    assert full.chunks["interpolate"] == pytest.approx(400 * 200 * 20 * 3.3, abs=1)
    assert "cohere" not in full.chunks  # a step that passes through writes nothing
    noisy = diskspace.estimate_job_space(shape, 3.0)
    assert noisy.chunks["upscale"] == pytest.approx(400 * 200 * 10 * 3.5, abs=1)  # the codec's worst case at most
    half = diskspace.estimate_job_space(shape, 2.0, done={"frames": 1.0, "upscale": 0.5, "encode": 1.0})
    assert half.chunks["frames"] == 0 and half.chunks["upscale"] == pytest.approx(full.chunks["upscale"] / 2, abs=1)
    assert half.encode == 0 and half.credited == full.workspace_bytes - half.workspace_bytes
    assert full.output == 0 and diskspace.estimate_job_space(shape, 2.0, output_elsewhere=True).output > 0


def test_the_watchdog_sensor_ends_a_daemon_run_whose_worker_died(workspace):
    """A daemon-launched run's worker tags its process; once that process is gone the sensor ends the run, so the
    run-retry daemon relaunches it."""
    from dagster import build_sensor_context

    from orchestration.resources.core import WorkspaceResource
    from orchestration.sensors.watchdog import abandoned_runs_sensor

    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    dead = _add_run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: socket.gethostname(), "vup/launched_by": "ui"})
    alive = _add_run(instance, {**process_tags(), "vup/launched_by": "inbox"})
    context = build_sensor_context(instance=instance, resources={"workspace": WorkspaceResource(root=str(workspace.root))})
    result = abandoned_runs_sensor(context)
    assert "ended 1 run(s)" in result.skip_message and dead in result.skip_message
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == DagsterRunStatus.STARTED
    assert abandoned_runs_sensor(context).skip_message == "no run lost its worker"


def test_every_run_worker_tags_its_process(workspace, tiny_clip):
    """Runs not started by the CLI (daemon, Dagster UI) get their worker's pid when their resources start."""
    from dagster import materialize

    from orchestration.graphs.enhance import video_probe
    from orchestration.resources.core import WorkspaceResource
    from orchestration.resources.workspace import register_video

    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    key = register_video(workspace, tiny_clip).key
    instance.add_dynamic_partitions("videos", [key])
    result = materialize([video_probe], instance=instance, partition_key=key,
                         resources={"workspace": WorkspaceResource(root=str(workspace.root))})
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[PID_TAG] == str(os.getpid()) and tags[HOST_TAG] == socket.gethostname()
