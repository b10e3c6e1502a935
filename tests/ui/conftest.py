"""A live `vup serve` (Dagster webserver + daemon + the Gradio page) in a temporary workspace, shared by the
live API tests and the browser test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.load import answers, free_port, group_alive

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    root: Path
    page_url: str
    dagster_url: str
    process: subprocess.Popen
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.dagster_url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    """`vup serve` on free loopback ports; SIGTERM at the end must stop every process it started."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "ws"
    env = {**os.environ, "VUP_WORKSPACE": str(root), "DAGSTER_HOME": str(root / "dagster"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    for name in ("VUP_INBOX", "VUP_AUTH", "VUP_MAX_UPLOAD_MB"):
        env.pop(name, None)
    page_port, dagster_port = free_port(), free_port()
    log = base / "serve.log"
    vup = Path(sys.executable).with_name("vup")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(vup), "serve", "--port", str(page_port), "--dagster-port", str(dagster_port), "--quiet"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    page_url, dagster_url = f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{dagster_port}"
    deadline = time.monotonic() + 240
    while not (answers(f"{page_url}/config") and answers(f"{dagster_url}/server_info")):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
            dagster_log = root / "logs" / "dagster.log"
            detail = dagster_log.read_text(errors="replace")[-3000:] if dagster_log.exists() else ""
            pytest.fail(f"vup serve did not come up:\n{log.read_text(errors='replace')[-3000:]}\n{detail}")
        time.sleep(1)
    yield Served(root, page_url, dagster_url, process, log)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("vup serve did not stop within 90 s of SIGTERM")
    deadline = time.monotonic() + 30
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftover = group_alive(process.pid)
    if leftover:
        os.killpg(process.pid, signal.SIGKILL)
    assert code == 0, f"vup serve exited with {code}:\n{log.read_text(errors='replace')[-3000:]}"
    assert not leftover, "processes started by vup serve were still running 30 s after it stopped"
