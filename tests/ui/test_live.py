"""The page driven through gradio_client against a live `vup serve`: upload, process, progress, download,
cancel, and a refused upload; the same runs seen from the Dagster webserver."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from stages.media.probe import probe_video
from stages.quality.samples import make_sample_clip

gradio_client = pytest.importorskip("gradio_client")

RUN_QUERY = """query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
  runId jobName status tags { key value } } } }"""


def settings(**overrides) -> list:
    """Positional arguments of the page's /process and /preview endpoints (see ui/app.py)."""
    values = {
        "model": "realesr-animevideov3", "scale": 2, "interpolation_on": False, "interp_method": "auto",
        "interp_mode": "factor", "factor": 2, "target_fps": 60, "temporal": "none", "temporal_strength": 0.6,
        "device": "cpu", "batch": 0, "fp16": False, "codec": "h264", "container": "mp4", "crf": 18,
        "chunk_seconds": 10.0,
    }
    values.update(overrides)
    return list(values.values())


@pytest.fixture
def client(served, tmp_path):
    return gradio_client.Client(served.page_url, verbose=False, download_files=str(tmp_path / "downloads"))


def poll(client, run_id: str, until: set[str], timeout: float = 300.0) -> tuple:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        result = client.predict(run_id, api_name="/progress")
        status = result[1]
        seen.append(status)
        if status in until:
            return result
        assert status not in {"SUCCESS", "FAILURE", "CANCELED"}, f"run ended {status}: {result[0]}"
        time.sleep(1)
    pytest.fail(f"run {run_id} did not reach {until} in {timeout:.0f} s (statuses seen: {sorted(set(seen))})")


def test_upload_process_poll_download(served, client, tmp_path):
    clip = make_sample_clip(tmp_path / "walk.mp4", width=96, height=64, seconds=1.5, fps=12, audio=True)
    metadata, message = client.predict(gradio_client.handle_file(str(clip)), api_name="/inspect")
    assert "96x64" in str(metadata)
    run_id, message = client.predict(gradio_client.handle_file(str(clip)), *settings(), api_name="/process")
    assert run_id, message
    _progress, _status, _video, download = poll(client, run_id, {"SUCCESS"})
    assert download, "no result file to download"
    path = Path(download["value"] if isinstance(download, dict) else download)
    assert path.is_file() and path.stat().st_size > 0
    info = probe_video(path)
    assert (info.width, info.height) == (192, 128)
    assert info.frame_count == 18 and info.audio_streams
    # the same run, seen from the Dagster webserver: partition, launched by the page
    run = served.graphql(RUN_QUERY, {"id": run_id})["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS" and run["jobName"] == "enhance_job"
    assert tags["vup/launched_by"] == "ui" and len(tags["dagster/partition"]) == 16


def test_cancel_stops_the_dagster_run(served, client, tmp_path):
    clip = make_sample_clip(tmp_path / "long.mp4", width=160, height=96, seconds=12, fps=12, audio=False)
    run_id, message = client.predict(gradio_client.handle_file(str(clip)),
                                     *settings(temporal="flow", chunk_seconds=1.0), api_name="/process")
    assert run_id, message
    poll(client, run_id, {"STARTED"})
    message = client.predict(run_id, api_name="/cancel")
    assert "cancel" in str(message).lower() or "annul" in str(message).lower()
    poll(client, run_id, {"CANCELED"}, timeout=180)
    run = served.graphql(RUN_QUERY, {"id": run_id})["runOrError"]
    assert run["status"] == "CANCELED"
    assert not list((served.root / "outputs").rglob("long_enhanced.mp4")), "a cancelled run left an output"


def test_a_bad_upload_gets_the_message(client, tmp_path):
    noise = tmp_path / "holiday.mp4"
    noise.write_bytes(os.urandom(20000))
    _metadata, message = client.predict(gradio_client.handle_file(str(noise)), api_name="/inspect")
    assert "holiday.mp4 is not a video the pipeline can read" in message
    run_id, message = client.predict(gradio_client.handle_file(str(noise)), *settings(), api_name="/process")
    assert run_id == "" and "not a video" in message


def test_reframe_over_real_http_returns_the_right_sized_video(served, tmp_path):
    """POST /api/export/upscale on the page's own server, over loopback HTTP: the run goes through the Dagster
    webserver (reframe_job, a reframes partition) and the answer is the MP4."""
    import json

    import httpx

    clip = make_sample_clip(tmp_path / "wide.mp4", width=160, height=90, seconds=0.5, fps=24, audio=True)
    keyframes = [{"time": 0, "x": 0, "y": 0, "width": 80, "height": 45},
                 {"time": 0.4, "x": 80, "y": 45, "width": 80, "height": 45}]
    with clip.open("rb") as handle:
        response = httpx.post(f"{served.page_url}/api/export/upscale", timeout=600,
                              files={"video": ("wide.mp4", handle, "video/mp4")},
                              data={"keyframes_json": json.dumps(keyframes), "target_fps": "30", "size": "160x90"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    out = tmp_path / "reframed.mp4"
    out.write_bytes(response.content)
    info = probe_video(out)
    assert (info.width, info.height) == (160, 90) and info.frame_count == 15 and info.audio_streams
    run = served.graphql(RUN_QUERY, {"id": response.headers["x-run-id"]})["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS" and run["jobName"] == "reframe_job"
    assert tags["vup/launched_by"] == "api" and len(tags["dagster/partition"]) == 16


def test_the_dagster_ui_shows_the_production_and_reframe_lineage(served):
    """The webserver's asset graph (what the Dagster UI draws): both new graphs, in their groups, with their edges."""
    nodes = served.graphql("{ assetNodes { assetKey { path } groupName dependencyKeys { path } "
                           "partitionDefinition { dimensionTypes { dynamicPartitionsDefinitionName } } } }")["assetNodes"]
    graph = {n["assetKey"]["path"][-1]: n for n in nodes}
    chains = {
        "production": ["production_plan", "assembled_scenes", "interpolated_scenes", "upscaled_scenes",
                       "edited_master", "mixed_audio", "deliverables", "production_report"],
        "reframe": ["reframe_request", "reframe_frames", "retimed_frames", "reframed_chunks", "reframed_video"],
    }
    partitions = {"production": "plans", "reframe": "reframes"}
    for group, chain in chains.items():
        for upstream, downstream in itertools.pairwise(chain):
            node = graph[downstream]
            assert node["groupName"] == group
            assert upstream in {d["path"][-1] for d in node["dependencyKeys"]}, (upstream, downstream)
        dimension = graph[chain[0]]["partitionDefinition"]["dimensionTypes"][0]
        assert dimension["dynamicPartitionsDefinitionName"] == partitions[group]
