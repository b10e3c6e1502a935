"""Binding and login: the page and the Dagster webserver listen on 127.0.0.1 unless a flag says otherwise; a page on
any other address needs a login (``--auth`` / ``VUP_AUTH``), and that login is then enforced on every route."""

from __future__ import annotations

import httpx
import pytest
from hostile import PageService, serve_page

from orchestration.cli.commands import build_parser
from orchestration.launch import serve
from orchestration.resources.workspace import Workspace
from stages.errors import SettingsError


def test_cli_defaults_are_loopback():
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.dagster_host == "127.0.0.1" and args.auth is None
    assert parser.parse_args(["dev"]).host == "127.0.0.1"


class FakeProcess:
    def __init__(self) -> None:
        self.returncode = None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.returncode = 0
        return 0

    def send_signal(self, _signal) -> None:
        self.returncode = 0


class FakeServer:
    """The FastAPI server a launched Blocks has (``Blocks.app``): records the routers added to it."""

    def __init__(self) -> None:
        self.routers: list = []

    def include_router(self, router) -> None:
        self.routers.append(router)


class FakeApp:
    def __init__(self) -> None:
        self.launched: dict = {}
        self.closed = False
        self.app = FakeServer()

    def launch(self, **kwargs) -> None:
        self.launched = kwargs

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def started(monkeypatch, tmp_path):
    """run_serve with nothing real started: what Dagster and the page would have been started with."""
    import ui.app

    calls: dict = {"dagster": [], "app": FakeApp()}
    for name in ("VUP_AUTH", "GRADIO_SERVER_NAME", "VUP_MAX_UPLOAD_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # run_serve sets it; restored afterwards
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")

    def start_dagster(workspace, host, port, *, log_file=None):
        calls["dagster"].append((host, port))
        return FakeProcess()

    monkeypatch.setattr(serve, "start_dagster", start_dagster)
    monkeypatch.setattr(serve, "wait_for_webserver", lambda url, process, timeout=0: None)
    monkeypatch.setattr(ui.app, "build_app", lambda service, max_upload=None: calls["app"])
    monkeypatch.setattr(ui.app, "launch_options", lambda service, max_upload=None: {"allowed_paths": []})
    calls["workspace"] = Workspace(tmp_path / "ws")
    return calls


def test_serve_binds_both_to_loopback_by_default(started, monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # Gradio's own variable must not widen the binding
    serve.run_serve(started["workspace"])
    assert started["dagster"] == [("127.0.0.1", 3000)]
    launched = started["app"].launched
    assert launched["server_name"] == "127.0.0.1" and launched["auth"] is None
    assert started["app"].closed


def test_dagster_command_binds_where_it_is_told(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda command, **kwargs: commands.append(command))
    serve.start_dagster(Workspace(tmp_path / "ws"), "127.0.0.1", 3000)
    command = commands[0]
    assert isinstance(command, list) and command[command.index("-h") + 1] == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", "", "127.0.0.1.example.org"])
def test_exposing_the_page_without_a_login_is_refused_before_anything_starts(host, started):
    with pytest.raises(SettingsError, match="--auth USER:PASSWORD"):
        serve.run_serve(started["workspace"], host=host)
    assert started["dagster"] == [] and started["app"].launched == {}


def test_exposing_the_page_with_a_login_passes_it_to_the_page(started, monkeypatch):
    serve.run_serve(started["workspace"], host="0.0.0.0", auth="ana:s3cret")
    assert started["app"].launched["server_name"] == "0.0.0.0"
    assert started["app"].launched["auth"] == [("ana", "s3cret")]
    assert started["dagster"] == [("127.0.0.1", 3000)], "the Dagster webserver stays on loopback"
    # the export endpoint on the same server takes the same login (HTTP Basic)
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ui.export_api import EXPORT_PATH

    (router,) = started["app"].app.routers
    server = FastAPI()
    server.include_router(router)
    client = TestClient(server)
    assert client.post(EXPORT_PATH, data={"keyframes_json": "[]"}).status_code == 401
    assert client.post(EXPORT_PATH, data={"keyframes_json": "[]"}, auth=("ana", "wrong")).status_code == 401
    assert client.post(EXPORT_PATH, data={"keyframes_json": "[]"}, auth=("ana", "s3cret")).status_code == 422
    started["app"].launched = {}
    monkeypatch.setenv("VUP_AUTH", "bo:pw1,cy:pw2")
    serve.run_serve(started["workspace"], host="192.168.1.5")
    assert started["app"].launched["auth"] == [("bo", "pw1"), ("cy", "pw2")]


@pytest.mark.parametrize("auth", ["ana", "ana:", ":pw", "ana:pw,"])
def test_a_malformed_login_is_refused_even_on_loopback(auth, started):
    with pytest.raises(SettingsError, match="USER:PASSWORD"):
        serve.run_serve(started["workspace"], auth=auth)
    assert started["dagster"] == []


def test_the_login_is_enforced_on_every_route(tmp_path, monkeypatch):
    """The page served with a login (as `vup serve --host ... --auth` does): without it, no API call, no config,
    no file and no upload; with it, the API answers."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    workspace = Workspace(tmp_path / "ws").ensure()
    result = workspace.outputs / "out.txt"
    result.write_text("result")
    app, url = serve_page(PageService(workspace), auth=[("ana", "s3cret")])
    try:
        with httpx.Client(timeout=30) as anonymous:
            for method, route in (("GET", "/config"), ("GET", "/gradio_api/info"), ("POST", "/gradio_api/call/cancel"),
                                  ("GET", f"/gradio_api/file={result}"), ("POST", "/gradio_api/upload"),
                                  ("POST", "/gradio_api/queue/join")):
                kwargs = {"json": {"data": ["x"]}} if route.endswith("cancel") else {}
                response = anonymous.request(method, f"{url}{route}", **kwargs)
                assert response.status_code in (401, 403), (route, response.status_code)
                assert "result" not in response.text
            wrong = anonymous.post(f"{url}/login", data={"username": "ana", "password": "nope"})
            assert wrong.status_code in (400, 401)
        with httpx.Client(timeout=30) as user:
            assert user.post(f"{url}/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
            assert user.get(f"{url}/gradio_api/file={result}").text == "result"
            assert user.post(f"{url}/gradio_api/call/cancel", json={"data": ["x"]}).status_code == 200
    finally:
        app.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_exposing_the_dagster_ui_needs_an_explicit_flag(host, tmp_path):
    from orchestration.launch.serve import check_dagster_host, run_dev, run_serve
    from orchestration.resources.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(SettingsError, match="Dagster UI, which has no login.*--dagster-public"):
        run_serve(ws, dagster_host=host)
    with pytest.raises(SettingsError, match="--host .*--dagster-public"):
        run_dev(ws, host, 3000)
    check_dagster_host(host, True, "--dagster-host")  # the operator says a login sits in front of it
    check_dagster_host("127.0.0.1", False, "--dagster-host")
