"""`vup serve` refuses to expose the page without a login, before it starts anything."""

from __future__ import annotations

import pytest

from orchestration import serve
from orchestration.workspace import Workspace
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
