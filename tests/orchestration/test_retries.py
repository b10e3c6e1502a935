"""Transient step failures are retried by Dagster's RetryPolicy; permanent ones fail at once with their message."""

from __future__ import annotations

import errno
import sqlite3
import threading
from dataclasses import replace

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from orchestration.graphs import enhance as assets
from orchestration.graphs.retries import (
    MAX_RUNTIME_ENV,
    RETRY_POLICY,
    is_transient,
    limit_tags,
    max_runtime_seconds,
)
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    MetricsConfig,
    UpscaleConfig,
)
from stages.errors import DeviceOutOfMemoryError, InputError, SettingsError


@pytest.mark.parametrize(("exc", "transient"), [
    (OSError(errno.EBUSY, "Device or resource busy"), True),
    (OSError(errno.EAGAIN, "Resource temporarily unavailable"), True),
    (TimeoutError("timed out"), True),
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (sqlite3.OperationalError("database is locked"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (FileNotFoundError(errno.ENOENT, "gone"), False),
    (SettingsError("upscale: tile 30 is not a multiple of 8; use 32"), False),
    (DeviceOutOfMemoryError("upscale: out of memory"), False),
    (KeyError("bug"), False),
])
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_retries_come_from_the_wrapper_not_an_asset_retry_policy():
    """Dagster retries an interrupted step that has a retry_policy, which would undo a cancel."""
    for spec in assets.ENHANCE_ASSETS:
        assert spec.op.retry_policy is None, spec.op.name
        assert spec.op.compute_fn.decorated_fn.__wrapped__, spec.op.name  # retry_transient_only
    assert RETRY_POLICY.max_retries == 3


def _request(clip, out):
    return EnhanceRequest(input=clip, output=out, chunk=ChunkPlanConfig(chunk_seconds=1.0),
                          upscale=UpscaleConfig(scale=2), encode=EncodeConfig(preset="ultrafast"),
                          metrics=MetricsConfig(), device="cpu")


def _step_events(run_id: str, step: str, kind: DagsterEventType) -> int:
    records = DagsterInstance.get().all_logs(run_id, of_type=kind)
    return sum(1 for r in records if r.step_key == step)


def test_a_busy_file_is_retried_and_the_run_succeeds(workspace, tiny_clip, tmp_path, monkeypatch):
    real = assets.probe_video
    calls = []

    def busy_once(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        return real(path)

    monkeypatch.setattr(assets, "probe_video", busy_once)
    outcome = run_enhance(workspace, _request(tiny_clip, tmp_path / "out.mp4"))
    assert outcome.success, outcome.error
    assert len(calls) == 2
    assert _step_events(outcome.run_id, "video_probe", DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert (tmp_path / "out.mp4").is_file()


def test_a_permanent_error_is_not_retried_and_keeps_its_message(workspace, tiny_clip, tmp_path, monkeypatch):
    calls = []

    def unreadable(path):
        calls.append(path)
        raise InputError("probe: the file is not a video; pick a video file (mp4, mkv, mov, ...)")

    monkeypatch.setattr(assets, "probe_video", unreadable)
    outcome = run_enhance(workspace, _request(tiny_clip, tmp_path / "out.mp4"))
    assert not outcome.success
    assert len(calls) == 1
    assert _step_events(outcome.run_id, "video_probe", DagsterEventType.STEP_UP_FOR_RETRY) == 0
    assert outcome.error == "probe: the file is not a video; pick a video file (mp4, mkv, mov, ...)"
    assert not (tmp_path / "out.mp4").exists()


def test_max_runtime_settings(monkeypatch):
    monkeypatch.delenv(MAX_RUNTIME_ENV, raising=False)
    assert max_runtime_seconds() == 24 * 3600
    assert limit_tags() == {"dagster/max_runtime": str(24 * 3600)}
    assert max_runtime_seconds(0.5) == 1800 and limit_tags(0) == {}
    monkeypatch.setenv(MAX_RUNTIME_ENV, "2")
    assert limit_tags() == {"dagster/max_runtime": "7200"}
    monkeypatch.setenv(MAX_RUNTIME_ENV, "soon")
    with pytest.raises(SettingsError, match="VUP_MAX_RUNTIME_HOURS='soon' is not a number"):
        max_runtime_seconds()
    with pytest.raises(SettingsError, match="impossible"):
        max_runtime_seconds(-1)


def test_a_hung_step_is_ended_by_the_max_runtime(workspace, tiny_clip, tmp_path, monkeypatch):
    release = threading.Event()

    def hang(path):
        release.wait(120)
        # the stopped run's thread goes on in the background: end it here, so it never runs the pipeline into
        # the next tests (a later test's monkeypatched model would count its calls)
        raise InputError(f"test: {path} released after the max runtime")

    monkeypatch.setattr(assets, "probe_video", hang)
    out = tmp_path / "out.mp4"
    request = replace(_request(tiny_clip, out), max_runtime_hours=3 / 3600)
    try:
        outcome = run_enhance(workspace, request)
        run = DagsterInstance.get().get_run_by_id(outcome.run_id)
    finally:
        release.set()
    assert not outcome.success and 3 <= outcome.seconds < 60
    assert outcome.error.startswith("limits: the run passed its max runtime of 3 s and was stopped")
    assert run.status == DagsterRunStatus.FAILURE and run.tags["dagster/max_runtime"] == "3"
    assert not out.exists()


def test_a_failed_run_reaches_the_terminal_as_one_line(workspace, tiny_clip, tmp_path, monkeypatch, capfd):
    """A bug deep in a step: the CLI prints its one error line; the traceback stays in the run's event log."""
    from orchestration.cli import main
    def bug(path):
        raise KeyError("no such stream")

    monkeypatch.setattr(assets, "probe_video", bug)
    capfd.readouterr()
    code = main(["enhance", str(tiny_clip), "-o", str(tmp_path / "out.mp4"), "--device", "cpu", "--scale", "2", "-q"])
    out, err = capfd.readouterr()
    assert code == 1
    assert "Traceback" not in out + err and "Stack Trace" not in out + err and 'File "' not in out + err
    assert "error: 'no such stream'" in err
    assert not (tmp_path / "out.mp4").exists()
