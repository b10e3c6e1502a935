"""`vup dev` and `vup serve`: the Dagster webserver and daemon (``dagster dev``) for a workspace, and with
`serve` the Gradio page in this process, stopped together on Ctrl-C or SIGTERM.

Everything binds to 127.0.0.1 unless told otherwise. The page can be exposed with ``--host`` only together with
authentication (``--auth USER:PASSWORD`` or ``VUP_AUTH``). The Dagster webserver has no login and can launch runs
that read and write any path as this user, so a non-loopback ``--dagster-host`` (``vup dev --host``) is refused
unless ``--dagster-public`` says it sits behind the operator's own login (a reverse proxy).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration.resources.workspace import Workspace
from stages.errors import SettingsError, StageError

log = logging.getLogger(__name__)

AUTH_ENV = "VUP_AUTH"
WEBSERVER_START_SECONDS = 180.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """``USER:PASSWORD[,USER:PASSWORD...]`` as Gradio's ``auth`` list; None when ``value`` is empty.

    Raises:
        SettingsError: a pair without ``:``, an empty user or an empty password.
    """
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise SettingsError("serve: --auth must be USER:PASSWORD (several separated by commas), e.g. ana:s3cret")
        pairs.append((user, password))
    return pairs


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def dagster_env(workspace: Workspace) -> dict[str, str]:
    return {**os.environ, "VUP_WORKSPACE": str(workspace.root), "DAGSTER_HOME": str(workspace.dagster_home)}


# Runs a module as ``python -m`` does, with Ctrl-C's handler set first. A program started in the background by a
# shell script inherits SIGINT *ignored*, and Python then never installs its handler: ``dagster dev`` would ignore
# the SIGINT that stops it, be killed after the timeout, and leave its webserver and daemon running.
_INTERRUPTIBLE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def interruptible_command(module: str, *args: str) -> list[str]:
    """``python -m module args...`` that SIGINT interrupts even when this process ignores SIGINT."""
    return [sys.executable, "-c", _INTERRUPTIBLE, module, *args]


def check_port_free(host: str, port: int, flag: str) -> None:
    """Refuse a port something already listens on: a Dagster webserver left running would answer instead of ours.

    Raises:
        SettingsError: the port is taken (or the host cannot be bound).
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no owner
            probe.bind(address)
    except OSError as exc:
        raise SettingsError(
            f"serve: port {port} on {host} is taken ({exc.strerror or exc}); another program listens there, e.g. "
            f"a Dagster webserver left by an earlier `vup serve` or `vup dev`. Stop it, or pass another {flag}"
        ) from exc


