"""The reframe job through Dagster: a generated clip with a moving marker, crop keyframes that follow it, the crop
checked frame by frame in the output; the CLI; and POST /api/export/upscale through FastAPI's test client (the run
goes through Dagster in this process)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestration.cli import main
from orchestration.graphs.reframe import REFRAME_JOB
from orchestration.launch.runner import ReframeRequest, run_reframe
from orchestration.launch.service import DagsterService
from orchestration.resources.workspace import prepare_dagster_home
from stages.media.chunking import decode_video_rgb
from stages.media.probe import probe_video
from stages.quality.samples import make_sample_clip
from ui.export_api import EXPORT_PATH, build_export_router

WIDTH, HEIGHT, FPS, FRAMES = 128, 72, 24, 24
MARKER = 6
CROP = (48, 27)


def _marker_at(index: int) -> tuple[float, float]:
    """Top-left corner of the marker in frame ``index``: a straight line across the frame."""
    t = index / (FRAMES - 1)
    return 30 + 50 * t, 16 + 24 * t


def _marker_clip(path: Path) -> Path:
    """A lossless H.264 (4:4:4) clip: a dim texture with a bright square moving in a straight line."""
    rng = np.random.default_rng(3)
    texture = (40 + rng.integers(0, 30, size=(HEIGHT, WIDTH, 1))).repeat(3, axis=2).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.options = {"qp": "0"}
        for index in range(FRAMES):
            frame = texture.copy()
            x, y = (round(v) for v in _marker_at(index))
            frame[y:y + MARKER, x:x + MARKER] = 250
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video.pts = index
            video.time_base = Fraction(1, FPS)
            for packet in stream.encode(video.reformat(format="yuv444p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _keyframes() -> list[dict]:
    """A crop centred on the marker at the first and the last frame (linear motion: it stays centred)."""
    boxes = []
    for index in (0, FRAMES - 1):
        x, y = _marker_at(index)
        boxes.append({"time": index / FPS, "x": x + MARKER / 2 - CROP[0] / 2, "y": y + MARKER / 2 - CROP[1] / 2,
                      "width": CROP[0], "height": CROP[1]})
    return boxes


def _centroid(frame: np.ndarray) -> tuple[float, float]:
    grey = frame.astype(np.float64).mean(axis=2)
    mask = grey > 0.6 * grey.max()
    rows, cols = np.nonzero(mask)
    return float(cols.mean()), float(rows.mean())


@pytest.fixture(scope="module")
def marker_clip(tmp_path_factory) -> Path:
    return _marker_clip(tmp_path_factory.mktemp("reframe") / "marker.mp4")


def test_the_crop_follows_the_keyframes_frame_by_frame(workspace, marker_clip, tmp_path):
    target = (96, 54)  # x2 of the crop: the model runs
    out = tmp_path / "reframed.mp4"
    outcome = run_reframe(workspace, ReframeRequest(input=marker_clip, keyframes=json.dumps(_keyframes()),
                                                    target_fps=FPS, target=target, output=out))
    assert outcome.success, outcome.error
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (*target, FRAMES) and info.avg_fps == pytest.approx(FPS)
    scale = target[0] / CROP[0]
    centre = (target[0] / 2 - 0.5, target[1] / 2 - 0.5)
    for index, frame in enumerate(decode_video_rgb(out)):
        x, y = _centroid(frame)
        # the marker stays in the middle of every frame: the crop moved with it (within a source pixel)
        assert abs(x - centre[0]) <= scale and abs(y - centre[1]) <= scale, (index, x, y)
    assert outcome.result["model"] != "none"
    run = DagsterInstance.get().get_run_records(RunsFilter(job_name=REFRAME_JOB))[0]
    assert run.dagster_run.status == DagsterRunStatus.SUCCESS
    assert run.dagster_run.tags["dagster/partition"] == outcome.partition_key


def test_a_still_crop_after_the_last_keyframe_is_held(workspace, marker_clip, tmp_path):
    """One keyframe: the crop holds for the whole clip, so the marker crosses the output frame."""
    left, top, width, height = 40, 20, 48, 28
    keyframes = [{"time": 0, "x": left, "y": top, "width": width, "height": height}]
    out = tmp_path / "held.mp4"
    outcome = run_reframe(workspace, ReframeRequest(input=marker_clip, keyframes=keyframes, target_fps=FPS,
                                                    target=(width, height), output=out))
    assert outcome.success, outcome.error
    assert outcome.result["model"] == "none"  # the crop is already the target size: no model, a plain crop
    checked = 0
    for index, frame in enumerate(decode_video_rgb(out)):
        x, y = (round(v) for v in _marker_at(index))
        if left <= x and x + MARKER <= left + width and top <= y and y + MARKER <= top + height:
            cx, cy = _centroid(frame)
            assert abs(cx - (x + MARKER / 2 - 0.5 - left)) <= 0.5 and abs(cy - (y + MARKER / 2 - 0.5 - top)) <= 0.5
            checked += 1
    assert checked >= 5


def test_the_cli_reframes_to_the_target_from_the_aspect_and_30_fps(workspace, tmp_path, capsys):
    clip = make_sample_clip(tmp_path / "wide.mp4", width=160, height=90, seconds=0.5, fps=24, audio=True)
    keyframes = tmp_path / "keyframes.json"
    keyframes.write_text(json.dumps([{"time": 0, "x": 0, "y": 0, "width": 80, "height": 45},
                                     {"time": 0.4, "x": 80, "y": 45, "width": 80, "height": 45}]))
    out = tmp_path / "out.mp4"
    assert main(["reframe", str(clip), "--keyframes", str(keyframes), "--size", "160x90", "--easing", "ease",
                 "-o", str(out), "-q"]) == 0
    info = probe_video(out)
    assert (info.width, info.height) == (160, 90) and info.avg_fps == pytest.approx(30.0)
    assert info.frame_count == 15 and len(info.audio_streams) == 1
    assert "output:" in capsys.readouterr().out


@pytest.mark.parametrize(("keyframes", "message"), [
    ('[{"time": 0, "x": 100, "y": 0, "width": 80, "height": 45}]', "outside the 160x90 frame"),
    ('[{"time": 0, "x": 0, "y": 0, "width": 0, "height": 45}]', "width"),
    (('[{"time": 1, "x": 0, "y": 0, "width": 80, "height": 45}, {"time": 0, "x": 0, "y": 0, "width": 80, '
     '"height": 45}]'), "time"),
    ("not json", "JSON"),
])
def test_the_cli_refuses_bad_keyframes_before_any_run(workspace, tmp_path, capsys, keyframes, message):
    clip = make_sample_clip(tmp_path / "wide.mp4", width=160, height=90, seconds=0.5, fps=24, audio=False)
    path = tmp_path / "k.json"
    path.write_text(keyframes)
    assert main(["reframe", str(clip), "--keyframes", str(path), "-q"]) == 2
    assert message in capsys.readouterr().err
    assert not DagsterInstance.get().get_run_records(RunsFilter(job_name=REFRAME_JOB))


class InProcessService(DagsterService):
    """The page's service, but each reframe runs through Dagster in this process (no webserver needed)."""

    def submit_reframe(self, request, *, sha256=None, info=None):
        outcome = run_reframe(self.workspace, request, info=info)
        return outcome.run_id, Path(outcome.output or self.workspace.outputs / "missing.mp4")


