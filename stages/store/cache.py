"""What the chunk store holds and how it is freed: a scan (sizes per stage folder, per owner, by age; chunks that no
current code can reuse called out), pruning (by age, by owner, orphaned, or least recently used down to a size) and
the size budget applied when a job ends.

A chunk's "last used" time is its manifest's mtime: the store touches it on every reuse (stages/store/chunk_store.py).
A chunk is **orphaned** when no current code can ever ask for its key again: it lies in a folder an older version
used (``upscaled``, ``interpolated``, ``coherent``, ``master``...), its manifest records an older stage version
(stages/store/versions.py) or chunk format, or it is the half of an interrupted write (a chunk file without a
manifest, a manifest without its file, an unreadable manifest, a temp file older than a day). Chunks written before
manifests recorded their version count as current; they age out like any other.

Pruning deletes a chunk only under its store lock, taken without waiting, so a chunk that a job is looking up or
writing is skipped; it skips every chunk a running job's lease lists (stages/store/leases.py) and every chunk used
since the scan. Orphaned chunks go first, then the least recently used. Plain Python: no Dagster import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.errors import SettingsError
from stages.media.chunkio import CHUNK_FORMAT_VERSION, CHUNK_SUFFIX
from stages.store.budget import CacheBudget
from stages.store.chunk_store import MADE_WITH, stage_version_of
from stages.store.diskspace import human_bytes
from stages.store.fsutil import file_lock, try_file_lock
from stages.store.leases import LeaseWatch, forget_chunks, live_leases, owner_records

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 24 * 3600  # a temp chunk file untouched this long belongs to a write that stopped
PRUNE_LOCK = ".prune.lock"
# store folders of older versions, and the folder that replaced each (docs/pipeline.md, "Cache note")
RENAMED_FOLDERS = {"upscaled": "upscale", "interpolated": "interpolate", "coherent": "cohere", "master": "edit",
                   "master-alpha": "edit", "interpolated-alpha": "interpolate"}
AGE_BUCKETS = ((86400.0, "under 1 day"), (7 * 86400.0, "1-7 days"), (30 * 86400.0, "7-30 days"),
               (math.inf, "over 30 days"))


@dataclass(frozen=True)
class CachedChunk:
    """One chunk of the store (its ``.nut`` and ``.json``), or a leftover temp file (``temp``; ``key`` is its file
    name). ``orphan`` says why no current code can reuse it (None: it can be reused)."""

    stage: str
    key: str
    bytes: int
    last_used: float
    orphan: str | None = None
    temp: bool = False

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key}"


@dataclass(frozen=True)
class StoreScan:
    """Everything in the store: its chunks, the temp files of writes going on now, and lock files of no chunk."""

    root: Path
    chunks: tuple[CachedChunk, ...]
    writing_bytes: int = 0
    writing_files: int = 0
    stray_locks: tuple[Path, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.chunks) + self.writing_bytes


def scan_store(root: str | Path, now: float | None = None) -> StoreScan:
    """Scan the store under ``root`` (a missing root is an empty store). Reads every manifest (for the version
    check) and stats every file; unknown files are left out."""
    root = Path(root)
    now = time.time() if now is None else now
    chunks: list[CachedChunk] = []
    writing_bytes = writing_files = 0
    stray: list[Path] = []
    for folder in _stage_folders(root):
        media: dict[str, os.stat_result] = {}
        manifests: dict[str, os.stat_result] = {}
        locks: set[str] = set()
        for entry in _entries(folder):
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted meanwhile
            name = entry.name
            if name.startswith(".") and ".tmp" in name:
                if now - stat.st_mtime > STALE_TEMP_SECONDS:
                    chunks.append(CachedChunk(folder.name, name, stat.st_size, stat.st_mtime,
                                              "temp file of a write that stopped", temp=True))
                else:
                    writing_bytes += stat.st_size
                    writing_files += 1
            elif name.endswith(CHUNK_SUFFIX):
                media[name[: -len(CHUNK_SUFFIX)]] = stat
            elif name.endswith(".json"):
                manifests[name[:-5]] = stat
            elif name.endswith(".lock"):
                locks.add(name[:-5])
        for key in sorted(media.keys() | manifests.keys()):
            chunks.append(_chunk(folder, key, media.get(key), manifests.get(key)))
        stray.extend(folder / f"{key}.lock" for key in sorted(locks - media.keys() - manifests.keys()))
    return StoreScan(root, tuple(chunks), writing_bytes, writing_files, tuple(stray))


def store_size(root: str | Path) -> tuple[int, int]:
    """(bytes, chunk files) of the store under ``root``, from file sizes alone (no manifest read: fast enough for a
    page that shows it)."""
    total = files = 0
    for folder in _stage_folders(Path(root)):
        for entry in _entries(folder):
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat(follow_symlinks=False).st_size
                files += entry.name.endswith(CHUNK_SUFFIX)
    return total, files


def _stage_folders(root: Path) -> list[Path]:
    """The store's stage folders (not ``.leases``, ``.owners``)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder``; none when it was deleted meanwhile."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _chunk(folder: Path, key: str, media: os.stat_result | None, manifest: os.stat_result | None) -> CachedChunk:
    size = (media.st_size if media else 0) + (manifest.st_size if manifest else 0)
    used = manifest.st_mtime if manifest is not None else media.st_mtime if media is not None else 0.0
    return CachedChunk(folder.name, key, size, used, _orphan_reason(folder, key, media is not None, manifest))


