"""Download a weights file: resume, size and sha256 check, atomic rename.

Standard library only (urllib). Data goes to ``<dest>.part`` first; an interrupted transfer leaves the
``.part`` so the next call resumes it with an HTTP ``Range`` request (a server that ignores ``Range``
sends the whole file again, which restarts it). Only a file whose size and sha256 match is renamed to
``dest`` (fsync, then ``os.replace``). A lock file next to ``dest`` keeps two processes from writing the
same ``.part`` at once (where the platform has ``fcntl``).

Only HTTPS is used, and every redirect must stay on HTTPS. Plain ``http://`` is accepted for a loopback host
only (``127.0.0.0/8``, ``::1``, ``localhost``: a server on this machine, as the tests use), and a redirect from
there may only go to another loopback ``http://`` or to HTTPS. A download without a known sha256 is logged as a
warning: only its size is checked here, so the caller must check it another way (the model store loads it as
the expected architecture and pins its sha256 next to it).
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from stages.errors import DownloadError
from stages.store.fsutil import file_lock, fsync_dir, sha256_file

__all__ = ["download_file", "sha256_file"]

logger = logging.getLogger(__name__)

OnBytes = Callable[[int, "int | None"], None]
"""``on_bytes(received, total)``: bytes of the file so far (a resume counts what it had), its size if known."""

_USER_AGENT = "video-upscaler-pro (model download)"
_RETRY_DELAY_S = 1.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
    """The transfer stopped before the end; the .part is kept and may be resumed."""


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, after: str | None = None) -> str | None:
    """Why ``url`` may not be fetched (None when it may): it must be ``https://``, or ``http://`` to a loopback
    host. ``after``: the URL that redirected to it; a redirect never goes from HTTPS to plain HTTP."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme == "https" and host:
        return None
    if scheme == "http" and _loopback(host):
        if after is not None and urllib.parse.urlsplit(after).scheme.lower() == "https":
            return f"{after} redirects to {url}, from HTTPS to plain HTTP"
        return None
    if scheme == "http":
        return f"{url!r} is plain http to another machine; only https URLs are used (http only to 127.0.0.1)"
    return f"{url!r} is not an https URL"


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL :func:`url_problem` accepts (HTTPS stays HTTPS)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        problem = url_problem(target, after=req.full_url)
        if problem is not None:
            raise DownloadError(f"download: refused a redirect: {problem}; the server is not the one the catalog "
                                "names, fetch the file by hand and check its sha256")
        return super().redirect_request(req, fp, code, msg, headers, target)


def build_opener() -> urllib.request.OpenerDirector:
    """A urllib opener whose redirects stay on allowed URLs (proxy settings follow the environment)."""
    return urllib.request.build_opener(_SafeRedirects())


def _describe_size(size: int | None) -> str:
    return "unknown size" if size is None else f"{size / 1e6:.1f} MB"


