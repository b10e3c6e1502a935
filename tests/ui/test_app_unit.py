"""The page's handlers, without a browser or a live Dagster: a fake service and a real temporary workspace."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from orchestration.launch.options import ModelChoice, load_settings
from orchestration.launch.service import RunProgress, RunRow
from orchestration.resources.workspace import Workspace
from stages.quality.samples import make_sample_clip
from ui import app as page

MODELS = [
    ModelChoice("toy-x4", "toy-x4 (x4)", "A toy model for tests.", 4, True, None),
    ModelChoice("big-x4", "big-x4 (x4) - unavailable", "A model too big for this machine.", 4, False,
                "needs about 9.0 GB of memory, 1.0 GB free"),
]
METHODS = [("auto", None), ("rife", "no RIFE weights on this machine"), ("flow", None), ("blend", None),
           ("minterpolate", None)]
RUN_ID = "0123456789abcdef-run"


class FakeService:
    """What the page uses of DagsterService, recording what it is asked."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.webserver_url = "http://dagster.test:3000"
        self.submitted: list[tuple[object, str]] = []
        self.digests: list[str | None] = []
        self.cancelled: list[str] = []
        self.runs: dict[str, RunProgress] = {}
        self.rows: list[RunRow] = []

    def submit(self, request, *, kind="process", sha256=None):
        self.submitted.append((request, kind))
        self.digests.append(sha256)
        return RUN_ID

    def cancel(self, run_id):
        self.cancelled.append(run_id)
        return f"cancelling run {run_id[:8]}"

    def progress(self, run_id):
        return self.runs.get(run_id) or RunProgress(run_id, "UNKNOWN", 0.0, "", 0.0, None, error=f"no run {run_id}")

    def recent_runs(self, limit=20):
        return self.rows[:limit]

    def logs(self, run_id, limit=400):
        return f"12:00:00 INFO    run: logs of {run_id}"

    def run_url(self, run_id):
        return f"{self.webserver_url}/runs/{run_id}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_sample_clip(tmp_path_factory.mktemp("clips") / "tiny clip.mp4", width=64, height=48, seconds=1,
                            fps=8, audio=False)


@pytest.fixture
def service(tmp_path) -> FakeService:
    return FakeService(Workspace(tmp_path / "workspace"))


@pytest.fixture
def upload(service, clip):
    inspection = page.inspect_file(service.workspace, clip)
    assert inspection.upload is not None, inspection.message
    return inspection.upload


def choices(**overrides) -> page.PageChoices:
    return dataclasses.replace(page.PageChoices("toy-x4"), **overrides)


# ------------------------------------------------------------------------------------------------ upload