@pytest.fixture
def api(workspace):
    prepare_dagster_home(workspace)

    def make(credentials=None):
        app = FastAPI()
        service = InProcessService(workspace, "http://127.0.0.1:9", instance=DagsterInstance.get())
        app.include_router(build_export_router(service, credentials=credentials, timeout=60))
        return TestClient(app)

    return make


def test_the_endpoint_returns_the_reframed_mp4(api, tmp_path):
    clip = make_sample_clip(tmp_path / "wide.mp4", width=160, height=90, seconds=0.5, fps=24, audio=True)
    keyframes = [{"time": 0, "x": 10, "y": 5, "width": 48, "height": 27},
                 {"time": 0.4, "x": 100, "y": 60, "width": 48, "height": 27}]
    with clip.open("rb") as handle:
        response = api().post(EXPORT_PATH, files={"video": ("wide.mp4", handle, "video/mp4")},
                              data={"keyframes_json": json.dumps(keyframes), "size": "96x54"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4" and response.headers["x-run-id"]
    out = tmp_path / "answer.mp4"
    out.write_bytes(response.content)
    info = probe_video(out)
    assert (info.width, info.height) == (96, 54) and info.avg_fps == pytest.approx(30.0)  # target_fps default 30
    assert info.frame_count == 15 and len(info.audio_streams) == 1
    run = DagsterInstance.get().get_run_record_by_id(response.headers["x-run-id"])
    assert run.dagster_run.job_name == REFRAME_JOB and run.dagster_run.status == DagsterRunStatus.SUCCESS


def test_the_endpoint_answers_errors_as_json(api, tmp_path):
    clip = make_sample_clip(tmp_path / "wide.mp4", width=160, height=90, seconds=0.5, fps=24, audio=False)
    client = api()
    outside = '[{"time": 0, "x": 150, "y": 0, "width": 48, "height": 27}]'
    with clip.open("rb") as handle:
        response = client.post(EXPORT_PATH, files={"video": ("wide.mp4", handle, "video/mp4")},
                               data={"keyframes_json": outside})
    assert response.status_code == 422 and "outside the 160x90 frame" in response.json()["error"]
    response = client.post(EXPORT_PATH, files={"video": ("notes.txt", b"hello", "text/plain")},
                           data={"keyframes_json": outside})
    assert response.status_code == 400 and "upload:" in response.json()["error"]
    response = client.post(EXPORT_PATH, data={"keyframes_json": outside})
    assert response.status_code == 422  # no video field
    with clip.open("rb") as handle:
        response = client.post(EXPORT_PATH, files={"video": ("wide.mp4", handle, "video/mp4")},
                               data={"keyframes_json": outside.replace("150", "0"), "target_fps": "500"})
    assert response.status_code == 422 and "120" in response.json()["error"]
    assert not DagsterInstance.get().get_run_records(RunsFilter(job_name=REFRAME_JOB))


def test_the_endpoint_needs_the_pages_login(api, tmp_path):
    client = api(credentials=[("ana", "s3cret")])
    response = client.post(EXPORT_PATH, data={"keyframes_json": "[]"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Basic"
    response = client.post(EXPORT_PATH, data={"keyframes_json": "[]"}, auth=("ana", "wrong"))
    assert response.status_code == 401
    response = client.post(EXPORT_PATH, files={"video": ("notes.txt", b"x", "text/plain")},
                           data={"keyframes_json": "[]"}, auth=("ana", "s3cret"))
    assert response.status_code == 400  # past the login, refused for what it is
