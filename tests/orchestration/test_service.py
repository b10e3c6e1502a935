"""orchestration.launch.service: what the page relies on, without a webserver (the live tests are in tests/ui)."""

from __future__ import annotations

import json
import os

import pytest

from orchestration.launch.eta import STAGE_PRIORS, _stages_of, estimate_progress
from orchestration.launch.options import (
    DEFAULT_SETTINGS,
    build_ui_request,
    load_settings,
    model_choices,
    plan_output,
    save_settings,
)
from orchestration.launch.service import system_info
from orchestration.launch.uploads import (
    UploadError,
    accept_upload,
    compare_frames,
    max_upload_bytes,
    preview_upload,
    safe_name,
)
from orchestration.resources.workspace import Workspace
from stages.errors import SettingsError
from stages.media.probe import probe_video
from stages.quality.samples import make_sample_clip


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_sample_clip(tmp_path_factory.mktemp("clip") / "my clip (1).mp4", width=64, height=48, seconds=2,
                            fps=8, audio=True)


@pytest.mark.parametrize(("name", "expected"), [
    ("holiday.mp4", "holiday.mp4"),
    ("../../etc/passwd.mp4", "passwd.mp4"),
    ("..\\..\\evil.MOV", "evil.mov"),
    ("a b;c'd\".mkv", "a_b_c_d.mkv"),
    (".hidden.webm", "hidden.webm"),
    ("", "video"),
    ("...", "video"),
    ("x" * 300 + ".mp4", "x" * 100 + ".mp4"),
])
def test_safe_name_keeps_no_folder_and_no_odd_characters(name, expected):
    assert safe_name(name) == expected


def test_accept_upload_stores_a_copy_under_the_workspace_and_describes_it(workspace, clip):
    upload = accept_upload(workspace, clip)
    assert upload.path.parent.parent == workspace.uploads
    assert upload.path.name == "my_clip_1.mp4" and upload.path.read_bytes() == clip.read_bytes()
    rows = dict(upload.rows())
    assert rows["resolution"] == "64x48" and rows["fps"] == "8" and "16 frames" in rows["duration"]
    assert "aac" in rows["audio"] and rows["video codec"].startswith("h264")
    again = accept_upload(workspace, clip, original_name="renamed.mp4")
    assert again.key == upload.key and again.path.parent == upload.path.parent


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.txt", b"hello", "is not a video file the page takes"),
    ("empty.mp4", b"", "is empty"),
    ("noise.mp4", os.urandom(4096), "is not a video the pipeline can read"),
])
def test_accept_upload_refuses_bad_files_with_the_reason(workspace, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError, match=message):
        accept_upload(workspace, path)
    assert not (workspace.uploads).exists() or not any((workspace.uploads).rglob("*.mp4"))


def test_accept_upload_refuses_a_file_above_the_limit(workspace, clip, monkeypatch):
    with pytest.raises(UploadError, match=r"above the .* limit; trim it, or raise the limit"):
        accept_upload(workspace, clip, max_bytes=100)
    monkeypatch.setenv("VUP_MAX_UPLOAD_MB", "0.0001")
    assert max_upload_bytes() == int(0.0001 * (1 << 20))
    monkeypatch.setenv("VUP_MAX_UPLOAD_MB", "lots")
    with pytest.raises(SettingsError, match="not a number"):
        max_upload_bytes()


def test_plan_output_warns_above_4k_and_refuses_above_8k_or_120_fps():
    plan = plan_output(1280, 720, 30.0, 2)
    assert (plan.width, plan.height, plan.fps, plan.warning, plan.error) == (2560, 1440, 30.0, None, None)
    assert plan.describe() == "2560x1440 at 30 fps"
    assert "above 4K" in plan_output(1280, 720, 30.0, 4).warning
    assert "8K limit" in plan_output(1920, 1080, 30.0, 8).error
    assert plan_output(640, 360, 30.0, 2, "flow", factor=2).fps == 60.0
    assert plan_output(640, 360, 24.0, 2, "flow", target_fps="60").fps == 60.0
    assert "120 fps" in plan_output(640, 360, 30.0, 2, "flow", factor=8).error
    assert "120 fps" in plan_output(640, 360, 30.0, 2, "flow", target_fps="144").error


def test_settings_are_remembered_and_bad_values_ignored(workspace):
    assert load_settings(workspace) == DEFAULT_SETTINGS
    save_settings(workspace, {"crf": 22, "temporal": "flow", "fp16": True, "scale": "four", "nonsense": 1})
    stored = load_settings(workspace)
    assert stored["crf"] == 22 and stored["temporal"] == "flow" and stored["fp16"] is True
    assert stored["scale"] == 4 and "nonsense" not in stored
    (workspace.root / "ui-settings.json").write_text("{broken")
    assert load_settings(workspace) == DEFAULT_SETTINGS