def _fetch_once(opener: urllib.request.OpenerDirector, url: str, part: Path, *, size: int | None,
                timeout: float, chunk_bytes: int, progress: bool, label: str, on_bytes: OnBytes | None = None) -> None:
    """One HTTP request appending to (or restarting) ``part``.

    Raises _Interrupted for a transient failure (cut connection, timeout, 5xx), DownloadError otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        logger.warning("download: %s is larger than the expected %d bytes; starting over", part, size)
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener.open(request, timeout=timeout)
    except DownloadError:  # a refused redirect (DownloadError is an OSError: not a transient failure here)
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            part.unlink(missing_ok=True)
            raise _Interrupted(f"the server refused to resume at byte {offset}; starting over") from exc
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"download: {url} answered HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts and resets are OSErrors
        reason = getattr(exc, "reason", exc)
        raise _Interrupted(f"cannot connect ({reason})") from exc
    with response:
        problem = url_problem(response.geturl(), after=url)
        if problem is not None:
            raise DownloadError(f"download: {problem}; fetch the file by hand and check its sha256")
        mode = "wb"
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                mode = "ab"
            else:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"the server resumed at {response.headers.get('Content-Range')!r} instead of "
                                   f"byte {offset}; starting over")
        elif offset:
            logger.info("download: %s ignored the Range request; starting over from byte 0", url)
            offset = 0
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        total = offset + length if length is not None else size
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"download: {url} sends {total} bytes but {label} has {size}; "
                                "the server offers a different file")
        received = 0
        show = progress and sys.stderr is not None
        with open(part, mode) as handle, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=label, file=sys.stderr,
                                              disable=None if show else True, leave=False) as bar:
            while True:
                try:
                    block = response.read(chunk_bytes)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(f"the connection broke after {offset + received} bytes ({exc!r})") from exc
                if not block:
                    break
                handle.write(block)
                received += len(block)
                bar.update(len(block))
                if on_bytes is not None:
                    on_bytes(offset + received, total if total is not None else size)
                if size is not None and offset + received > size:
                    handle.close()
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"download: {url} sent more than the {size} bytes of {label}; "
                                        "the server offers a different file")
    if total is not None and offset + received < total:
        raise _Interrupted(f"the connection closed after {offset + received} of {total} bytes")


def _fetch(opener: urllib.request.OpenerDirector, url: str, part: Path, *, size: int | None, timeout: float,
           chunk_bytes: int, progress: bool, retries: int, label: str, on_bytes: OnBytes | None = None) -> None:
    """Fetch ``url`` into ``part``, resuming after up to ``retries`` interruptions.

    Raises DownloadError; after an interruption the ``.part`` is kept for a later resume.
    """
    attempt = 0
    while True:
        try:
            _fetch_once(opener, url, part, size=size, timeout=timeout, chunk_bytes=chunk_bytes, progress=progress,
                        label=label, on_bytes=on_bytes)
            return
        except _Interrupted as exc:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                kept = f"the {have} bytes received are kept in {part}; run again to resume" if have else \
                    "nothing was received"
                raise DownloadError(f"download: {label} from {url} failed: {exc}; {kept}. Check the network "
                                    "connection, or fetch the file by hand and place it in the models folder "
                                    "(VUP_MODELS_DIR)") from exc
            logger.warning("download: %s from %s interrupted (%s); retry %d of %d resumes at byte %d",
                           label, url, exc, attempt, retries, have)
            time.sleep(_RETRY_DELAY_S * attempt)


def _verify(part: Path, url: str, *, size: int | None, sha256: str | None, label: str) -> None:
    """Check size then sha256 of ``part``; delete it and raise DownloadError on a mismatch."""
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        if got_size < size:
            raise DownloadError(f"download: {label} from {url} ended at {got_size} of {size} bytes; "
                                f"the partial file {part} is kept: run again to resume")
        part.unlink(missing_ok=True)
        raise DownloadError(f"download: {label} from {url} has {got_size} bytes, expected {size}; "
                            "the file was deleted. The server sent a different file: try again later, or fetch "
                            "it by hand, check it and place it in the models folder (VUP_MODELS_DIR)")
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(f"download: {label} from {url} has sha256 {got}, expected {sha256.lower()}; "
                                "the file was deleted. The download was corrupted or the server sent a different "
                                "file: try again, or fetch it by hand, check its sha256 and place it in the "
                                "models folder (VUP_MODELS_DIR)")


def _commit(part: Path, dest: Path) -> None:
    with open(part, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, dest)
    fsync_dir(dest.parent)


def download_file(urls: Sequence[str], dest: Path, *, size: int | None, sha256: str | None, progress: bool = True,
                  timeout: float = 30.0, chunk_bytes: int = 1 << 20, retries: int = 2,
                  on_bytes: OnBytes | None = None) -> Path:
    """Download the file at ``urls`` (tried in order) to ``dest`` and return ``dest``.

    ``size`` / ``sha256`` (hex) are checked when not None. Data goes to ``<dest>.part``, which is resumed
    with an HTTP Range request when present; each URL gets ``retries`` automatic resumes after a cut
    connection or timeout. ``progress`` shows a tqdm bar on a terminal (nothing when stderr is not a TTY);
    ``on_bytes(received, total)`` is called after each block (``total`` None when unknown), for other displays.
    A ``dest`` that already has the expected sha256 is returned without any network access. URLs and redirects
    must be HTTPS (plain HTTP only to a loopback host, see :func:`url_problem`).

    Raises DownloadError when every URL failed: after a cut connection the ``.part`` is kept for the next
    call to resume; after a size or sha256 mismatch it is deleted and ``dest`` is left untouched.
    """
    if not urls:
        raise DownloadError(f"download: no URL is known for {Path(dest).name}; place the file in the models "
                            "folder (VUP_MODELS_DIR) instead")
    for url in urls:
        problem = url_problem(url)
        if problem is not None:
            raise DownloadError(f"download: {problem}; fix the model catalog entry")
    dest = Path(dest)
    label = dest.name
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"download: cannot create {dest.parent} ({exc}); choose a writable cache folder "
                            "(VUP_CACHE_DIR)") from exc
    part = dest.with_suffix(dest.suffix + ".part")
    with file_lock(dest.with_suffix(dest.suffix + ".lock")):
        if sha256 is not None and dest.is_file() and (size is None or dest.stat().st_size == size) \
                and sha256_file(dest) == sha256.lower():
            return dest
        if sha256 is None:
            logger.warning("download: no sha256 is known for %s: only its %s is checked before it is used; "
                           "its sha256 is recorded after the model loads, and checked from then on", label,
                           "size" if size is not None else "arrival (not even its size is known)")
        failures: list[DownloadError] = []
        opener = build_opener()  # built per call so proxy settings follow the environment
        for url in urls:
            logger.info("download: fetching %s (%s) from %s", label, _describe_size(size), url)
            try:
                _fetch(opener, url, part, size=size, timeout=timeout, chunk_bytes=chunk_bytes, progress=progress,
                       retries=retries, label=label, on_bytes=on_bytes)
                _verify(part, url, size=size, sha256=sha256, label=label)
                _commit(part, dest)
            except DownloadError as exc:
                logger.warning("%s", exc)
                failures.append(exc)
                continue
            except OSError as exc:
                raise DownloadError(f"download: cannot write {part} ({exc}); free disk space or choose another "
                                    "cache folder (VUP_CACHE_DIR)") from exc
            logger.info("download: saved %s", dest)
            return dest
    if len(failures) == 1:
        raise failures[0]
    reasons = "; ".join(f"({i}) {exc}" for i, exc in enumerate(failures, 1))
    raise DownloadError(f"download: every URL failed for {label}: {reasons}") from failures[-1]