def test_upload_accepted_and_described(service, clip):
    inspection = page.inspect_file(service.workspace, clip)
    assert inspection.upload is not None
    assert inspection.upload.path.is_relative_to(service.workspace.root / "uploads")
    rows = dict(inspection.rows)
    assert rows["file"] == "tiny_clip.mp4"
    assert rows["resolution"] == "64x48"
    assert rows["fps"] == "8"
    assert "accepted" in inspection.message
    french = dict(page.inspect_file(service.workspace, clip, lang="fr").rows)
    assert french["résolution"] == "64x48"


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("notes.txt", b"hello", "is not a video file"),
    ("random.mp4", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "is not a video"),
    ("empty.mp4", b"", "is empty"),
])
def test_upload_refused(service, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    inspection = page.inspect_file(service.workspace, path)
    assert inspection.upload is None
    assert inspection.rows == []
    assert expected in inspection.message
    assert "Traceback" not in inspection.message


def test_upload_above_limit_refused(service, clip):
    inspection = page.inspect_file(service.workspace, clip, max_upload=100)
    assert inspection.upload is None and "above the" in inspection.message


def test_no_file_is_no_message(service):
    assert page.inspect_file(service.workspace, None) == page.Inspection(None, [], "")


# ------------------------------------------------------------------------------------------------ output plan


def resized(upload, width, height):
    return dataclasses.replace(upload, info=dataclasses.replace(upload.info, width=width, height=height))


def test_plan_text(upload):
    assert page.plan_markdown(None, choices()) .startswith("**Output:** upload")
    text = page.plan_markdown(upload, choices(scale=4))
    assert "256x192 at 8 fps" in text and "Warning" not in text
    assert "at 16 fps" in page.plan_markdown(upload, choices(interpolation_on=True, factor=2))
    assert "at 24 fps" in page.plan_markdown(upload, choices(interpolation_on=True, interp_mode="target fps",
                                                              target_fps=24))


def test_plan_warns_above_4k_and_refuses_above_8k(upload):
    warned = page.plan_markdown(resized(upload, 1280, 720), choices(scale=4))
    assert "5120x2880" in warned and "above 4K" in warned and "Refused" not in warned
    refused = page.plan_markdown(resized(upload, 1280, 720), choices(scale=8))
    assert "Refused" in refused and "8K" in refused


def test_plan_refuses_above_120_fps(upload):
    text = page.plan_markdown(upload, choices(interpolation_on=True, interp_mode="target fps", target_fps=240))
    assert "Refused" in text and "120" in text


# ------------------------------------------------------------------------------------------------ submit


def test_request_choices():
    plain = choices(crf=20.0, batch=2.0, scale=2).request_choices()
    assert plain["crf"] == 20 and isinstance(plain["crf"], int)
    assert plain["batch"] == 2 and plain["scale"] == 2
    assert "interpolate" not in plain and "fps" not in plain
    assert choices(interpolation_on=True, factor=4).request_choices()["interpolate"] == 4
    by_fps = choices(interpolation_on=True, interp_mode="target fps", target_fps=60.0).request_choices()
    assert by_fps["fps"] == 60 and "interpolate" not in by_fps
    assert choices(interpolation_on=True, interp_mode="target fps",
                   target_fps="60000/1001").request_choices()["fps"] == "60000/1001"


def test_process_refuses_unavailable_model(service, clip):
    submission = page.submit_run(service, clip, choices(model="big-x4"), models=MODELS, methods=METHODS)
    assert submission.run_id == ""
    assert "big-x4 is unavailable" in submission.message and "9.0 GB" in submission.message
    assert service.submitted == []


def test_process_refuses_unavailable_method_and_plan_errors(service, clip, upload):
    rife = page.submit_run(service, clip, choices(interpolation_on=True, interp_method="rife"), models=MODELS,
                           methods=METHODS)
    assert rife.run_id == "" and "no RIFE weights" in rife.message
    too_fast = page.submit_run(service, clip, choices(interpolation_on=True, interp_mode="target fps",
                                                      target_fps=240), models=MODELS, methods=METHODS)
    assert too_fast.run_id == "" and "120" in too_fast.message
    too_big = page.submit_run(service, None, choices(scale=8), upload=resized(upload, 1280, 720), models=MODELS,
                              methods=METHODS)
    assert too_big.run_id == "" and "8K" in too_big.message
    assert service.submitted == []


def test_process_refuses_without_or_with_a_bad_upload(service, tmp_path):
    assert "Upload a video first" in page.submit_run(service, None, choices(), models=MODELS).message
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    submission = page.submit_run(service, bad, choices(), models=MODELS)
    assert submission.run_id == "" and "is not a video file" in submission.message


def test_process_submits_the_request(service, clip):
    chosen = choices(scale=2, interpolation_on=True, interp_method="flow", factor=2, temporal="ema",
                     temporal_strength=0.5, device="cpu", batch=3, fp16=True, codec="h265", container="mkv", crf=22,
                     chunk_seconds=5)
    submission = page.submit_run(service, clip, chosen, models=MODELS, methods=METHODS)
    assert submission.run_id == RUN_ID, submission.message
    assert f"{service.webserver_url}/runs/{RUN_ID}" in submission.message
    [(request, kind)] = service.submitted
    assert kind == "process"
    assert request.upscale.model == "toy-x4" and request.upscale.scale == 2 and request.upscale.batch == 3
    assert request.interpolate.method == "flow" and request.interpolate.factor == 2
    assert request.temporal.method == "ema" and request.temporal.strength == 0.5
    assert request.encode.codec == "h265" and request.encode.crf == 22
    assert request.chunk.chunk_seconds == 5
    assert request.device == "cpu" and request.precision == "fp16"
    assert request.output.suffix == ".mkv" and request.output.is_relative_to(service.workspace.outputs)
    # the upload's digest goes along, so the service does not hash the file again
    from stages.store.fsutil import sha256_file

    assert service.digests == [sha256_file(request.input)]


def test_preview_submits_a_preview_run(service, clip):
    submission = page.submit_run(service, clip, choices(), kind="preview", models=MODELS, methods=METHODS)
    assert submission.run_id == RUN_ID
    [(request, kind)] = service.submitted
    assert kind == "preview" and request.interpolate.method == "none"
    assert submission.source and Path(submission.source).is_file()  # a 1 s clip is its own preview


def test_submit_shows_service_errors(service, clip):
    from stages.errors import StageError

    def refuse(request, *, kind="process", sha256=None):
        raise StageError("ui: cannot reach the Dagster webserver; start everything with `vup serve`")

    service.submit = refuse
    submission = page.submit_run(service, clip, choices(), models=MODELS, methods=METHODS)
    assert submission.run_id == "" and "vup serve" in submission.message


# ------------------------------------------------------------------------------------------------ progress


def test_format_duration():
    assert page.format_duration(0) == "0:00"
    assert page.format_duration(31.4) == "0:31"
    assert page.format_duration(125) == "2:05"
    assert page.format_duration(3725) == "1:02:05"
    assert page.format_duration(None) == "–"


def test_progress_running(service):
    service.runs["a"] = RunProgress("a", "STARTED", 0.42, "upscale", 31.0, None)
    view = page.progress_view(service, "a")
    assert view.text == "42% · upscale · elapsed 0:31 · estimating…"
    assert view.status == "STARTED" and not view.finished and view.video is None
    assert 'width: 42.0%' in view.html
    service.runs["a"] = RunProgress("a", "STARTED", 0.42, "upscale", 31.0, 45.0)
    assert page.progress_view(service, "a").text == "42% · upscale · elapsed 0:31 · about 0:45 left"
    assert "écoulé 0:31" in page.progress_view(service, "a", lang="fr").text
    service.runs["q"] = RunProgress("q", "QUEUED", 0.0, "", 0.0, None)
    assert "queued" in page.progress_view(service, "q").text


def test_progress_success_shows_the_result(service, clip):
    output = service.workspace.outputs / "key" / "tiny_enhanced.mp4"
    output.parent.mkdir(parents=True)
    shutil.copy(clip, output)
    report = {"output": {"path": str(output), "codec": "h264"}}
    service.runs["ok"] = RunProgress("ok", "SUCCESS", 1.0, "done", 62.0, 0.0, str(output), report)
    view = page.progress_view(service, "ok")
    assert view.finished and view.status == "SUCCESS"
    assert view.video == str(output) and view.file == str(output)
    assert "done in 1:02" in view.text
    service.runs["hevc"] = RunProgress("hevc", "SUCCESS", 1.0, "done", 1.0, 0.0, str(output),
                                       {"output": {"codec": "hevc"}})
    hevc = page.progress_view(service, "hevc")
    assert hevc.video is None and hevc.file == str(output) and "download" in hevc.text


def test_progress_never_serves_files_outside_the_page_folders(service, clip):
    service.runs["out"] = RunProgress("out", "SUCCESS", 1.0, "done", 1.0, 0.0, str(clip))
    view = page.progress_view(service, "out")
    assert view.video is None and view.file is None and "outside" in view.text


def test_progress_failure_cancel_unknown(service):
    service.runs["f"] = RunProgress("f", "FAILURE", 0.3, "upscale", 5.0, None, error="upscale: out of memory")
    failed = page.progress_view(service, "f")
    assert failed.finished and failed.text == "failed: upscale: out of memory" and "vup-failure" in failed.html
    service.runs["c"] = RunProgress("c", "CANCELED", 0.3, "upscale", 5.0, None)
    assert page.progress_view(service, "c").text == "cancelled"
    unknown = page.progress_view(service, "nope")
    assert unknown.finished and "no run nope" in unknown.text
    empty = page.progress_view(service, "")
    assert empty.finished and empty.status == ""


def test_cancel(service):
    assert page.cancel_run(service, RUN_ID) == f"cancelling run {RUN_ID[:8]}"
    assert service.cancelled == [RUN_ID]
    assert "No run" in page.cancel_run(service, "")


# ------------------------------------------------------------------------------------------------ compare, system


def test_compare_view_and_frames(service, clip, upload):
    output = service.workspace.outputs / "key" / "tiny_enhanced.mp4"
    output.parent.mkdir(parents=True)
    shutil.copy(clip, output)
    report_dir = service.workspace.reports / "key" / "abc"
    report_dir.mkdir(parents=True)
    (report_dir / "per_frame.png").write_bytes(b"png")
    report = {
        "source": str(upload.path), "model": "toy-x4", "device": "cpu", "precision": "fp32",
        "output": {"path": str(output), "width": 64, "height": 48, "frames": 8, "duration_s": 1.0, "codec": "h264"},
        "flicker": {"output": 0.05, "lanczos_baseline": 0.04, "ratio": 1.25, "definition": "mean abs diff"},
        "warp_error": {"output": 0.01, "lanczos_baseline": 0.02, "ratio": 0.5, "definition": "masked error"},
        "quality": {"grade": {"grade": "B", "grade_en": "good"}, "definitions": {"grade": "worst of"}},
        "timings_s": {"extract": 0.5, "upscale": 2.0, "encode": 0.25},
    }
    service.runs["ok"] = RunProgress("ok", "SUCCESS", 1.0, "done", 3.0, 0.0, str(output), report, str(report_dir))
    service.rows = [RunRow("ok", "SUCCESS", "key", "tiny.mp4", "ui", "process", 1.7e9, 3.0, service.run_url("ok")),
                    RunRow("bad", "FAILURE", "key", "tiny.mp4", "ui", "process", 1.7e9, 3.0, service.run_url("bad"))]
    assert [run_id for _, run_id in page.finished_runs(service)] == ["ok"]
    view = page.compare_view(service, "ok")
    assert view.source_video == str(upload.path) and view.output_video == str(output)
    assert view.plot == str(report_dir / "per_frame.png") and view.duration == 1.0
    assert ["flicker", "0.05", "0.04", "1.25"] in view.rows
    assert ["E_warp", "0.01", "0.02", "0.5"] in view.rows
    assert ["grade", "good", "", ""] in view.rows and ["upscale (s)", "2", "", ""] in view.rows
    assert "mean abs diff" in view.definitions
    before, after = page.compare_images(view.source, view.output, 0.5)
    assert before.shape == after.shape == (48, 64, 3)
    assert page.compare_images(None, view.output, 0.0) is None
    assert "Pick" in page.compare_view(service, None).message


def test_system_tab(service):
    service.rows = [RunRow(RUN_ID, "STARTED", "key", "tiny.mp4", "ui", "process", 1.7e9, None, service.run_url(RUN_ID))]
    [row] = page.runs_rows(service)
    assert row[:5] == [RUN_ID[:8], "STARTED", "tiny.mp4", "ui", "process"]
    assert row[-1] == f"[open]({service.run_url(RUN_ID)})"
    assert RUN_ID in page.run_logs(service, RUN_ID)
    assert any(name == "Dagster UI" for name, _ in page.system_rows(service))


# ------------------------------------------------------------------------------------------------ settings


def test_settings_saved_and_reloaded(service):
    workspace = service.workspace
    assert page.page_settings(workspace, MODELS, METHODS)["model"] == "toy-x4"
    for key, value in (("crf", 23.0), ("codec", "h265"), ("fp16", True), ("temporal", "flow"), ("batch", 2),
                       ("chunk_seconds", 4), ("scale", 2), ("model", "big-x4"), ("interp_method", "blend")):
        page.remember(workspace, key, value)
    page.remember(workspace, "unknown", 1)
    page.remember(workspace, "crf", None)
    stored = load_settings(workspace)
    assert stored["crf"] == 23 and stored["codec"] == "h265" and stored["fp16"] is True
    assert stored["model"] == "big-x4"
    again = page.page_settings(workspace, MODELS, METHODS)
    assert again["crf"] == 23 and again["temporal"] == "flow" and again["batch"] == 2 and again["scale"] == 2
    assert again["chunk_seconds"] == 4.0 and again["interp_method"] == "blend"
    assert again["model"] == "toy-x4"  # the remembered model is unavailable: the first available one instead
    page.remember(workspace, "model", "toy-x4")
    assert page.page_settings(workspace, MODELS, METHODS)["model"] == "toy-x4"


# ------------------------------------------------------------------------------------------------ the Blocks


@pytest.fixture
def app(service, monkeypatch):
    monkeypatch.setattr(page, "model_choices", lambda: MODELS)
    monkeypatch.setattr(page, "interpolation_methods", lambda: METHODS)
    return page.build_app(service, max_upload=1 << 20)


def test_build_app_api_and_ids(app):
    assert isinstance(app, gr.Blocks)
    config = app.config
    names = {d.get("api_name") for d in config["dependencies"]}
    assert set(page.API_NAMES) <= names
    endpoints = app.get_api_info()["named_endpoints"]
    assert set(endpoints) == {f"/{name}" for name in page.API_NAMES}
    assert [p["parameter_name"] for p in endpoints["/process"]["parameters"]] == [
        "file", "model", "scale", "interpolation_on", "interp_method", "interp_mode", "factor", "target_fps",
        "temporal", "temporal_strength", "device", "batch", "fp16", "codec", "container", "crf", "chunk_seconds"]
    assert len(endpoints["/process"]["returns"]) == 2
    assert len(endpoints["/progress"]["returns"]) == 4
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for elem_id in ("upload", "metadata", "upload-message", "output-plan", "process-button", "run-id", "run-status",
                    "progress", "result-video", "result-file", "model-info"):
        assert elem_id in ids
    tab_ids = {c["props"].get("id") for c in config["components"] if c.get("type") == "tabitem"}
    assert {"process", "compare", "settings", "system"} <= tab_ids


def test_launch_options(service):
    options = page.launch_options(service, max_upload=5 << 20)
    workspace = service.workspace
    assert options["allowed_paths"] == [str(workspace.outputs), str(workspace.root / "uploads"),
                                        str(workspace.reports)]
    assert options["max_file_size"] == 5 << 20
    assert isinstance(options["i18n"], gr.I18n)
    assert set(options["i18n"].translations_dict) == {"en", "fr"}
    assert set(options["i18n"].translations_dict["en"]) == set(options["i18n"].translations_dict["fr"])


def test_file_argument():
    assert page.file_argument(None) == (None, None)
    assert page.file_argument("/tmp/x.mp4") == ("/tmp/x.mp4", None)
    assert page.file_argument({"path": "/tmp/gradio/abc/x.mp4", "orig_name": "My clip.mp4"}) == (
        "/tmp/gradio/abc/x.mp4", "My clip.mp4")


def test_original_name_is_kept(service, clip):
    inspection = page.inspect_file(service.workspace, clip, original_name="My holiday.MOV")
    assert inspection.upload is not None and inspection.upload.name == "My_holiday.mov"