def _orphan_reason(folder: Path, key: str, has_media: bool, manifest: os.stat_result | None) -> str | None:
    stage = folder.name
    if stage in RENAMED_FOLDERS:
        return f"old folder (now {RENAMED_FOLDERS[stage]})"
    if manifest is None:
        return "chunk file without a manifest (an interrupted write)"
    try:
        data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        made = data.get(MADE_WITH) or {}
    except (OSError, ValueError, AttributeError):
        return "unreadable manifest"
    if not has_media:
        return "manifest without its chunk file"
    if not isinstance(made, dict):
        return "unreadable manifest"
    if made.get("chunk_format") not in (None, CHUNK_FORMAT_VERSION):
        return f"old chunk format ({made['chunk_format']})"
    current = stage_version_of(stage)
    if made.get("stage_version") is not None and current is not None and str(made["stage_version"]) != current:
        return f"old {stage} version {made['stage_version']} (now {current})"
    return None


# ------------------------------------------------------------------------------------------------ info


@dataclass
class Usage:
    """Bytes and chunks of a share of the store."""

    bytes: int = 0
    chunks: int = 0

    def add(self, chunk: CachedChunk) -> None:
        self.bytes += chunk.bytes
        self.chunks += 1

    def to_dict(self) -> dict[str, int]:
        return {"bytes": self.bytes, "chunks": self.chunks}


@dataclass(frozen=True)
class OwnerUsage:
    """What one owner (a video, plan or reframe partition) holds in the store now."""

    owner: str
    job: str
    label: str | None
    usage: Usage
    last_used: float


