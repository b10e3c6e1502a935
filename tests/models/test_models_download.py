"""download_file against a loopback HTTP server: checksums, cut connections, resume, size checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from stages.errors import DownloadError
from stages.models.download import download_file, sha256_file

PAYLOAD = os.urandom(3 * 65536 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
CHUNK = 8192


def _part(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


def test_download_with_sha256_check(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    dest = tmp_path / "cache" / "model" / "weights.pth"
    result = download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD), sha256=SHA.upper(),
                           progress=True, chunk_bytes=CHUNK)
    assert result == dest and dest.read_bytes() == PAYLOAD and not _part(dest).exists()
    assert sha256_file(dest) == SHA
    assert http_server.ranges() == [None]
    # A verified file is not downloaded again.
    download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert len(http_server.requests) == 1


def test_wrong_checksum_deletes_the_partial_file(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    dest = tmp_path / "weights.pth"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD), sha256=wrong, progress=False)
    message = str(info.value)
    assert message.startswith("download: weights.pth")
    assert f"has sha256 {SHA}, expected {wrong}" in message and "VUP_MODELS_DIR" in message
    assert not dest.exists() and not _part(dest).exists()
    assert isinstance(info.value, ConnectionError)


def test_cut_connection_keeps_the_part_then_resumes_with_range(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    http_server.cut_next = 1
    dest = tmp_path / "weights.pth"
    url = http_server.url("weights.pth")
    with pytest.raises(DownloadError, match="run again to resume"):
        download_file([url], dest, size=len(PAYLOAD), sha256=SHA, progress=False, chunk_bytes=CHUNK, retries=0)
    assert not dest.exists()
    kept = _part(dest).stat().st_size
    assert kept == len(PAYLOAD) // 2
    download_file([url], dest, size=len(PAYLOAD), sha256=SHA, progress=False, chunk_bytes=CHUNK, retries=0)
    assert dest.read_bytes() == PAYLOAD and not _part(dest).exists()
    assert http_server.ranges() == [None, f"bytes={kept}-"]


def test_cut_connection_is_resumed_automatically(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    http_server.cut_next = 2
    dest = tmp_path / "weights.pth"
    download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD), sha256=SHA, progress=False,
                  chunk_bytes=CHUNK, retries=2)
    assert dest.read_bytes() == PAYLOAD
    ranges = http_server.ranges()
    assert len(ranges) == 3 and ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])


def test_server_ignoring_range_restarts_the_file(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    http_server.honour_range = False
    dest = tmp_path / "weights.pth"
    _part(dest).write_bytes(PAYLOAD[:1000])
    download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.ranges() == ["bytes=1000-"]


def test_size_mismatch_is_rejected(tmp_path: Path, http_server) -> None:
    http_server.files["weights.pth"] = PAYLOAD
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match=f"sends {len(PAYLOAD)} bytes but weights.pth has {len(PAYLOAD) + 1}"):
        download_file([http_server.url("weights.pth")], dest, size=len(PAYLOAD) + 1, sha256=None, progress=False)
    assert not dest.exists() and not _part(dest).exists()


def test_next_url_is_tried_after_a_failure(tmp_path: Path, http_server) -> None:
    http_server.files["good.pth"] = PAYLOAD
    dest = tmp_path / "weights.pth"
    urls = [http_server.url("missing.pth"), http_server.url("good.pth")]
    download_file(urls, dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_every_url_failing_names_each_reason(tmp_path: Path, http_server) -> None:
    http_server.files["other.pth"] = b"not the model"
    urls = [http_server.url("missing.pth"), http_server.url("other.pth")]
    with pytest.raises(DownloadError) as info:
        download_file(urls, tmp_path / "weights.pth", size=None, sha256=SHA, progress=False)
    message = str(info.value)
    assert "every URL failed" in message and "HTTP 404" in message and "has sha256" in message


def test_unreachable_server_fails_without_a_part(tmp_path: Path, http_server) -> None:
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(["http://127.0.0.1:9/none.pth"], dest, size=10, sha256=None, progress=False, timeout=2,
                      retries=1)
    assert not _part(dest).exists()


def test_non_http_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not an http"):
        download_file(["file:///etc/passwd"], tmp_path / "x.pth", size=None, sha256=None)
    with pytest.raises(DownloadError, match="no URL"):
        download_file([], tmp_path / "x.pth", size=None, sha256=None)


def test_progress_is_reported_to_a_callback(tmp_path: Path, http_server) -> None:
    """Besides the terminal bar, a run's log or a page can follow a download (``on_bytes``)."""
    http_server.files["weights.pth"] = PAYLOAD
    seen: list[tuple[int, int | None]] = []
    download_file([http_server.url("weights.pth")], tmp_path / "w.pth", size=len(PAYLOAD), sha256=SHA,
                  progress=False, chunk_bytes=max(1, len(PAYLOAD) // 4), on_bytes=lambda d, t: seen.append((d, t)))
    assert len(seen) >= 4 and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
