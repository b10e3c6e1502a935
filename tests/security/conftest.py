"""Fixtures of the security tests: a canary folder next to the workspace, hostile file names, a loopback HTTP server
with redirects, and pickles whose unpickling would run code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hostile import Canary, Server, snapshot

from stages.models import download


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    folder = tmp_path / "canary"
    folder.mkdir()
    (folder / "secret.txt").write_text("do not read or overwrite\n")
    (folder / "passwd.mp4").write_bytes(b"not yours")
    return Canary(folder, snapshot(folder))


@pytest.fixture
def loopback_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A 127.0.0.1 HTTP server in a thread: ``files`` are served, ``redirects`` answer 302 (no proxies)."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(download, "_RETRY_DELAY_S", 0.0)
    state: dict[str, Server] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = state["server"]
            name = self.path.lstrip("/")
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
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["server"] = Server(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
