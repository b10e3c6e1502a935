"""The inbox sensors: a dropped video is requested once it is fully written, once per content, with its sidecar
settings; bad inputs and finished runs move to failed/ and done/ with the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.utils import make_new_run_id

from orchestration.definitions import build_definitions
from orchestration.resources.core import WorkspaceResource
from orchestration.resources.workspace import (
    Workspace,
    lookup_video,
    prepare_dagster_home,
)
from orchestration.sensors.inbox import (
    inbox_run_canceled,
    inbox_run_failed,
    inbox_run_succeeded,
    inbox_sensor,
    is_candidate,
)
from stages.quality.samples import make_sample_clip
from stages.store.fsutil import sha256_file


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different tiny clips: 64x48, 0.5 s at 12 fps, no audio."""
    folder = tmp_path_factory.mktemp("inbox-clips")
    one = make_sample_clip(folder / "one.mp4", width=64, height=48, seconds=0.5, fps=12, audio=False)
    two = make_sample_clip(folder / "two.mp4", width=64, height=48, seconds=0.5, fps=12, audio=False,
                           image="coffee")
    return one, two


@pytest.fixture
def instance(workspace: Workspace):
    prepare_dagster_home(workspace)
    with DagsterInstance.get() as inst:
        yield inst


class Inbox:
    """Drives ``inbox_sensor`` the way the daemon does: the cursor of one evaluation goes into the next."""

    def __init__(self, workspace: Workspace, instance: DagsterInstance) -> None:
        self.workspace, self.instance, self.cursor = workspace, instance, None
        self.folder = workspace.inbox
        self.folder.mkdir(parents=True, exist_ok=True)

    def tick(self) -> SensorResult:
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, sensor_name="inbox_sensor",
            resources={"workspace": WorkspaceResource(root=str(self.workspace.root))},
        )
        result = inbox_sensor(context)
        assert isinstance(result, SensorResult)
        self.cursor = result.cursor
        return result

    def drop(self, clip: Path, name: str, sidecar: dict | None = None) -> Path:
        if sidecar is not None:
            (self.folder / name).with_suffix(".json").write_text(json.dumps(sidecar))
        target = self.folder / name
        shutil.copyfile(clip, target)
        return target


@pytest.fixture
def inbox(workspace, instance) -> Inbox:
    return Inbox(workspace, instance)


def _ops(request) -> dict:
    return request.run_config["ops"]


def test_inbox_path_default_and_env(workspace, monkeypatch, tmp_path):
    assert workspace.inbox == workspace.root / "inbox"
    assert workspace.inbox_done == workspace.root / "inbox" / "done"
    monkeypatch.setenv("VUP_INBOX", str(tmp_path / "drop"))
    assert Workspace(workspace.root).inbox_failed == tmp_path / "drop" / "failed"


@pytest.mark.parametrize("name, ok", [
    ("a.mp4", True), ("B.MKV", True), ("c.webm", True), ("d.m4v", True), (".hidden.mp4", False),
    ("e.mp4.part", False), ("f.mp4.crdownload", False), ("g.mp4~", False), ("notes.txt", False),
    ("defaults.json", False),
])
def test_candidates(name, ok):
    assert is_candidate(Path(name)) is ok


def test_new_file_requests_one_run_on_the_second_check(inbox, clips, workspace):
    path = inbox.drop(clips[0], "holiday.mp4")
    first = inbox.tick()
    assert not first.run_requests  # size not yet known to be stable
    second = inbox.tick()
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    digest = sha256_file(path)
    assert request.run_key == digest
    assert request.partition_key == digest[:16]
    assert request.tags["vup/launched_by"] == "inbox"
    assert request.tags["vup/source"] == "holiday.mp4"
    assert request.tags["vup/inbox_path"] == str(path)
    assert second.dynamic_partitions_requests[0].partitions_def_name == "videos"
    assert list(second.dynamic_partitions_requests[0].partition_keys) == [digest[:16]]
    ops = _ops(request)
    assert ops["upscale"]["config"]["scale"] == 4  # built-in default
    assert ops["encoded_video"]["config"]["output_path"] == str(
        workspace.outputs / digest[:16] / "holiday_enhanced.mp4")
    assert lookup_video(workspace, digest[:16]).path == str(path.resolve())
    # the run is under way: later checks neither request it again nor move it
    third = inbox.tick()
    assert not third.run_requests and path.exists()
    path.with_suffix(".json").write_text(json.dumps({"scale": 2}))  # too late for this run: nothing happens
    assert not inbox.tick().run_requests and not inbox.tick().run_requests
    assert path.exists() and not any(workspace.inbox.glob("*/*"))