@dataclass
class CacheInfo:
    """The store at a glance (see :func:`cache_info`)."""

    root: Path
    total_bytes: int
    chunks: int
    writing_bytes: int
    by_stage: dict[str, Usage] = field(default_factory=dict)
    by_owner: list[OwnerUsage] = field(default_factory=list)
    unattributed: Usage = field(default_factory=Usage)
    by_age: dict[str, Usage] = field(default_factory=dict)
    orphaned: dict[str, Usage] = field(default_factory=dict)
    in_use: Usage = field(default_factory=Usage)
    running_jobs: list[str] = field(default_factory=list)
    budget: CacheBudget | None = None
    disk_free: int | None = None
    disk_total: int | None = None

    @property
    def orphaned_total(self) -> Usage:
        return Usage(sum(u.bytes for u in self.orphaned.values()), sum(u.chunks for u in self.orphaned.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (``vup cache info --json``)."""
        return {
            "root": str(self.root), "total_bytes": self.total_bytes, "chunks": self.chunks,
            "writing_bytes": self.writing_bytes,
            "by_stage": {k: v.to_dict() for k, v in self.by_stage.items()},
            "by_owner": [{"owner": o.owner, "job": o.job, "label": o.label, **o.usage.to_dict(),
                          "last_used": o.last_used} for o in self.by_owner],
            "unattributed": self.unattributed.to_dict(),
            "by_age": {k: v.to_dict() for k, v in self.by_age.items()},
            "orphaned": {k: v.to_dict() for k, v in self.orphaned.items()},
            "orphaned_total": self.orphaned_total.to_dict(),
            "in_use": self.in_use.to_dict(), "running_jobs": list(self.running_jobs),
            "budget": None if self.budget is None else {"max_bytes": self.budget.max_bytes, "text": self.budget.text,
                                                        "source": self.budget.source},
            "disk_free_bytes": self.disk_free, "disk_total_bytes": self.disk_total,
        }


def cache_info(root: str | Path, *, budget: CacheBudget | None = None, now: float | None = None) -> CacheInfo:
    """Sizes of the store under ``root``: in total, per stage folder, per owner (a chunk two owners used counts for
    both; chunks of no owner are ``unattributed``), by last use, orphaned ones by reason, and those that running jobs
    hold. Reads leases without reaping them."""
    root = Path(root)
    now = time.time() if now is None else now
    scan = scan_store(root, now)
    leases = live_leases(root, reap=False)
    held = frozenset().union(*(lease.chunks for lease in leases)) if leases else frozenset()
    info = CacheInfo(root, scan.total_bytes, sum(not c.temp for c in scan.chunks), scan.writing_bytes,
                     budget=budget, running_jobs=[_lease_name(lease.header) for lease in leases])
    info.by_age = {label: Usage() for _, label in AGE_BUCKETS}
    chunks_by_id = {c.id: c for c in scan.chunks}
    for chunk in scan.chunks:
        info.by_stage.setdefault(chunk.stage, Usage()).add(chunk)
        info.by_age[next(label for limit, label in AGE_BUCKETS if now - chunk.last_used < limit)].add(chunk)
        if chunk.orphan is not None:
            info.orphaned.setdefault(chunk.orphan, Usage()).add(chunk)
        if chunk.id in held:
            info.in_use.add(chunk)
    owned: set[str] = set()
    for record in owner_records(root):
        usage, last = Usage(), 0.0
        for chunk in (chunks_by_id[c] for c in record.chunks if c in chunks_by_id):
            usage.add(chunk)
            last = max(last, chunk.last_used)
        owned |= record.chunks
        if usage.chunks:
            info.by_owner.append(OwnerUsage(record.owner, record.job, record.label, usage, last))
    info.by_owner.sort(key=lambda o: -o.usage.bytes)
    for chunk in scan.chunks:
        if chunk.id not in owned and not chunk.temp:
            info.unattributed.add(chunk)
    with contextlib.suppress(OSError):
        disk = shutil.disk_usage(root if root.exists() else root.parent)
        info.disk_free, info.disk_total = disk.free, disk.total
    return info


def _lease_name(header: dict[str, Any]) -> str:
    who = header.get("label") or header.get("owner")
    return f"{header.get('job') or 'a job'}{f' ({who})' if who else ''}, pid {header.get('pid')}"


# ------------------------------------------------------------------------------------------------ prune


@dataclass(frozen=True)
class PruneResult:
    """What a prune freed (or, with ``dry_run``, would free) and what it left because jobs hold it."""

    dry_run: bool
    before_bytes: int
    freed_bytes: int
    freed_chunks: int
    skipped_chunks: int = 0
    skipped_bytes: int = 0
    target_bytes: int | None = None

    @property
    def after_bytes(self) -> int:
        return max(0, self.before_bytes - self.freed_bytes)

    def summary(self) -> str:
        """One line for people: what was (or would be) freed, what is left, and what was held back."""
        verb = "would free" if self.dry_run else "freed"
        line = (f"{verb} {human_bytes(self.freed_bytes)} ({self.freed_chunks} chunk"
                f"{'' if self.freed_chunks == 1 else 's'}); the store {'would hold' if self.dry_run else 'holds'} "
                f"{human_bytes(self.after_bytes)}")
        if self.target_bytes is not None:
            line += f" (limit {human_bytes(self.target_bytes)})"
        if self.skipped_chunks:
            line += (f"; kept {self.skipped_chunks} chunk{'' if self.skipped_chunks == 1 else 's'} "
                     f"({human_bytes(self.skipped_bytes)}) that running jobs use")
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "before_bytes": self.before_bytes, "freed_bytes": self.freed_bytes,
                "freed_chunks": self.freed_chunks, "after_bytes": self.after_bytes,
                "skipped_chunks": self.skipped_chunks, "skipped_bytes": self.skipped_bytes,
                "target_bytes": self.target_bytes}


def prune(
    root: str | Path,
    *,
    older_than: float | None = None,
    max_bytes: int | None = None,
    owner: str | None = None,
    orphaned: bool = False,
    keep: Collection[str] = (),
    dry_run: bool = False,
    wait: bool = True,
    now: float | None = None,
) -> PruneResult | None:
    """Delete chunks of the store under ``root``.

    The filters choose which chunks may go (all of them must hold): ``older_than`` (seconds since last use),
    ``owner`` (a partition key, or a unique prefix of one, from the owner records), ``orphaned`` (only chunks no
    current code can reuse). Without ``max_bytes`` every chosen chunk goes; with it, chosen chunks go orphaned
    first, then least recently used, until the store holds at most ``max_bytes``. Chunks that running jobs use are
    kept (see the module docstring), and so are those of ``keep`` (``stage/key``). ``dry_run`` deletes nothing and
    says what would go. ``wait``: when another prune runs, wait for it (True) or return None at once.

    Raises:
        SettingsError: no criterion given, a negative figure, or ``owner`` matches no owner record (or several).
    """
    if older_than is None and max_bytes is None and owner is None and not orphaned:
        raise SettingsError("cache: say what to prune: an age (--older-than 30d), a size to get under "
                            "(--max-size 50G), a video (--video KEY) or --orphaned")
    if (older_than is not None and older_than < 0) or (max_bytes is not None and max_bytes < 0):
        raise SettingsError("cache: an age or size to prune by cannot be negative")
    root = Path(root)
    if not root.is_dir():
        return PruneResult(dry_run, 0, 0, 0, target_bytes=max_bytes)
    lock = file_lock(root / PRUNE_LOCK) if wait else try_file_lock(root / PRUNE_LOCK)
    with lock as held:
        if held is False:
            return None
        return _prune(root, older_than, max_bytes, _owner_chunks(root, owner) if owner else None, orphaned,
                      frozenset(keep), dry_run, time.time() if now is None else now)


def _owner_chunks(root: Path, owner: str) -> frozenset[str]:
    """The chunks of the owner whose key is ``owner`` or starts with it."""
    records = owner_records(root)
    exact = [r for r in records if r.owner == owner]
    matches = exact or [r for r in records if r.owner.startswith(owner)]
    if len(matches) != 1:
        known = ", ".join(sorted(r.owner for r in records)[:8]) or "none yet"
        what = "matches several videos" if matches else "has no chunks recorded in this store"
        raise SettingsError(f"cache: {owner!r} {what}; give a full key from `vup cache info` (recorded: {known})")
    return matches[0].chunks


def _prune(root: Path, older_than: float | None, max_bytes: int | None, chosen: frozenset[str] | None,
           orphaned: bool, keep: frozenset[str], dry_run: bool, now: float) -> PruneResult:
    scan = scan_store(root, now)
    leases = LeaseWatch(root, reap=not dry_run)  # read after the scan: a chunk made before it was noted before it
    candidates = [c for c in scan.chunks
                  if (older_than is None or now - c.last_used > older_than)
                  and (chosen is None or c.id in chosen)
                  and (not orphaned or c.orphan is not None) and c.id not in keep]
    candidates.sort(key=lambda c: (c.orphan is None, c.last_used))
    total = scan.total_bytes
    freed = count = skipped = skipped_bytes = 0
    gone: set[str] = set()
    for chunk in candidates:
        if max_bytes is not None and total - freed <= max_bytes:
            break
        if leases.holds(chunk.id) or (not dry_run and not _delete(root, chunk, leases)):
            skipped += 1
            skipped_bytes += chunk.bytes
            continue
        freed += chunk.bytes
        count += 1
        gone.add(chunk.id)
    if not dry_run:
        forget_chunks(root, gone)
        _tidy(root, scan.stray_locks)
        if count:
            log.info("chunk store: pruned %d chunk(s), %s", count, human_bytes(freed))
    return PruneResult(dry_run, total, freed, count, skipped, skipped_bytes, max_bytes)


def _delete(root: Path, chunk: CachedChunk, leases: LeaseWatch) -> bool:
    """Delete ``chunk`` under its lock; False (kept) when the lock is held, or the chunk was used since the scan, or a
    running job noted it meanwhile."""
    folder = root / chunk.stage
    if chunk.temp:
        path = folder / chunk.key
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime != chunk.last_used:
                return False  # still being written after all
            path.unlink()
        return True
    media, manifest, lock = (folder / f"{chunk.key}{CHUNK_SUFFIX}", folder / f"{chunk.key}.json",
                             folder / f"{chunk.key}.lock")
    try:
        with try_file_lock(lock) as held:
            if not held:
                return False  # a job is looking it up or writing it right now
            if _last_used(media, manifest) not in (None, chunk.last_used) or leases.holds(chunk.id):
                return False  # reused since the scan
            manifest.unlink(missing_ok=True)  # the commit marker first: from here on the chunk is a miss
            media.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)  # while held: a waiter notices and locks a fresh file (fsutil.file_lock)
    except FileNotFoundError:
        return False  # its folder was deleted meanwhile (by hand): nothing left to free
    return True


def _last_used(media: Path, manifest: Path) -> float | None:
    for path in (manifest, media):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_mtime
    return None


def _tidy(root: Path, stray_locks: Iterable[Path]) -> None:
    """Delete lock files of no chunk that nobody holds, and old folders left empty."""
    for lock in stray_locks:
        with contextlib.suppress(OSError), try_file_lock(lock) as held:
            if held and not lock.with_suffix(CHUNK_SUFFIX).exists() and not lock.with_suffix(".json").exists():
                lock.unlink(missing_ok=True)
    for name in RENAMED_FOLDERS:
        with contextlib.suppress(OSError):
            (root / name).rmdir()  # only when empty


def enforce_budget(root: str | Path, budget: CacheBudget, keep: Collection[str] = ()) -> PruneResult | None:
    """Prune the store down to ``budget`` (least recently used first, orphaned before them), keeping the chunks of
    ``keep`` (those of a job that failed, for its rerun to resume); None when the budget is off or another prune is
    running (that one does the work)."""
    if budget.max_bytes is None:
        return None
    return prune(root, max_bytes=budget.max_bytes, keep=keep, wait=False)