def start_dagster(workspace: Workspace, host: str, port: int, *, log_file: Path | None = None) -> subprocess.Popen:
    """Start ``dagster dev`` (webserver, daemon and code server) for the workspace; its output goes to
    ``log_file`` (appended) when given, else to this terminal. It stops on SIGINT (:func:`stop_process`) even
    when this process was started with SIGINT ignored."""
    command = interruptible_command("dagster", "dev", "-m", "orchestration.definitions", "-h", host, "-p", str(port))
    if log_file is None:
        return subprocess.Popen(command, env=dagster_env(workspace))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        return subprocess.Popen(command, env=dagster_env(workspace), stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGINT (``dagster dev`` then stops its webserver, daemon and code server), then kill after ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_webserver(url: str, process: subprocess.Popen, timeout: float = WEBSERVER_START_SECONDS) -> None:
    """Wait until the Dagster webserver answers GraphQL.

    Raises:
        StageError: it exited or did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    body = json.dumps({"query": "{ version }"}).encode()
    while True:
        if process.poll() is not None:
            raise StageError(f"serve: the Dagster webserver exited (code {process.returncode}); see its log")
        try:
            request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise StageError(f"serve: the Dagster webserver did not answer at {url} in {timeout:.0f} s; "
                             "is the port taken? try --dagster-port")
        time.sleep(0.5)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a service manager) stops things the way Ctrl-C does."""

    def on_terminate(_signum, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_dagster_host(host: str, public: bool, flag: str) -> None:
    """Refuse to expose the Dagster webserver (no login) unless ``public`` says a login sits in front of it."""
    if not is_loopback(host) and not public:
        raise SettingsError(
            f"serve: {flag} {host} exposes the Dagster UI, which has no login and can launch runs that read and "
            "write any path as this user; keep 127.0.0.1, or put it behind a reverse proxy with a login and add "
            "--dagster-public"
        )


def run_dev(workspace: Workspace, host: str, port: int, *, public: bool = False) -> int:
    """``vup dev``: the Dagster UI and daemon until Ctrl-C / SIGTERM."""
    check_dagster_host(host, public, "--host")
    check_port_free(host, port, "--port")
    print(f"Dagster UI on {_url(host, port)} (instance {workspace.dagster_home}); Ctrl-C stops it", file=sys.stderr)
    process = start_dagster(workspace, host, port)
    with sigterm_as_interrupt():
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop_process(process)
            return 0


def run_serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 7860, dagster_host: str = "127.0.0.1",
              dagster_port: int = 3000, auth: str | None = None, max_upload_mb: float | None = None,
              dagster_log: bool = True, dagster_public: bool = False) -> int:
    """``vup serve``: Dagster webserver + daemon, then the Gradio page; all stop on Ctrl-C / SIGTERM.

    ``dagster_log``: Dagster's own output goes to ``<workspace>/logs/dagster.log`` (else to this terminal).

    Raises:
        SettingsError: a non-loopback ``host`` without authentication, a non-loopback ``dagster_host`` without
        ``dagster_public``, a bad ``auth`` / upload limit, or a Dagster port already taken.
    """
    check_dagster_host(dagster_host, dagster_public, "--dagster-host")
    credentials = parse_auth(auth or os.environ.get(AUTH_ENV))
    if not is_loopback(host) and not credentials:
        raise SettingsError(
            f"serve: --host {host} makes the page reachable from other machines; give a login with "
            f"--auth USER:PASSWORD (or {AUTH_ENV}), or keep the default 127.0.0.1"
        )
    if max_upload_mb is not None:
        if max_upload_mb <= 0:
            raise SettingsError(f"serve: --max-upload-mb {max_upload_mb} must be above 0; e.g. 2048")
        os.environ["VUP_MAX_UPLOAD_MB"] = str(max_upload_mb)
    # Gradio: no calls home, uploads under the workspace (never the system temp folder)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.root / "tmp" / "gradio")
    Path(os.environ["GRADIO_TEMP_DIR"]).mkdir(parents=True, exist_ok=True)

    check_port_free(dagster_host, dagster_port, "--dagster-port")
    dagster_url = _url(dagster_host, dagster_port)
    log_file = workspace.root / "logs" / "dagster.log" if dagster_log else None
    process = start_dagster(workspace, dagster_host, dagster_port, log_file=log_file)
    app = None
    with sigterm_as_interrupt():
        try:
            wait_for_webserver(dagster_url, process)
            from orchestration.launch.service import DagsterService
            from orchestration.launch.uploads import max_upload_bytes
            from ui.app import build_app, launch_options

            service = DagsterService(workspace, dagster_url)
            app = build_app(service, max_upload=max_upload_bytes())
            app.launch(server_name=host, server_port=port, auth=credentials, prevent_thread_lock=True, quiet=True,
                       ssr_mode=False, show_error=False, **launch_options(service))
            from ui.export_api import EXPORT_PATH, mount_export_api

            mount_export_api(app.app, service, credentials=credentials)  # same server, same login
            print(f"Video Upscaler Pro page: {_url(host, port)}" + ("  (login required)" if credentials else ""))
            print(f"Export API:              POST {_url(host, port)}{EXPORT_PATH}")
            print(f"Dagster UI:              {dagster_url}  (instance {workspace.dagster_home})")
            if log_file is not None:
                print(f"Dagster log:             {log_file}")
            print("Ctrl-C stops both.", flush=True)
            code = process.wait()
            print(f"the Dagster webserver stopped (code {code}); stopping the page", file=sys.stderr)
            return code or 1
        except KeyboardInterrupt:
            return 0
        finally:
            if app is not None:
                app.close()
            stop_process(process)
