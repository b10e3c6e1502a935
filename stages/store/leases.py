"""Which chunks a running job holds, and which job (video, plan, reframe) each chunk was made or used for.

A job's chunk-store lock (stages/store/chunk_store.py) is held only while one chunk is looked up or made; the next
step reads that chunk later, outside any lock. So a job that runs holds a **lease**: a file
``<store>/.leases/<id>.lease`` that it keeps ``flock``-ed for as long as it runs, whose first line says who it is
(JSON: job, owner, label, pid, start) and to which the store appends ``<stage>/<key>`` for every chunk the job
reuses or makes (the store's ``journal``). Pruning (stages/store/cache.py) never deletes a chunk listed in a live
lease. The kernel drops the lock when the process dies, so the lease of a killed job is seen as stale (its lock can
be taken) and reaped.

When a lease is released (or reaped), its chunks are added to the **owner record** ``<store>/.owners/<owner>.owner``
of its owner (the job's partition: a video, a plan or a reframe request), so ``vup cache info`` can say what each
video holds and ``vup cache prune --video KEY`` can free it. Chunks made before owner records existed belong to no
owner ("unattributed").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.store.fsutil import atomic_write_text, file_lock

log = logging.getLogger(__name__)

LEASES = ".leases"
OWNERS = ".owners"
LEASE_SUFFIX = ".lease"
# JSON, but not named .json: tools that read every ``<store>/<folder>/*.json`` as a chunk manifest leave them alone
OWNER_SUFFIX = ".owner"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def owner_file_name(owner: str) -> str:
    """The file name of ``owner``'s record (characters other than letters, digits, ``_.-`` become ``_``)."""
    return _SAFE.sub("_", owner)[:120] or "_"


@dataclass(frozen=True)
class LeaseView:
    """A lease as pruning sees it: who holds it and the chunks (``stage/key``) it noted so far."""

    path: Path
    header: dict[str, Any]
    chunks: frozenset[str]

    @property
    def owner(self) -> str | None:
        return self.header.get("owner")

    @property
    def job(self) -> str:
        return str(self.header.get("job") or "a job")


class RunLease:
    """A running job's claim on the chunk store (see the module docstring). Use as a context manager, or call
    :meth:`acquire` and :meth:`release`; open the job's store as ``ChunkStore(root, journal=lease.journal)``.

    ``job``: the job's name; ``owner``: what its chunks belong to (a partition key), None for none; ``label``: a
    word for people (the source file's name).
    """

    def __init__(self, root: str | Path, *, job: str, owner: str | None = None, label: str | None = None) -> None:
        self.root = Path(root)
        self.job, self.owner, self.label = job, owner, label
        self._handle: Any | None = None
        self._path: Path | None = None

    @property
    def journal(self) -> Path:
        """The lease file the store appends to.

        Raises:
            RuntimeError: the lease is not held (call :meth:`acquire` first).
        """
        if self._path is None:
            raise RuntimeError("chunk store: this lease is not held; acquire it before opening the store with it")
        return self._path

    def acquire(self) -> RunLease:
        """Create and lock the lease file. It is written under a temp name and renamed once locked, so pruning
        never sees it unlocked."""
        folder = self.root / LEASES
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{int(time.time())}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp = folder / f".{stem}.tmp"
        handle = open(tmp, "ab")
        try:
            _lock(handle.fileno())
            header = {"job": self.job, "owner": self.owner, "label": self.label, "pid": os.getpid(),
                      "host": socket.gethostname(), "started": time.time()}
            handle.write((json.dumps(header, sort_keys=True) + "\n").encode("utf-8"))
            handle.flush()
            path = folder / f"{stem}{LEASE_SUFFIX}"
            os.replace(tmp, path)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        self._handle, self._path = handle, path
        return self

    def release(self, *, record: bool = True) -> frozenset[str]:
        """Record the job's chunks under its owner (``record``), then delete and unlock the lease; returns the
        chunks (``stage/key``) the job noted (empty when the lease was not held)."""
        handle, path = self._handle, self._path
        if handle is None or path is None:
            return frozenset()
        self._handle = self._path = None
        chunks: frozenset[str] = frozenset()
        try:
            _, chunks = read_lease(path)
            if record and self.owner:
                record_owner(self.root, self.owner, job=self.job, label=self.label, chunks=chunks)
        except FileNotFoundError:
            log.debug("chunk store: the lease %s is gone (the store was deleted); nothing to record", path)
        except (OSError, ValueError) as exc:
            log.warning("chunk store: could not record the chunks of %s for %s (%s); they count as unattributed",
                        self.job, self.owner, exc)
        finally:
            path.unlink(missing_ok=True)
            handle.close()  # closing drops the lock
        return chunks

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(fd: int, blocking: bool = True) -> bool:
    """``flock`` LOCK_EX on ``fd``; False when ``blocking`` is off and another holds it. True where fcntl is
    missing (then leases protect nothing; pruning still skips chunks whose lock is held)."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def read_lease(path: Path) -> tuple[dict[str, Any], frozenset[str]]:
    """A lease file's header and its chunks (``stage/key``); an unreadable header reads as {}.

    Raises:
        OSError: the file cannot be read.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except ValueError:
        header = {}
    return (header if isinstance(header, dict) else {}), frozenset(line for line in lines[1:] if "/" in line)


