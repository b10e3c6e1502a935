"""Content-addressed store of lossless chunks: ``<root>/<stage>/<key>.nut`` plus a ``<key>.json`` manifest.

The key hashes everything that decides the bytes (upstream key, model and weight checksum, scale, tile,
precision, stage parameters, stage code version). Writes are atomic: the chunk goes to a temp file, is
hashed, fsynced and renamed; the manifest is written last (also atomically), so a manifest is the
commit marker. A chunk whose manifest is missing or unreadable, or whose size or sha256 does not match,
is deleted and redone, never reused.

Two runs of the same partition may want the same chunk at the same time. Callers hold :meth:`ChunkStore.lock`
for that chunk from ``get`` through ``put``: the second run waits, then finds the first run's chunk and reuses
it, so no run ever validates (or discards) a chunk that another is in the middle of committing. The lock is an
advisory ``flock`` on ``<key>.lock``; the kernel drops it when its process dies, so a killed run never leaves
a chunk locked.

Every reuse touches the manifest (its mtime is the chunk's "last used" time, which the size budget's least recently
used eviction reads) and, when the store was opened with a ``journal`` (a running job's lease, see
stages/store/leases.py), notes the chunk there, so pruning leaves every chunk of a running job alone. Pruning deletes
a chunk only under its lock (taken without waiting), so it never removes one that a run is validating or writing;
a manifest whose chunk file was deleted is a miss, and the chunk is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from stages.errors import ChunkError
from stages.media.chunkio import CHUNK_FORMAT_VERSION, CHUNK_SUFFIX
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import atomic_write_text, file_lock, fsync_dir, sha256_file
from stages.store.versions import STAGE_VERSIONS

log = logging.getLogger(__name__)

MADE_WITH = "made_with"  # manifest entry: the chunk format and stage version that made the chunk (stages.store.cache)


@dataclass(frozen=True)
class ChunkRecord:
    """Manifest of one stored chunk: where it is, which frames it holds, and how it was made."""

    stage: str
    key: str
    path: str  # absolute where the store is now; the manifest on disk holds it relative to the store root
    index: int
    start_frame: int
    frame_count: int
    pts: tuple[int, ...]
    width: int
    height: int
    bit_depth: int
    size_bytes: int
    sha256: str
    seconds: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frame_count

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pts"] = list(self.pts)
        data["params"] = dict(self.params)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkRecord:
        """The record of a manifest (entries that are no record field, like ``made_with``, are left out)."""
        values = {name: value for name, value in data.items() if name in _RECORD_FIELDS}
        values["pts"] = tuple(int(p) for p in values["pts"])
        values["params"] = dict(values.get("params") or {})
        return cls(**values)


_RECORD_FIELDS = frozenset(ChunkRecord.__dataclass_fields__)


def stage_version_of(stage: str) -> str | None:
    """The version in stages.store.versions of the stage whose store folder is ``stage`` (``sequence-alpha`` is
    ``sequence``'s), or None for a folder the table does not know (an op with its own ``version``)."""
    return STAGE_VERSIONS.get(stage.removesuffix("-alpha"))


@dataclass(frozen=True)
class ChunkContent:
    """What a producer reports about the chunk file it wrote."""

    frame_count: int
    pts: tuple[int, ...]
    width: int
    height: int
    bit_depth: int


def content_key(stage: str, parts: Mapping[str, Any]) -> str:
    """A 32-hex-digit key from the stage name, the chunk file format and JSON-able parts (order-independent)."""
    blob = json.dumps({"stage": stage, "chunk_format": CHUNK_FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


class ChunkStore:
    """Content-addressed chunk files under ``root`` (usually ``<workspace>/chunks``).

    ``journal``: a running job's lease file (stages.store.leases.RunLease); each chunk this store reuses or makes is
    appended to it, so pruning leaves it alone until the job ends.
    """

    def __init__(self, root: str | Path, journal: str | Path | None = None) -> None:
        self.root = Path(root)
        self.journal = Path(journal) if journal is not None else None

    def paths(self, stage: str, key: str) -> tuple[Path, Path]:
        folder = self.root / stage
        return folder / f"{key}{CHUNK_SUFFIX}", folder / f"{key}.json"

    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Hold the chunk's exclusive lock (blocks while another thread or process holds it). Not re-entrant:
        ``get`` and ``put`` do not take it themselves."""
        folder = self.root / stage
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / f"{key}.lock"):
            yield

    def get(self, stage: str, key: str) -> ChunkRecord | None:
        """The validated record of a stored chunk, or None (invalid leftovers are deleted)."""
        media, manifest = self.paths(stage, key)
        if not manifest.exists():
            if media.exists():
                log.warning("chunk store: %s has no manifest (interrupted write); redoing it", media)
                media.unlink(missing_ok=True)
            return None
        try:
            record = ChunkRecord.from_dict(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("chunk store: manifest %s is unreadable (%s); redoing the chunk", manifest, exc)
            self.discard(stage, key)
            return None
        problem = None
        if record.key != key or record.stage != stage:
            problem = "belongs to another key"
        elif not media.exists():
            problem = "has no chunk file"
        elif media.stat().st_size != record.size_bytes:
            problem = f"size {media.stat().st_size} differs from the manifest's {record.size_bytes}"
        elif sha256_file(media) != record.sha256:
            problem = "checksum does not match"
        if problem:
            log.warning("chunk store: %s/%s %s; redoing it", stage, key, problem)
            self.discard(stage, key)
            return None
        if record.path != str(media):
            record = replace(record, path=str(media))
        self._used(stage, key, manifest)
        return record

    def _used(self, stage: str, key: str, manifest: Path | None) -> None:
        """Mark the chunk used now: touch its manifest (its mtime is the chunk's "last used" time; ``None``: just
        written) and note it in the journal. Never fails a run: a read-only store just keeps the old time."""
        if manifest is not None:
            try:
                os.utime(manifest)
            except OSError as exc:
                log.debug("chunk store: cannot touch %s (%s); its last-used time stays", manifest, exc)
        if self.journal is not None:
            try:
                with open(self.journal, "a", encoding="utf-8") as handle:
                    handle.write(f"{stage}/{key}\n")
            except OSError as exc:
                log.warning("chunk store: cannot note %s/%s in the job's journal %s (%s); pruning may remove it "
                            "while this job runs", stage, key, self.journal, exc)

    def discard(self, stage: str, key: str) -> None:
        for path in self.paths(stage, key):
            path.unlink(missing_ok=True)

    def put(
        self,
        stage: str,
        key: str,
        produce: Callable[[Path], ChunkContent],
        *,
        index: int,
        start_frame: int,
        params: Mapping[str, Any] | None = None,
        seconds: float | None = None,
    ) -> ChunkRecord:
        """Produce a chunk into a temp file, then commit it atomically and return its record.

        ``produce(tmp_path)`` writes the chunk file and returns its ChunkContent. If it raises, the temp
        file is removed and nothing is committed.
        """
        media, manifest = self.paths(stage, key)
        media.parent.mkdir(parents=True, exist_ok=True)
        self._used(stage, key, None)  # noted before it exists: pruning that sees the chunk sees the note too
        tmp = media.with_name(f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp{CHUNK_SUFFIX}")
        started = time.perf_counter()
        try:
            content = produce(tmp)
            if not tmp.exists():
                raise ChunkError(f"chunk store: the {stage} step wrote no file for chunk {index}")
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            digest = sha256_file(tmp)
            size = tmp.stat().st_size
            os.replace(tmp, media)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            raise_if_disk_full(exc, f"the {stage} chunk {index}", media.parent)  # ENOSPC, however wrapped
            raise
        fsync_dir(media.parent)
        record = ChunkRecord(
            stage=stage,
            key=key,
            path=str(media),
            index=index,
            start_frame=start_frame,
            frame_count=content.frame_count,
            pts=tuple(content.pts),
            width=content.width,
            height=content.height,
            bit_depth=content.bit_depth,
            size_bytes=size,
            sha256=digest,
            seconds=seconds if seconds is not None else time.perf_counter() - started,
            params=dict(params or {}),
        )
        # the manifest names the chunk relative to the store root, so a store mounted elsewhere reads the same
        stored = {**record.to_dict(), "path": media.relative_to(self.root).as_posix(),
                  MADE_WITH: {"chunk_format": CHUNK_FORMAT_VERSION, "stage_version": stage_version_of(stage)}}
        atomic_write_text(manifest, json.dumps(stored, sort_keys=True))
        return record

    def get_or_put(
        self,
        stage: str,
        key: str,
        produce: Callable[[Path], ChunkContent],
        *,
        index: int,
        start_frame: int,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[ChunkRecord, bool]:
        """The stored chunk, or one made now by ``produce`` (see :meth:`put`), under the chunk's lock so that two
        runs never make the same chunk at once; returns its record and whether it was already stored."""
        with self.lock(stage, key):
            record = self.get(stage, key)
            if record is not None:
                return record, True
            return self.put(stage, key, produce, index=index, start_frame=start_frame, params=params), False
