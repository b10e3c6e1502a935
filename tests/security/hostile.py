"""Shared helpers of the security tests: hostile names, filesystem snapshots, pickles that would run code."""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field
from pathlib import Path

# quotes, double quotes, a semicolon, brackets, a comma, a colon, a backslash, a command substitution, spaces and
# non-ASCII: everything a shell or an ffmpeg filter graph would read as syntax
HOSTILE_STEM = "a'b\"c;d[0],e:f\\g $(touch pwned) `touch pwned2` é"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``folder``, to show nothing there was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_pwned(*roots: Path) -> list[Path]:
    """Files named like the commands in :data:`HOSTILE_STEM` under ``roots`` and the current folder."""
    found = []
    for root in {*roots, Path.cwd()}:
        found += [p for p in root.rglob("pwned*")] if root.is_dir() else []
    return found


@dataclass
class Canary:
    """A folder beside the workspace with a file in it; it must stay exactly as it was."""

    folder: Path
    before: dict[str, tuple[int, int]] = field(default_factory=dict)

    def assert_untouched(self) -> None:
        assert snapshot(self.folder) == self.before, "a file next to the workspace was created or changed"


# ------------------------------------------------------------------------------------------------ pickles


class RunsCommand:
    """Unpickling calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class WritesFile:
    """Unpickling calls the builtin ``open(path, "w")``, which creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


# ------------------------------------------------------------------------------------------------ HTTP



# ------------------------------------------------------------------------------------------------ a live page


class PageService:
    """What the page needs of DagsterService, for a page served without Dagster: no runs."""

    def __init__(self, workspace) -> None:
        self.workspace = workspace
        self.webserver_url = "http://127.0.0.1:3000"
        self.submitted: list = []

    def submit(self, request, *, kind="process", sha256=None):
        self.submitted.append((request, kind))
        return "0123456789abcdef-run"

    def cancel(self, run_id):
        return f"no run {run_id}"

    def progress(self, run_id):
        from orchestration.launch.service import RunProgress

        return RunProgress(run_id, "UNKNOWN", 0.0, "", 0.0, None, error=f"no run {run_id}")

    def recent_runs(self, limit=20):
        return []

    def logs(self, run_id, limit=400):
        return ""

    def run_url(self, run_id):
        return f"{self.webserver_url}/runs/{run_id}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_page(service, *, auth=None):
    """Build the page for ``service`` (a toy model offered) and launch it on a free loopback port the way
    ``vup serve`` does (``launch_options``); returns (app, url). Close it with ``app.close()``."""
    from orchestration.launch.options import ModelChoice
    from ui import app as page

    models = [ModelChoice("toy-x4", "toy-x4 (x4)", "A toy model.", 4, True, None)]
    original = page.model_choices, page.interpolation_methods
    page.model_choices, page.interpolation_methods = (lambda: models), (lambda: [("auto", None)])
    try:
        app = page.build_app(service, max_upload=8 << 20)
    finally:
        page.model_choices, page.interpolation_methods = original
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, auth=auth, prevent_thread_lock=True, quiet=True,
               ssr_mode=False, show_error=False, **page.launch_options(service, max_upload=8 << 20))
    return app, f"http://127.0.0.1:{port}"


def call_api(client, url: str, name: str, data: list) -> tuple[str, object]:
    """Call a named endpoint of the page over plain HTTP: ("complete", outputs) or ("error", detail)."""
    import json

    response = client.post(f"{url}/gradio_api/call/{name}", json={"data": data})
    if response.status_code != 200:
        return "http", response.status_code
    event_id = response.json()["event_id"]
    text = client.get(f"{url}/gradio_api/call/{name}/{event_id}").text
    event = data_line = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data_line = line.split(":", 1)[1].strip()
    return event or "?", json.loads(data_line) if data_line else None