def live_leases(root: str | Path, *, reap: bool = True) -> list[LeaseView]:
    """The leases of jobs that run now. A lease whose lock can be taken belongs to a process that died: with
    ``reap`` its chunks are recorded under its owner and the file is deleted; it is never returned."""
    folder = Path(root) / LEASES
    if not folder.is_dir():
        return []
    live = []
    for path in sorted(folder.glob(f"*{LEASE_SUFFIX}")):
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            continue  # released meanwhile
        with handle:
            if not _lock(handle.fileno(), blocking=False):
                try:
                    header, chunks = read_lease(path)
                except OSError:
                    continue
                live.append(LeaseView(path, header, chunks))
                continue
            if reap:
                _reap(Path(root), path)
    return live


class LeaseWatch:
    """The chunks that running jobs hold, read again whenever a lease grew, appeared or went. A job notes a chunk
    while it holds the chunk's store lock, so a check made under that lock sees every note made before it."""

    def __init__(self, root: str | Path, *, reap: bool = True) -> None:
        self.root = Path(root)
        self._stamp: dict[str, int] = {}
        self._chunks: frozenset[str] = frozenset()
        self.refresh(reap=reap)

    def refresh(self, *, reap: bool = False) -> None:
        self._stamp = self._listing()
        leases = live_leases(self.root, reap=reap)
        self._chunks = frozenset().union(*(lease.chunks for lease in leases)) if leases else frozenset()

    def holds(self, chunk: str) -> bool:
        """Whether a running job noted ``chunk`` (``stage/key``)."""
        if chunk in self._chunks:
            return True
        if self._listing() != self._stamp:
            self.refresh()
        return chunk in self._chunks

    def _listing(self) -> dict[str, int]:
        listing = {}
        folder = self.root / LEASES
        for path in folder.glob(f"*{LEASE_SUFFIX}") if folder.is_dir() else ():
            try:
                listing[path.name] = path.stat().st_size
            except FileNotFoundError:
                continue
        return listing


def _reap(root: Path, path: Path) -> None:
    """Record a dead job's chunks under its owner and delete its lease (the caller holds the lease's lock)."""
    try:
        header, chunks = read_lease(path)
        if header.get("owner"):
            record_owner(root, str(header["owner"]), job=str(header.get("job") or ""), label=header.get("label"),
                         chunks=chunks)
    except (OSError, ValueError) as exc:
        log.warning("chunk store: could not record the chunks of the stopped job in %s (%s)", path, exc)
    log.info("chunk store: removed the lease of a job that stopped without releasing it (%s)", path.name)
    path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ owner records


@dataclass(frozen=True)
class OwnerRecord:
    """The chunks (``stage/key``) one owner (a video, plan or reframe partition) made or used, and when last."""

    owner: str
    job: str
    label: str | None
    updated: float
    chunks: frozenset[str]


def record_owner(root: str | Path, owner: str, *, job: str, label: str | None, chunks: Iterable[str]) -> OwnerRecord:
    """Add ``chunks`` to ``owner``'s record (dropping the ones no longer stored) and return it."""
    root = Path(root)
    folder = root / OWNERS
    folder.mkdir(parents=True, exist_ok=True)
    name = owner_file_name(owner)
    with file_lock(folder / f"{name}.lock"):
        previous = _read_owner(folder / f"{name}{OWNER_SUFFIX}")
        known = (previous.chunks if previous is not None else frozenset()) | frozenset(chunks)
        kept = frozenset(c for c in known if (root / f"{c}.json").exists())
        record = OwnerRecord(owner, job or (previous.job if previous else ""),
                             label or (previous.label if previous else None), time.time(), kept)
        atomic_write_text(folder / f"{name}{OWNER_SUFFIX}", json.dumps(
            {"owner": owner, "job": record.job, "label": record.label, "updated": record.updated,
             "chunks": sorted(kept)}, indent=1))
    return record


def owner_records(root: str | Path) -> list[OwnerRecord]:
    """Every owner record of the store (unreadable ones are skipped with a warning)."""
    folder = Path(root) / OWNERS
    if not folder.is_dir():
        return []
    return [r for r in (_read_owner(p) for p in sorted(folder.glob(f"*{OWNER_SUFFIX}"))) if r is not None]


def forget_chunks(root: str | Path, chunks: set[str]) -> None:
    """Drop deleted ``chunks`` from every owner record; a record left empty is deleted."""
    folder = Path(root) / OWNERS
    if not chunks or not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*{OWNER_SUFFIX}")):
        with file_lock(folder / f"{path.stem}.lock"):
            record = _read_owner(path)
            if record is None or not (record.chunks & chunks):
                continue
            kept = record.chunks - chunks
            if not kept:
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    (folder / f"{path.stem}.lock").unlink()
                continue
            atomic_write_text(path, json.dumps({"owner": record.owner, "job": record.job, "label": record.label,
                                                "updated": record.updated, "chunks": sorted(kept)}, indent=1))


def _read_owner(path: Path) -> OwnerRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return OwnerRecord(str(data["owner"]), str(data.get("job") or ""), data.get("label"),
                           float(data.get("updated") or 0.0), frozenset(str(c) for c in data.get("chunks") or ()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("chunk store: owner record %s is unreadable (%s); its chunks count as unattributed", path, exc)
        return None