def test_file_still_being_written_waits(inbox, clips):
    data = clips[0].read_bytes()
    target = inbox.folder / "growing.mp4"
    target.write_bytes(data[: len(data) // 2])
    assert not inbox.tick().run_requests
    target.write_bytes(data)  # grew since the last check
    assert not inbox.tick().run_requests
    assert len(inbox.tick().run_requests) == 1  # unchanged now


def test_partial_and_hidden_files_are_ignored(inbox, clips):
    inbox.drop(clips[0], "movie.mp4.part")
    inbox.drop(clips[0], ".movie.mp4")
    inbox.tick()
    assert not inbox.tick().run_requests
    assert (inbox.folder / "movie.mp4.part").exists()


def test_duplicate_content_is_processed_once(inbox, clips, workspace):
    inbox.drop(clips[0], "original.mp4")
    inbox.tick()
    assert len(inbox.tick().run_requests) == 1
    copy = inbox.drop(clips[0], "renamed copy.mp4")
    inbox.tick()
    result = inbox.tick()
    assert not result.run_requests
    assert not copy.exists()
    assert (workspace.inbox_done / "renamed copy.mp4").exists()
    note = (workspace.inbox_done / "renamed copy.duplicate.txt").read_text()
    assert "original.mp4" in note
    assert (inbox.folder / "original.mp4").exists()  # the first one is still being processed


def test_sidecar_overrides_folder_defaults(inbox, clips, workspace):
    (inbox.folder / "defaults.json").write_text(json.dumps({"scale": 4, "codec": "h265", "crf": 30}))
    inbox.drop(clips[0], "plain.mp4")
    inbox.drop(clips[1], "custom.mov", sidecar={"scale": 2, "temporal": "flow", "crf": 20, "fps": 24,
                                                "output": "custom-result.mkv"})
    inbox.tick()
    requests = {r.tags["vup/source"]: r for r in inbox.tick().run_requests}
    assert set(requests) == {"plain.mp4", "custom.mov"}
    plain, custom = _ops(requests["plain.mp4"]), _ops(requests["custom.mov"])
    assert plain["upscale"]["config"]["scale"] == 4
    assert plain["encoded_video"]["config"]["codec"] == "h265" and plain["encoded_video"]["config"]["crf"] == 30
    assert plain["cohere"]["config"]["method"] == "auto"  # the built-in default: temporal coherence on
    assert custom["upscale"]["config"]["scale"] == 2
    assert custom["cohere"]["config"]["method"] == "flow"
    assert custom["encoded_video"]["config"]["codec"] == "h265"  # from the folder defaults
    assert custom["encoded_video"]["config"]["crf"] == 20
    assert custom["interpolate"]["config"]["method"] == "auto"
    assert custom["interpolate"]["config"]["fps"] == "24"
    assert custom["encoded_video"]["config"]["output_path"] == str(workspace.outputs / "custom-result.mkv")


@pytest.mark.parametrize("sidecar, words", [
    ({"scal": 2}, "unknown key 'scal'"),
    ({"scale": -2}, "scale -2"),
    ({"scale": "2"}, "scale must be an integer"),
    ({"fps": 500}, "120"),
    ({"temporal": "magic"}, "temporal"),
    ({"output": "../escape.mp4"}, "plain file name"),
    ([1, 2], "one JSON object"),
])
def test_bad_sidecar_moves_to_failed_without_a_run(inbox, clips, workspace, sidecar, words):
    inbox.drop(clips[0], "bad.mp4", sidecar=sidecar)
    inbox.tick()
    result = inbox.tick()
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert not (inbox.folder / "bad.mp4").exists()
    assert (workspace.inbox_failed / "bad.mp4").exists()
    assert (workspace.inbox_failed / "bad.json").exists()  # the sidecar goes with it, to be fixed
    reason = (workspace.inbox_failed / "bad.error.txt").read_text()
    assert words in reason and len(reason.strip().splitlines()) == 1


def test_corrupt_video_moves_to_failed_and_names_never_clash(inbox, workspace):
    workspace.inbox_failed.mkdir(parents=True)
    (workspace.inbox_failed / "broken.mp4").write_bytes(b"an earlier one")
    (inbox.folder / "broken.mp4").write_bytes(bytes(range(256)) * 64)
    inbox.tick()
    assert not inbox.tick().run_requests
    assert (workspace.inbox_failed / "broken.mp4").read_bytes() == b"an earlier one"  # never overwritten
    assert (workspace.inbox_failed / "broken-1.mp4").exists()
    assert (workspace.inbox_failed / "broken-1.error.txt").read_text().strip()


def test_file_removed_between_checks_is_forgotten(inbox, clips):
    path = inbox.drop(clips[0], "gone.mp4")
    inbox.tick()
    path.unlink()
    result = inbox.tick()
    assert not result.run_requests
    assert json.loads(result.cursor)["files"] == {}


# ------------------------------------------------------------------------------------------ completion sensors


def _status_context(instance, workspace, run_id, sensor_name, event_type):
    run = instance.get_run_by_id(run_id)
    event = instance.all_logs(run_id, of_type=event_type)[-1].dagster_event
    return build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources={"workspace": WorkspaceResource(root=str(workspace.root))},
    )


def _requested(inbox: Inbox, clip: Path, name: str, sidecar: dict):
    inbox.drop(clip, name, sidecar=sidecar)
    inbox.tick()
    (request,) = inbox.tick().run_requests
    inbox.instance.add_dynamic_partitions("videos", [request.partition_key])
    return request


def _execute(workspace, instance, request):
    job = build_definitions(str(workspace.root)).resolve_job_def("enhance_job")
    return job.execute_in_process(run_config=request.run_config, partition_key=request.partition_key,
                                  instance=instance, tags=request.tags, raise_on_error=False)


def test_successful_run_end_to_end_moves_input_to_done(inbox, clips, workspace, instance):
    request = _requested(inbox, clips[0], "ok.mp4",
                         {"scale": 1, "chunk_seconds": 0.5, "preset": "veryfast", "vmaf": False})
    result = _execute(workspace, instance, request)
    assert result.success
    output = Path(_ops(request)["encoded_video"]["config"]["output_path"])
    assert output.is_file()
    context = _status_context(instance, workspace, result.run_id, "inbox_run_succeeded",
                              DagsterEventType.RUN_SUCCESS)
    inbox_run_succeeded(context)
    assert not (inbox.folder / "ok.mp4").exists() and not (inbox.folder / "ok.json").exists()
    assert (workspace.inbox_done / "ok.mp4").exists() and (workspace.inbox_done / "ok.json").exists()
    # the partition follows the file, so the run can be re-executed
    assert lookup_video(workspace, request.partition_key).path == str((workspace.inbox_done / "ok.mp4").resolve())
    # the moved file is not seen again by the inbox sensor
    assert not inbox.tick().run_requests


def test_failed_run_moves_input_to_failed_with_the_reason(inbox, clips, workspace, instance):
    request = _requested(inbox, clips[1], "doomed.mp4", {"model": "no-such-model", "scale": 2, "chunk_seconds": 0.5})
    result = _execute(workspace, instance, request)
    assert not result.success
    context = _status_context(instance, workspace, result.run_id, "inbox_run_failed", DagsterEventType.RUN_FAILURE)
    inbox_run_failed(context)
    assert not (inbox.folder / "doomed.mp4").exists()
    assert (workspace.inbox_failed / "doomed.mp4").exists()
    text = (workspace.inbox_failed / "doomed.error.txt").read_text()
    first, run_line = text.strip().splitlines()
    assert "no-such-model" in first and "Traceback" not in text
    assert run_line == f"run: {result.run_id}"


def _fake_run(instance, request, status=DagsterRunStatus.STARTED) -> DagsterRun:
    run = DagsterRun(job_name="enhance_job", run_id=make_new_run_id(), tags=request.tags, status=status)
    return instance.add_run(run)


def test_canceled_run_moves_input_to_failed(inbox, clips, workspace, instance):
    inbox.drop(clips[0], "stopped.mp4")
    inbox.tick()
    (request,) = inbox.tick().run_requests
    run = _fake_run(instance, request)
    instance.report_run_canceled(run)
    context = _status_context(instance, workspace, run.run_id, "inbox_run_canceled", DagsterEventType.RUN_CANCELED)
    inbox_run_canceled(context)
    assert (workspace.inbox_failed / "stopped.mp4").exists()
    assert "canceled" in (workspace.inbox_failed / "stopped.error.txt").read_text()


def test_failed_run_that_will_be_retried_stays_and_others_are_ignored(inbox, clips, workspace, instance):
    inbox.drop(clips[0], "retry.mp4")
    inbox.tick()
    (request,) = inbox.tick().run_requests
    run = _fake_run(instance, request)
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
    instance.report_run_failed(run)
    context = _status_context(instance, workspace, run.run_id, "inbox_run_failed", DagsterEventType.RUN_FAILURE)
    inbox_run_failed(context)
    assert (inbox.folder / "retry.mp4").exists()
    # a run not launched by the inbox never moves an inbox file
    other = instance.add_run(DagsterRun(job_name="enhance_job", run_id=make_new_run_id(),
                                        tags={"vup/launched_by": "cli", "vup/inbox_path": str(inbox.folder / "retry.mp4")}))
    instance.report_run_failed(other)
    inbox_run_failed(_status_context(instance, workspace, other.run_id, "inbox_run_failed",
                                     DagsterEventType.RUN_FAILURE))
    assert (inbox.folder / "retry.mp4").exists()


def test_sensors_are_in_the_definitions():
    from orchestration.definitions import defs

    names = {s.name for s in defs.sensors}
    assert {"inbox_sensor", "inbox_run_succeeded", "inbox_run_failed", "inbox_run_canceled"} <= names
    assert defs.resolve_sensor_def("inbox_sensor").job_name == "enhance_job"
