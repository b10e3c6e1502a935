"""A live `vup serve` (Dagster webserver + daemon + the Gradio page) in a temporary workspace, shared by the
live API tests and the browser test."""

from __future__ import annotations

import pytest

from benchmarks.load import Served, start_serve, stop_serve


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    """`vup serve` on free loopback ports; SIGTERM at the end must stop every process it started."""
    base = tmp_path_factory.mktemp("serve")
    log = base / "serve.log"
    try:
        server = start_serve(base / "ws", log)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    code, leftover = stop_serve(server.process)
    assert code is not None, "vup serve did not stop within 90 s of SIGTERM"
    assert code == 0, f"vup serve exited with {code}:\n{log.read_text(errors='replace')[-3000:]}"
    assert not leftover, "processes started by vup serve were still running 30 s after it stopped"
