"""Suite-wide isolation (tests never touch the user's workspace or model cache), shared fixtures, and the tiers.

Tiers: the default tier is what `make test` (and CI) runs. Tests marked ``soak`` form the slow tier (many fault
trials, long load runs): they are deselected unless ``VUP_SLOW_TIER=1`` (`make test-slow`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestration.resources.workspace import Workspace
from stages.models import download
from stages.quality.samples import make_sample_clip

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    session_tmp = Path(tempfile.mkdtemp(prefix="vup-tests-"))
    # Model weights converted from the weights package are cached once per test session, here.
    os.environ.setdefault("VUP_CACHE_DIR", str(session_tmp / "model-cache"))
    os.environ["VUP_WORKSPACE"] = str(session_tmp / "workspace")
    os.environ.pop("VUP_MODELS_DIR", None)
    # No test reaches the network: stores made without allow_download stay offline (the download tests use a
    # loopback server, whose fixture lifts this), so `auto` falls back as it does on an air-gapped machine.
    os.environ["VUP_OFFLINE"] = "1"
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def slow_tier() -> bool:
    return os.environ.get("VUP_SLOW_TIER") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slow_tier():
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A fresh workspace with its own Dagster instance (DAGSTER_HOME) in a temp dir."""
    root = tmp_path / "ws"
    monkeypatch.setenv("VUP_WORKSPACE", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    return Workspace(root).ensure()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of a real photo with camera motion, 64x48 at 12 fps, with audio: 18 frames."""
    return make_sample_clip(tmp_path_factory.mktemp("clips") / "tiny.mp4", width=64, height=48, seconds=1.5,
                            fps=12, audio=True)


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (ground-truth frames, offline weights); skips where absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (only on the developers' machines)")
    return SHARED


@dataclass
class LoopbackServer:
    """A 127.0.0.1 HTTP server serving ``files`` (name -> bytes) with optional Range support and cuts;
    ``redirects`` (name -> Location) answer 302; ``hits`` lists the names asked for, ``requests`` their headers."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    honour_range: bool = True
    cut_next: int = 0  # the next N responses send half their body and close the connection

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def ranges(self) -> list[str | None]:
        return [headers.get("Range") for headers in self.requests]


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """A loopback HTTP server in a thread (no proxies, no retry delay)."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(download, "_RETRY_DELAY_S", 0.0)
    monkeypatch.delenv("VUP_OFFLINE", raising=False)
    state: dict[str, LoopbackServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = state["server"]
            name = self.path.lstrip("/")
            server.requests.append(dict(self.headers))
            server.hits.append(name)
            if name in server.redirects:
                self.send_response(302)
                self.send_header("Location", server.redirects[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            payload = server.files.get(name)
            if payload is None:
                self.send_error(404)
                return
            start = 0
            range_header = self.headers.get("Range")
            if range_header and server.honour_range:
                start = int(range_header.split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            else:
                self.send_response(200)
            body = payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cut_next > 0:
                server.cut_next -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["server"] = LoopbackServer(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
