"""Downloads: HTTPS only (plain HTTP to this machine only, for the tests' loopback server), no redirect off HTTPS or
to another machine's plain HTTP, size and sha256 checked before the file is renamed into place, and a file without
a known sha256 is never used silently (warning, load check, then its sha256 is pinned and checked from then on)."""

from __future__ import annotations

import hashlib
import io
import logging
import urllib.request
from email.message import Message
from pathlib import Path

import pytest
import torch

from stages.errors import DownloadError, ModelError
from stages.models.catalog import CATALOG, ModelEntry, ModelFile
from stages.models.download import _SafeRedirects, download_file, url_problem
from stages.models.store import ModelStore

PAYLOAD = b"weights " * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.parametrize("url", [
    "https://github.com/x/y/releases/download/v1/model.pth", "HTTPS://example.org/a.pth",
    "http://127.0.0.1:8000/a.pth", "http://127.0.0.5/a.pth", "http://localhost/a.pth", "http://[::1]:9/a.pth",
])
def test_accepted_urls(url):
    assert url_problem(url) is None


@pytest.mark.parametrize("url", [
    "http://example.org/a.pth", "http://10.0.0.1/a.pth", "http://127.0.0.1.evil.example/a.pth",
    "http://localhost.evil.example/a.pth", "http://0.0.0.0/a.pth", "ftp://example.org/a.pth", "file:///etc/passwd",
    "data:,hello", "https:///no-host", "//example.org/a.pth", "a.pth", "",
])
def test_refused_urls(url, tmp_path):
    assert url_problem(url) is not None
    dest = tmp_path / "a.pth"
    with pytest.raises(DownloadError, match="https|URL"):
        download_file([url], dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_a_refused_url_among_good_ones_refuses_the_whole_call(tmp_path, http_server):
    http_server.files["a.pth"] = PAYLOAD
    with pytest.raises(DownloadError, match="plain http to another machine"):
        download_file([http_server.url("a.pth"), "http://example.org/a.pth"], tmp_path / "a.pth",
                      size=len(PAYLOAD), sha256=SHA, progress=False)
    assert http_server.hits == []


@pytest.mark.parametrize("target", ["http://example.invalid/a.pth", "ftp://127.0.0.1/a.pth",
                                    "file:///etc/passwd"])
def test_redirect_off_the_allowed_urls_is_refused_once(target, tmp_path, http_server):
    http_server.redirects["go.pth"] = target
    dest = tmp_path / "a.pth"
    with pytest.raises(DownloadError, match="(?i)redirect"):  # urllib itself refuses file:// first
        download_file([http_server.url("go.pth")], dest, size=len(PAYLOAD), sha256=SHA, progress=False,
                      retries=3)
    assert http_server.hits == ["go.pth"], "a refused redirect is not retried"
    assert not dest.exists() and not dest.with_suffix(".pth.part").exists()


def test_redirect_between_loopback_urls_is_followed(tmp_path, http_server):
    http_server.files["real.pth"] = PAYLOAD
    http_server.redirects["go.pth"] = "/real.pth"
    dest = download_file([http_server.url("go.pth")], tmp_path / "a.pth", size=len(PAYLOAD), sha256=SHA,
                         progress=False)
    assert dest.read_bytes() == PAYLOAD and http_server.hits == ["go.pth", "real.pth"]


def _redirect(from_url: str, to_url: str):
    request = urllib.request.Request(from_url)
    return _SafeRedirects().redirect_request(request, io.BytesIO(), 302, "Found", Message(), to_url)


@pytest.mark.parametrize("to_url", ["http://127.0.0.1/a.pth", "http://example.org/a.pth", "ftp://example.org/a"])
def test_https_never_redirects_to_plain_http(to_url):
    with pytest.raises(DownloadError, match="redirect"):
        _redirect("https://github.com/a.pth", to_url)


def test_https_redirects_within_https_are_followed():
    assert _redirect("https://github.com/a.pth", "https://objects.githubusercontent.com/x").full_url == \
        "https://objects.githubusercontent.com/x"
    assert _redirect("https://github.com/a.pth", "https://github.com/b.pth").full_url == "https://github.com/b.pth"


def test_size_and_sha256_are_checked_before_the_file_takes_its_name(tmp_path, http_server):
    dest = tmp_path / "a.pth"
    dest.write_bytes(b"the previous good file")
    http_server.files["a.pth"] = PAYLOAD
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(DownloadError, match="sha256"):
        download_file([http_server.url("a.pth")], dest, size=len(PAYLOAD), sha256=wrong, progress=False)
    assert dest.read_bytes() == b"the previous good file"
    assert not dest.with_suffix(".pth.part").exists()
    with pytest.raises(DownloadError, match="bytes"):
        download_file([http_server.url("a.pth")], dest, size=len(PAYLOAD) - 1, sha256=SHA, progress=False)
    assert dest.read_bytes() == b"the previous good file"


def test_every_builtin_download_is_https_and_pinned():
    for entry in CATALOG.values():
        if entry.file is None:
            continue
        for url in entry.file.urls:
            assert url.startswith("https://") and url_problem(url) is None, (entry.id, url)
        if entry.file.urls:
            assert entry.file.sha256 and len(entry.file.sha256) == 64, f"{entry.id} has no sha256 pinned"


def test_an_unpinned_download_warns_is_load_checked_then_pinned(tmp_path, http_server, caplog):
    """A catalog entry without a sha256 (a custom catalog): the download is loaded as the expected architecture
    before use, its sha256 is recorded next to it, and a later change of the file is caught."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    weights = tmp_path / "src.pth"
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(), weights)
    data = weights.read_bytes()
    http_server.files["toy.pth"] = data
    entry = ModelEntry(id="toy-x2", task="super-resolution", architecture="SRVGGNetCompact", scale=2,
                       family="toy", file=ModelFile("toy.pth", (http_server.url("toy.pth"),), len(data), None),
                       license="MIT", description="test", tags=(), spandrel_arch="Compact")
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="stages.models.download"):
        loaded = ModelStore(cache_dir=cache, progress=False, catalog={"toy-x2": entry}).load("toy-x2")
    assert loaded.scale == 2
    assert any("no sha256 is known" in record.getMessage() for record in caplog.records)
    cached = cache / "toy-x2" / "toy.pth"
    pin = cached.with_name("toy.pth.sha256")
    assert pin.read_text().split()[0] == hashlib.sha256(data).hexdigest()
    # the same size, other bytes: the pin catches it and the file is not used
    tampered = bytearray(cached.read_bytes())
    tampered[-100] ^= 0xFF
    cached.write_bytes(bytes(tampered))
    offline = ModelStore(cache_dir=cache, allow_download=False, catalog={"toy-x2": entry})
    with pytest.raises(ModelError):
        offline.load("toy-x2")
    assert not cached.exists()


def test_a_catalog_entry_with_plain_http_is_refused_before_any_transfer(tmp_path):
    entry = ModelEntry(id="toy-x2", task="super-resolution", architecture="SRVGGNetCompact", scale=2,
                       family="toy", file=ModelFile("toy.pth", ("http://example.org/toy.pth",), 10, "0" * 64),
                       license="MIT", description="test", tags=(), spandrel_arch="Compact")
    with pytest.raises(DownloadError, match="plain http"):
        ModelStore(cache_dir=tmp_path / "cache", progress=False, catalog={"toy-x2": entry},
                   allow_download=True).resolve("toy-x2")
    assert not (tmp_path / "cache" / "toy-x2" / "toy.pth").exists()


def test_downloaded_file_lands_only_under_the_cache(tmp_path: Path, http_server):
    """The destination is the store's choice (cache/<id>/<catalog filename>), never a name from the server."""
    http_server.files["a.pth"] = PAYLOAD
    http_server.redirects["x"] = "/a.pth"
    dest = download_file([http_server.url("x")], tmp_path / "cache" / "a.pth", size=len(PAYLOAD), sha256=SHA,
                         progress=False)
    assert dest == tmp_path / "cache" / "a.pth"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.pth", "a.pth.lock"]
