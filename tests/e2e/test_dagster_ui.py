"""The Dagster webserver of a workspace shows the `videos` partitions, the asset lineage and a CLI run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.resources.config import ChunkPlanConfig, UpscaleConfig
from orchestration.resources.workspace import Workspace
from stages.quality.samples import make_sample_clip

REPO = Path(__file__).resolve().parents[2]
QUERY = """{
  assetNodes { assetKey { path } dependencyKeys { path } partitionKeysByDimension { partitionKeys } }
  runsOrError { ... on Runs { results { runId jobName status tags { key value } } } }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_webserver_shows_partition_lineage_and_cli_run(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    monkeypatch.setenv("VUP_WORKSPACE", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    clip = make_sample_clip(tmp_path / "clip.mp4", width=32, height=32, seconds=0.5, fps=8, audio=False)
    outcome = run_enhance(Workspace(root), EnhanceRequest(
        input=clip, output=tmp_path / "out.mp4", chunk=ChunkPlanConfig(scene_detection=False),
        upscale=UpscaleConfig(scale=2), device="cpu"))
    assert outcome.success, outcome.error

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-m", "orchestration.definitions", "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=REPO, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline and data is None:
            try:
                data = _graphql(port)
            except OSError:
                assert server.poll() is None, "the webserver exited"
                time.sleep(1)
        assert data is not None, "the webserver did not answer in 120 s"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {"video_probe", "upscale", "encoded_video", "metrics_report"} <= set(nodes)
    assert ["frame_chunks"] in [d["path"] for d in nodes["upscale"]["dependencyKeys"]]
    assert outcome.partition_key in nodes["encoded_video"]["partitionKeysByDimension"][0]["partitionKeys"]
    runs = data["runsOrError"]["results"]
    run = next(r for r in runs if r["runId"] == outcome.run_id)
    assert run["jobName"] == "enhance_job" and run["status"] == "SUCCESS"
    assert {"key": "dagster/partition", "value": outcome.partition_key} in run["tags"]


def test_vup_dev_processes_an_inbox_drop_with_no_click_and_stops_on_sigterm(tmp_path):
    """`vup dev` (webserver + daemon): a clip dropped into the inbox is picked up by the sensor, run by the
    daemon and moved to inbox/done with its output written; SIGTERM then stops every process it started."""
    root = tmp_path / "ws"
    env = {**os.environ, "VUP_WORKSPACE": str(root), "DAGSTER_HOME": str(root / "dagster")}
    env.pop("VUP_INBOX", None)
    port = _free_port()
    vup = Path(sys.executable).with_name("vup")
    server = subprocess.Popen([str(vup), "dev", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _graphql(port)
                break
            except OSError:
                assert server.poll() is None, "vup dev exited"
                assert time.monotonic() < deadline, "the webserver did not answer in 120 s"
                time.sleep(1)
        inbox = root / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        clip = make_sample_clip(tmp_path / "drop.mp4", width=32, height=32, seconds=0.5, fps=8, audio=False)
        (inbox / "drop.json").write_text(json.dumps({"scale": 2}))
        os.replace(clip, inbox / "drop.mp4")
        deadline = time.monotonic() + 240
        while not (inbox / "done" / "drop.mp4").exists():
            assert not (inbox / "failed").exists() or not any((inbox / "failed").iterdir()), \
                (inbox / "failed" / "drop.error.txt").read_text() if (inbox / "failed" / "drop.error.txt").exists() \
                else "moved to failed/"
            assert time.monotonic() < deadline, "the inbox file was not processed in 240 s"
            time.sleep(2)
        outputs = list((root / "outputs").glob("*/drop_enhanced.mp4"))
        assert len(outputs) == 1 and outputs[0].stat().st_size > 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            deadline = time.monotonic() + 30
            while True:
                try:
                    os.killpg(server.pid, 0)
                except ProcessLookupError:
                    break  # every process of the session is gone
                if time.monotonic() > deadline:
                    os.killpg(server.pid, signal.SIGKILL)
                    raise AssertionError("processes of `vup dev` were still running 30 s after SIGTERM")
                time.sleep(0.5)
