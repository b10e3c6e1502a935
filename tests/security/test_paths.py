"""No request reads or writes a path outside the workspace: every input that carries a path or a name is tried with
traversal attempts (upload names, run ids, result paths, the page's API and file server, the inbox sidecar's output
name, model import ids and names, the user catalog, the page's settings), and a canary folder next to the workspace
must stay exactly as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gradio as gr
import httpx
import pytest
import torch
from hostile import HOSTILE_STEM, PageService, call_api, no_pwned, serve_page, snapshot

from orchestration.cli import main
from orchestration.launch.options import DEFAULT_SETTINGS, SETTINGS_FILE, save_settings
from orchestration.launch.options import (
    load_settings as load_page_settings,
)
from orchestration.launch.uploads import UploadError, accept_upload
from orchestration.resources.workspace import Workspace
from orchestration.sensors.inbox import build_request, load_settings
from stages.errors import SettingsError
from stages.models.store import ModelStore
from stages.models.user_catalog import CATALOG_FILENAME, import_model
from ui import app as page
from ui.i18n import msg

TRAVERSAL_NAMES = [
    "../../etc/passwd.mp4",
    "/etc/passwd.mp4",
    "..\\..\\x.mp4",
    "C:\\Windows\\system32\\x.mp4",
    "a\x00b.mp4",
    "x\x00.exe",
    "x" * 5000 + ".mp4",
    "...",
    "..",
    ".",
    "....mp4",
    ".mp4",
    "/",
    "",
    "\u202egnp.exe.mp4",  # right-to-left override
    "\uff0e\uff0e\uff0fx.mp4",  # fullwidth ../
    "..\u2215..\u2215x.mp4",  # division slash
    "%2e%2e%2fx.mp4",
    "CON.mp4",
    "nul.MKV",
    "-rf.mp4",
    "x.mp4/",
    "name\n.mp4",
    f"{HOSTILE_STEM}.mp4",
    "../canary/passwd.mp4",
]


def outside_files(base: Path, *inside: Path) -> dict[str, tuple[int, int]]:
    """Snapshot of ``base`` leaving out the folders tests may write in."""
    keep = [p.resolve() for p in inside]
    return {name: stat for name, stat in snapshot(base).items()
            if not any((base / name).resolve().is_relative_to(k) for k in keep)}


# ------------------------------------------------------------------------------------------------ upload names


@pytest.mark.parametrize("name", TRAVERSAL_NAMES, ids=range(len(TRAVERSAL_NAMES)))
def test_upload_names_stay_a_plain_name_under_the_uploads(name, workspace, tiny_clip, canary, tmp_path):
    before = outside_files(tmp_path, workspace.root)
    try:
        upload = accept_upload(workspace, tiny_clip, original_name=name)
    except UploadError as exc:
        assert "upload:" in str(exc)
    else:
        stored = upload.path
        assert stored.parent.parent == workspace.uploads and stored.parent.name == upload.key
        assert stored.name == upload.name and stored.resolve().is_relative_to(workspace.uploads.resolve())
        assert "/" not in stored.name and "\\" not in stored.name and "\x00" not in stored.name
        assert not stored.name.startswith((".", "-")) and len(stored.name) <= 111
        assert stored.name.isascii() and stored.name.split(".")[0].upper() not in ("CON", "NUL")
        assert stored.read_bytes() == tiny_clip.read_bytes()
    canary.assert_untouched()
    assert outside_files(tmp_path, workspace.root) == before
    assert not no_pwned(tmp_path)


def test_the_page_takes_files_only_from_its_upload_folders(workspace, tiny_clip, canary, tmp_path, monkeypatch):
    gradio_tmp = tmp_path / "gradio-tmp"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_tmp))
    received = gradio_tmp / "abc" / "clip.mp4"
    received.parent.mkdir(parents=True)
    shutil.copy(tiny_clip, received)
    assert page.received_upload(str(received), workspace) == str(received)
    link = gradio_tmp / "abc" / "link.mp4"
    link.symlink_to(canary.folder / "passwd.mp4")
    for hostile in (str(canary.folder / "passwd.mp4"), str(gradio_tmp / ".." / "canary" / "passwd.mp4"),
                    str(link), "/etc/passwd", str(gradio_tmp / "abc" / "missing.mp4"), "a\x00b", "",
                    str(workspace.root / SETTINGS_FILE)):
        assert page.received_upload(hostile, workspace) is None, hostile
    canary.assert_untouched()


def test_result_and_report_files_are_served_only_from_the_page_folders(workspace, canary, tmp_path):
    workspace.outputs.mkdir(parents=True, exist_ok=True)
    good = workspace.outputs / "key" / "out.mp4"
    good.parent.mkdir()
    good.write_bytes(b"x")
    (workspace.root / SETTINGS_FILE).write_text("{}")
    link = workspace.outputs / "key" / "link.mp4"
    link.symlink_to(canary.folder / "secret.txt")
    assert page.servable(good, workspace) == str(good)
    for hostile in ("/etc/passwd", canary.folder / "secret.txt", workspace.root / SETTINGS_FILE,
                    workspace.outputs / ".." / SETTINGS_FILE, workspace.outputs / "key" / ".." / ".." / SETTINGS_FILE,
                    link, workspace.root / "dagster", "", None):
        assert page.servable(hostile, workspace) is None, hostile


# ------------------------------------------------------------------------------------------------ run ids


HOSTILE_RUN_IDS = ["../../../../canary/evil", "../../../canary/evil", "../../canary/evil", "..", ".", "/", "x\x00y", "a" * 1000,
                   "%2e%2e%2fevil", "runs", "index", "../runs", "' OR 1=1 --", "*"]


def test_service_run_id_inputs_never_reach_the_filesystem(workspace, canary, tmp_path):
    """SQLite event-log storage keeps one database per run (history/runs/<run_id>.db): a run id such as
    ../../x would open, and create, a file outside the instance. The service refuses such ids first."""
    from dagster import DagsterInstance

    from orchestration.launch.service import DagsterService
    from orchestration.resources.workspace import prepare_dagster_home

    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    try:
        service = DagsterService(workspace, "http://127.0.0.1:9", instance=instance)
        # make the instance's storage exist, then snapshot it
        assert service.recent_runs() == []
        before_home = snapshot(workspace.dagster_home)
        before = outside_files(tmp_path, workspace.root)
        for run_id in HOSTILE_RUN_IDS:
            assert service.logs(run_id) == "", run_id
            assert service.progress(run_id).status == "UNKNOWN", run_id
            assert service.cancel(run_id).startswith("no run"), run_id
            assert not service.known_run(run_id)
            assert page.run_logs(service, run_id) == msg("en", "no_logs")
            assert page.progress_view(service, run_id).file is None
            assert page.compare_view(service, run_id).source is None
    finally:
        instance.dispose()
    canary.assert_untouched()
    assert outside_files(tmp_path, workspace.root) == before
    created = set(snapshot(workspace.dagster_home)) - set(before_home)
    assert not [name for name in created if name.endswith(".db")], created


# ------------------------------------------------------------------------------------------------ settings file


def test_hostile_page_settings_stay_data_in_the_settings_file(workspace, canary, tmp_path):
    hostile = {
        "model": "../../canary/secret.txt", "codec": f"{HOSTILE_STEM}", "container": "../mp4",
        "device": "cuda; touch pwned", "interp_method": "$(touch pwned)", "temporal": "[0:v]movie=/etc/passwd",
        "scale": 8, "crf": "18; rm -rf /", "chunk_seconds": float("inf"),
        "../../canary/secret": "x", "__class__": "x", SETTINGS_FILE: "x",
    }
    before = outside_files(tmp_path, workspace.root)
    stored = save_settings(workspace, hostile)
    assert set(stored) == set(DEFAULT_SETTINGS)
    assert sorted(p.name for p in workspace.root.iterdir() if p.is_file()) == [SETTINGS_FILE]
    json.loads((workspace.root / SETTINGS_FILE).read_text())  # still valid JSON
    remembered = page.page_settings(workspace, [], [("auto", None)])
    assert remembered["container"] == "mp4" and remembered["codec"] == "h264" and remembered["device"] == "auto"
    assert remembered["interp_method"] == "auto" and remembered["temporal"] == "auto"
    for key, value in hostile.items():
        page.remember(workspace, key, value)
    assert set(load_page_settings(workspace)) == set(DEFAULT_SETTINGS)
    canary.assert_untouched()
    assert outside_files(tmp_path, workspace.root) == before
    assert not no_pwned(tmp_path)


# ------------------------------------------------------------------------------------------------ inbox sidecar


@pytest.mark.parametrize("output", ["../escape.mp4", "../../canary/passwd.mp4", "/tmp/escape.mp4", "..\\escape.mp4",
                                    "..", ".", "", "sub/dir.mp4", "C:\\x.mp4", "\x00.mp4", "outputs/../../x.mp4"])
def test_inbox_output_name_cannot_leave_the_outputs(output, workspace, tiny_clip, canary, tmp_path):
    inbox = workspace.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    video = inbox / "clip.mp4"
    shutil.copy(tiny_clip, video)
    for key in ("output", "output_path"):
        (inbox / "clip.json").write_text(json.dumps({key: output}))
        try:
            request = build_request(workspace, video, load_settings(inbox, video), "0123456789abcdef")
        except SettingsError:
            continue
        target = Path(os.path.normpath(os.path.abspath(request.output)))
        assert target.is_relative_to(workspace.outputs.resolve()), (key, output, target)
        assert target.parent == workspace.outputs.resolve() or target.parent.parent == workspace.outputs.resolve()
    canary.assert_untouched()


# ------------------------------------------------------------------------------------------------ model names


def _tiny_weights(path: Path) -> Path:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(), path)
    return path


@pytest.mark.parametrize("model_id", ["../escape", "../../canary/x", "/abs", "a/b", "a\\b", "..", ".", "", "x\x00y",
                                      "UPPER", "-x", "a" * 65])
def test_models_import_refuses_ids_that_are_not_plain_names(model_id, tmp_path, canary):
    weights = _tiny_weights(tmp_path / "w.pth")
    store = ModelStore(cache_dir=tmp_path / "cache", allow_download=False)
    with pytest.raises(SettingsError, match="not a valid id"):
        import_model(store, weights, model_id=model_id)
    assert not (tmp_path / "cache" / "user").exists() or not any((tmp_path / "cache" / "user").iterdir())
    canary.assert_untouched()


def test_models_import_from_the_cli_with_hostile_names(tmp_path, canary, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("VUP_CACHE_DIR", str(cache))
    before = outside_files(tmp_path, cache)
    weights = _tiny_weights(tmp_path / f"{HOSTILE_STEM}.pth")
    assert main(["models", "import", str(weights), "--id", "../canary/x", "-q"]) == 2
    assert "not a valid id" in capsys.readouterr().err
    assert main(["models", "import", str(weights), "-q"]) == 0  # the id comes from the name, sanitised
    out = capsys.readouterr().out
    folders = list((cache / "user").iterdir())
    assert len(folders) == 1 and folders[0].name in out
    assert all(p.resolve().is_relative_to(cache.resolve()) for p in cache.rglob("*"))
    for command in (["models", "remove", "../canary", "--yes"], ["models", "info", "../../canary/secret"],
                    ["models", "download", "../canary"], ["models", "verify", "../canary"]):
        assert main([*command, "-q"]) == 2, command
        capsys.readouterr()
    weights.unlink()
    canary.assert_untouched()
    assert outside_files(tmp_path, cache) == before
    assert not no_pwned(tmp_path)


def test_a_hostile_user_catalog_is_refused_and_nothing_outside_the_cache_is_used(tmp_path, canary):
    cache = tmp_path / "cache"
    cache.mkdir()
    record = {"id": "evil", "description": "", "license": "", "architecture": "SRVGGNetCompact",
              "spandrel_arch": "Compact", "scale": 2, "native_scale": None, "format": "pth",
              "weights": "../../../canary/secret.txt", "size": 1, "sha256": "0" * 64}
    for bad in ({**record}, {**record, "weights": "x.pth", "id": "../../canary"},
                {**record, "weights": "x.pth", "ncnn": {"param": "/etc/passwd", "bin": "x.bin", "param_sha256": "0",
                                                        "bin_sha256": "0"}}):
        (cache / CATALOG_FILENAME).write_text(json.dumps({"schema": "video-upscaler-pro/user-catalog", "version": 1,
                                                          "models": [bad]}))
        store = ModelStore(cache_dir=cache, allow_download=False)
        assert "evil" not in store.catalog and "../../canary" not in store.catalog
        assert store.user_catalog.problem and "unsafe" in store.user_catalog.problem
    canary.assert_untouched()


# ------------------------------------------------------------------------------------------------ the live page


@pytest.fixture
def live_page(tmp_path, monkeypatch, tiny_clip):
    """The page served like `vup serve` serves it (loopback, launch_options), with a workspace and a canary."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    workspace = Workspace(tmp_path / "ws").ensure()
    (workspace.root / SETTINGS_FILE).write_text("{}")
    (workspace.dagster_home).mkdir(parents=True, exist_ok=True)
    (workspace.dagster_home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    service = PageService(workspace)
    app, url = serve_page(service)
    try:
        with httpx.Client(timeout=60) as client:
            yield {"url": url, "client": client, "workspace": workspace, "service": service, "app": app}
    finally:
        app.close()


def test_the_file_server_serves_only_the_page_folders(live_page, canary, tmp_path):
    url, client, workspace = live_page["url"], live_page["client"], live_page["workspace"]
    options = page.launch_options(live_page["service"])
    assert sorted(options["allowed_paths"]) == sorted(str(p) for p in page.served_folders(workspace))
    assert str(workspace.root) not in options["allowed_paths"]
    good = workspace.outputs / "key" / "out.txt"
    good.parent.mkdir(parents=True)
    good.write_text("result")
    (workspace.outputs / "key" / "link.txt").symlink_to(canary.folder / "secret.txt")
    assert client.get(f"{url}/gradio_api/file={good}").text == "result"
    for path in ("/etc/passwd", canary.folder / "secret.txt", workspace.root / SETTINGS_FILE,
                 workspace.dagster_home / "dagster.yaml", f"{workspace.uploads}/../{SETTINGS_FILE}",
                 f"{workspace.outputs}/%2e%2e/{SETTINGS_FILE}", f"{workspace.outputs}/..%2f{SETTINGS_FILE}",
                 workspace.outputs / "key" / "link.txt", f"{workspace.outputs}/key/../../../canary/secret.txt",
                 "../../../../../../etc/passwd"):
        for route in ("gradio_api/file=", "file=", "gradio_api/file/"):
            response = client.get(f"{url}/{route}{path}")
            assert response.status_code in (403, 404, 405), (route, path, response.status_code)
            assert "do not read" not in response.text and "root:" not in response.text
    canary.assert_untouched()


def _upload(client, url: str, path: Path) -> str:
    response = client.post(f"{url}/gradio_api/upload", files=[("files", (path.name, path.read_bytes()))])
    response.raise_for_status()
    return response.json()[0]


def test_the_api_never_takes_a_file_from_elsewhere(live_page, canary, tiny_clip, tmp_path):
    url, client, workspace = live_page["url"], live_page["client"], live_page["workspace"]
    private = canary.folder / "private.mp4"
    shutil.copy(tiny_clip, private)
    canary.before = snapshot(canary.folder)
    meta = {"_type": "gradio.FileData"}
    hostile = [str(private), {"path": str(private), "orig_name": "x.mp4"},
               {"path": str(private), "orig_name": "x.mp4", "meta": meta},
               {"path": f"{tmp_path}/gradio-tmp/../canary/private.mp4", "orig_name": "x.mp4", "meta": meta},
               {"path": "/etc/passwd", "orig_name": "passwd.mp4", "meta": meta}]
    for payload in hostile:
        event, outputs = call_api(client, url, "inspect", [payload])
        assert event != "complete" or "accepted" not in json.dumps(outputs), payload
        settings = ["toy-x4", 2, False, "auto", "factor", 2, 60, "none", 0.6, "cpu", 0, False, "h264", "mp4", 18,
                    10.0]
        event, outputs = call_api(client, url, "process", [payload, *settings])
        assert event != "complete" or outputs[0] == "", payload
    assert not workspace.uploads.exists() or not any(workspace.uploads.rglob("*.mp4"))
    assert live_page["service"].submitted == []
    # a real upload with a hostile original name is stored under the uploads with a plain name
    uploaded = _upload(client, url, tiny_clip)
    for name in ("../../../canary/private.mp4", f"{HOSTILE_STEM}.mp4", "/etc/passwd.mp4", "..\\..\\x.mp4"):
        event, outputs = call_api(client, url, "inspect", [{"path": uploaded, "orig_name": name, "meta": meta}])
        assert event == "complete" and "accepted" in json.dumps(outputs), (name, outputs)
    stored = [p for p in workspace.uploads.rglob("*") if p.is_file()]
    assert stored and all(p.resolve().is_relative_to(workspace.uploads.resolve()) for p in stored)
    # a model or an option that names a path is refused before any run
    for model in ("/etc/passwd", "../../canary/private.mp4", str(private)):
        event, outputs = call_api(client, url, "process", [{"path": uploaded, "orig_name": "a.mp4", "meta": meta},
                                                           model, *settings[1:]])
        assert event == "complete" and outputs[0] == "", (model, outputs)
    for run_id in HOSTILE_RUN_IDS[:4]:
        assert call_api(client, url, "progress", [run_id])[0] == "complete"
        assert call_api(client, url, "cancel", [run_id])[0] == "complete"
    assert live_page["service"].submitted == []
    canary.assert_untouched()
    assert not no_pwned(tmp_path)


def test_gradio_upload_folder_is_the_one_the_page_checks(live_page, tiny_clip):
    uploaded = _upload(live_page["client"], live_page["url"], tiny_clip)
    assert Path(uploaded).resolve().is_relative_to(Path(gr.utils.get_upload_folder()).resolve())
    assert page.received_upload(uploaded, live_page["workspace"]) == uploaded
    assert os.environ["GRADIO_TEMP_DIR"] in uploaded



def test_uploads_above_the_limit_or_of_another_type_are_refused(live_page, tiny_clip, tmp_path):
    """Gradio refuses a file above the page's limit at upload (8 MB here, as launch_options sets it); the page
    refuses a file that is not a video by its name and by its content."""
    url, client, workspace = live_page["url"], live_page["client"], live_page["workspace"]
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(9 << 20))
    response = client.post(f"{url}/gradio_api/upload", files=[("files", (big.name, big.read_bytes()))])
    assert response.status_code == 413, response.status_code
    meta = {"_type": "gradio.FileData"}
    for name, content in (("script.sh", b"#!/bin/sh\ntouch pwned\n"), ("fake.mp4", b"#!/bin/sh\ntouch pwned\n"),
                          ("page.html", b"<script>alert(1)</script>"), ("clip.mp4.exe", tiny_clip.read_bytes())):
        source = tmp_path / name
        source.write_bytes(content)
        uploaded = _upload(client, url, source)
        event, outputs = call_api(client, url, "inspect", [{"path": uploaded, "orig_name": name, "meta": meta}])
        assert event == "complete" and "accepted" not in json.dumps(outputs), (name, outputs)
    assert not workspace.uploads.exists() or not any(p.is_file() for p in workspace.uploads.rglob("*"))
    assert not no_pwned(tmp_path)
