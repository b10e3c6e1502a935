"""`vup serve` refuses to expose the page without a login or on a taken Dagster port, before it starts anything;
the Dagster child stops on SIGINT even when started from a background shell."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from orchestration.launch import serve
from orchestration.resources.workspace import Workspace
from stages.errors import SettingsError


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("::", False), ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert serve.is_loopback(host) is loopback


def test_parse_auth():
    assert serve.parse_auth(None) is None and serve.parse_auth("") is None
    assert serve.parse_auth("ana:s3cret, bo:pa:ss") == [("ana", "s3cret"), ("bo", "pa:ss")]
    for bad in ("ana", "ana:", ":pw", "ana:pw,"):
        with pytest.raises(SettingsError, match="USER:PASSWORD"):
            serve.parse_auth(bad)


def test_exposed_page_needs_a_login_and_nothing_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("VUP_AUTH", raising=False)
    started = []
    monkeypatch.setattr(serve, "start_dagster", lambda *a, **k: started.append(a))
    with pytest.raises(SettingsError, match="--auth USER:PASSWORD"):
        serve.run_serve(Workspace(tmp_path), host="0.0.0.0")
    with pytest.raises(SettingsError, match="above 0"):
        serve.run_serve(Workspace(tmp_path), max_upload_mb=0)
    assert started == []


def test_urls_printed_for_wildcard_hosts_are_reachable():
    assert serve._url("0.0.0.0", 7860) == "http://127.0.0.1:7860"
    assert serve._url("::1", 3000) == "http://[::1]:3000"


def test_a_taken_dagster_port_is_refused_before_anything_starts(tmp_path, monkeypatch):
    """A webserver left running on the Dagster port would answer the page's runs with its own (stale) jobs."""
    started = []
    monkeypatch.setattr(serve, "start_dagster", lambda *a, **k: started.append(a))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SettingsError, match=rf"port {port} on 127.0.0.1 is taken.*--dagster-port"):
            serve.run_serve(Workspace(tmp_path), dagster_port=port)
        with pytest.raises(SettingsError, match=rf"port {port} on 127.0.0.1 is taken.*--port"):
            serve.run_dev(Workspace(tmp_path), "127.0.0.1", port)
    assert started == []
    serve.check_port_free("127.0.0.1", port, "--port")  # free again once the listener closed


SLEEPER = "import sys, time\nprint('ready', flush=True)\ntime.sleep(60)\n"


def _interrupt(command: list[str], folder, wait: float) -> int | None:
    """Start ``command`` with SIGINT ignored (as a shell does for `cmd &`), send it SIGINT, return its exit code
    (None: still running)."""
    env = {**os.environ, "PYTHONPATH": str(folder)}
    ignoring = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    with subprocess.Popen(ignoring, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        try:
            assert process.stdout.readline().strip() == b"ready"
            process.send_signal(signal.SIGINT)
            try:
                return process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                return None
        finally:
            process.kill()


def test_dagster_is_started_so_that_sigint_stops_it_even_from_a_background_shell(tmp_path):
    """`vup serve &` in a script: SIGINT is ignored and inherited. A plain `python -m` child then ignores the
    SIGINT that is meant to stop it (so `dagster dev` was killed and left its webserver and daemon running); the
    command `start_dagster` uses installs Ctrl-C's handler first and the child stops."""
    (tmp_path / "sleeper.py").write_text(SLEEPER, encoding="utf-8")
    assert _interrupt([sys.executable, "-m", "sleeper"], tmp_path, 2) is None  # the problem, shown
    code = _interrupt(serve.interruptible_command("sleeper"), tmp_path, 30)
    assert code is not None and code != 0  # KeyboardInterrupt ended it
    assert serve.interruptible_command("dagster", "dev")[-2:] == ["dagster", "dev"]