def test_build_ui_request_maps_the_page_choices_and_validates_them(workspace, clip):
    upload = accept_upload(workspace, clip)
    request = build_ui_request(workspace, upload, {
        "scale": 2, "temporal": "ema", "crf": 20, "container": "mkv", "device": "cpu", "fp16": False,
        "interpolate": 2, "interp_method": "flow", "chunk_seconds": 1.0, "batch": 0, "codec": "h264"})
    assert request.output == workspace.outputs / upload.key / "my_clip_1_enhanced.mkv"
    assert request.upscale.scale == 2 and request.temporal.method == "ema" and request.encode.crf == 20
    assert request.interpolate.method == "flow" and request.interpolate.factor == 2
    assert request.device == "cpu" and request.precision == "auto"
    assert (workspace.videos / f"{upload.key}.json").exists()
    with pytest.raises(SettingsError, match="120 fps"):
        build_ui_request(workspace, upload, {"fps": "240", "interp_method": "flow"})
    with pytest.raises(SettingsError, match="unknown setting"):
        build_ui_request(workspace, upload, {"output_path": "/etc/x.mp4"})
    with pytest.raises(SettingsError, match="page chooses the output name"):
        build_ui_request(workspace, upload, {"output": "../x.mp4"})
    with pytest.raises(SettingsError, match="container"):
        build_ui_request(workspace, upload, {"container": "avi"})


def test_preview_upload_is_the_first_seconds_as_its_own_partition(workspace, clip):
    upload = accept_upload(workspace, clip)
    preview = preview_upload(workspace, upload, seconds=1.0)
    assert preview.key != upload.key and preview.path.parent.parent == workspace.uploads
    info = probe_video(preview.path)
    assert info.frame_count == 8 and (info.width, info.height) == (64, 48) and info.audio_streams
    assert preview_upload(workspace, upload, seconds=10.0) == upload  # already short enough


def test_compare_frames_have_the_output_size(clip, tmp_path):
    big = make_sample_clip(tmp_path / "big.mp4", width=128, height=96, seconds=1, fps=8, audio=False)
    before, after = compare_frames(clip, big, 0.5)
    assert before.shape == after.shape == (96, 128, 3)


def test_model_choices_mark_unavailable_models_with_the_reason():
    choices = model_choices(memory_bytes=1 << 40)
    assert choices and all(c.scale >= 1 and c.description for c in choices)
    assert any(c.available for c in choices)
    for choice in choices:
        assert choice.available == (choice.reason is None)
        assert ("unavailable" in choice.label) != choice.available
    usable = {c.id for c in choices if c.available}
    tiny = model_choices(memory_bytes=1 << 20)
    assert not any(c.available for c in tiny)
    assert all("of memory" in c.reason for c in tiny if c.id in usable)


def _events(stage, seconds, chunks=4, reused=False):
    return [{"stage": stage, "chunk": i, "chunks": chunks, "frames": 10, "reused": reused, "seconds": s}
            for i, s in enumerate(seconds)]


def test_eta_comes_from_measured_chunks_and_priors():
    stages = ["frames", "upscale", "encode", "report"]
    fraction, stage, eta = estimate_progress([], stages)
    assert (fraction, eta) == (0.0, None)
    fraction, stage, eta = estimate_progress(_events("frames", [0.1] * 4), stages)
    assert stage == "frames" and eta is None and 0 < fraction < 1
    events = _events("frames", [0.1] * 4) + _events("upscale", [10.0, 10.0])
    fraction, stage, eta = estimate_progress(events, stages)
    expected_left = 2 * 10.0 + 4 * STAGE_PRIORS["encode"] * 10 + 4 * STAGE_PRIORS["report"] * 10
    assert stage == "upscale" and eta == pytest.approx(expected_left)
    assert fraction == pytest.approx(20.4 / (20.4 + expected_left))
    done = events + _events("upscale", [10.0, 10.0])[:2] + _events("encode", [1.0] * 4) + _events("report", [2.0] * 4)
    fraction, stage, eta = estimate_progress(done, stages)
    assert fraction == 1.0 and eta == 0.0 and stage == "report"


