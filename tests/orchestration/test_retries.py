"""Transient step failures are retried by Dagster's RetryPolicy; permanent ones fail at once with their message."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from dagster import DagsterEventType, DagsterInstance

import orchestration.assets as assets
from orchestration.config import ChunkPlanConfig, EncodeConfig, MetricsConfig, UpscaleConfig
from orchestration.retries import RETRY_POLICY, is_transient
from orchestration.runner import EnhanceRequest, run_enhance
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


def test_every_enhance_asset_has_the_retry_policy():
    for spec in assets.ENHANCE_ASSETS:
        assert spec.op.retry_policy == RETRY_POLICY, spec.op.name


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