def test_eta_ignores_reused_chunks_and_scales_stages_after_interpolation():
    stages = ["frames", "upscale", "interpolate", "encode", "report"]
    events = _events("frames", [0.1] * 2, chunks=2) + _events("upscale", [4.0], chunks=2)
    _, _, eta1 = estimate_progress(events, stages, frame_ratio=1.0)
    _, _, eta2 = estimate_progress(events, stages, frame_ratio=2.0)
    assert eta2 > eta1
    cached = _events("frames", [0.0] * 2, chunks=2, reused=True) + _events("upscale", [0.0] * 2, chunks=2,
                                                                            reused=True)
    fraction, stage, eta = estimate_progress(cached + _events("interpolate", [3.0], chunks=2), stages)
    # upscale all reused: the unit comes from the interpolate chunk (3 s / its prior)
    unit = 3.0 / STAGE_PRIORS["interpolate"]
    assert eta == pytest.approx(3.0 + 2 * unit * (STAGE_PRIORS["encode"] + STAGE_PRIORS["report"]))


def test_stages_of_a_run_follow_its_config():
    from orchestration.graphs.enhance_steps import enhance_run_config
    from orchestration.resources.config import (
        EncodeConfig,
        InterpolateConfig,
        TemporalConfig,
        UpscaleConfig,
    )

    plain = enhance_run_config(encode=EncodeConfig(output_path="/o.mp4"))
    assert _stages_of(plain) == (["frames", "upscale", "cohere", "encode", "report"], 1.0, "/o.mp4")  # auto: on
    full = enhance_run_config(upscale=UpscaleConfig(scale=1), interpolate=InterpolateConfig(method="flow", factor=4),
                              temporal=TemporalConfig(method="ema"))
    assert _stages_of(full)[:2] == (["frames", "interpolate", "cohere", "encode", "report"], 4.0)


def test_system_info_names_device_memory_versions_and_dagster(workspace):
    rows = dict(system_info(workspace, "http://127.0.0.1:3000"))
    assert {"device", "memory", "CPU", "versions", "Dagster instance", "Dagster UI"} <= set(rows)
    assert "dagster" in rows["versions"] and rows["Dagster UI"] == "http://127.0.0.1:3000"
    json.dumps(rows)


def test_eta_leaves_out_the_warm_up_chunk_and_learns_priors_from_finished_runs():
    from orchestration.launch.eta import learn_priors

    stages = ["frames", "upscale", "encode", "report"]
    slow_first = _events("frames", [0.1] * 4) + _events("upscale", [30.0, 10.0, 10.0])
    _, _, eta = estimate_progress(slow_first, stages)
    assert eta == pytest.approx(10.0 + 4 * 10.0 * (STAGE_PRIORS["encode"] + STAGE_PRIORS["report"]))
    # a finished run on this machine where encoding cost half an upscale chunk and the report a tenth
    finished = _events("upscale", [20.0, 10.0, 10.0]) + _events("encode", [5.0] * 3) + _events("report", [1.0] * 3)
    learned = learn_priors([(finished, stages, 1.0)])
    assert learned["encode"] == pytest.approx(0.5) and learned["report"] == pytest.approx(0.1)
    assert learned["cohere"] == STAGE_PRIORS["cohere"]
    _, _, eta = estimate_progress(slow_first, stages, priors=learned)
    assert eta == pytest.approx(10.0 + 4 * 10.0 * 0.6)
    assert learn_priors([]) == STAGE_PRIORS


def test_a_submission_waits_for_a_starting_code_server(workspace, monkeypatch):
    """Right after `vup serve` (or under load) the code server may not answer yet: Dagster launched nothing, so the
    page tries again for a while instead of refusing the run; other refusals are reported at once."""
    from dagster import DagsterInstance
    from dagster_graphql import DagsterGraphQLClientError

    from orchestration.launch import service as service_module

    calls: list[str] = []

    class Client:
        def __init__(self, failures: int, message: str) -> None:
            self.failures, self.message = failures, message

        def submit_job_execution(self, job, run_config, tags):
            calls.append(job)
            if len(calls) <= self.failures:
                raise DagsterGraphQLClientError("PythonError", self.message)
            return "run-1"

    monkeypatch.setattr(service_module.time, "sleep", lambda _s: None)
    svc = service_module.DagsterService(workspace, "http://127.0.0.1:1", instance=DagsterInstance.ephemeral())
    unreachable = "dagster._core.errors.DagsterUserCodeUnreachableError: Could not reach user code server."
    monkeypatch.setattr(svc, "_client", lambda: Client(2, unreachable))
    assert svc._submit("enhance_job", "videos", "k1", {}, {}, "ui") == "run-1" and len(calls) == 3
    calls.clear()
    monkeypatch.setattr(svc, "_client", lambda: Client(5, "InvalidOutputError: bad config"))
    with pytest.raises(Exception, match="Dagster refused the run"):
        svc._submit("enhance_job", "videos", "k2", {}, {}, "ui")
    assert len(calls) == 1
