"""The workspace: one directory that holds all state (Dagster instance, chunk store, outputs, reports).

``--workspace`` or ``VUP_WORKSPACE``, else a per-user data directory (platformdirs). The Dagster instance
lives in ``<workspace>/dagster`` unless ``DAGSTER_HOME`` is set. Plain Python: no Dagster import.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import platformdirs

from stages.errors import InputError
from stages.store.chunk_store import ChunkStore
from stages.store.fsutil import atomic_write_text, sha256_file

APP_NAME = "video-upscaler-pro"
PARTITION_KEY_LENGTH = 16

DAGSTER_YAML = """\
# Embedded Dagster instance of Video Upscaler Pro (written once by `vup`; edit freely).
# Storage is SQLite under this folder. Model steps run in the "gpu" pool: one at a time per pool slot.
concurrency:
  pools:
    default_limit: 1
    granularity: op
  runs:
    max_concurrent_runs: 4
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 120
  max_runtime_seconds: 86400  # runs launched without a vup/dagster max_runtime tag (e.g. from the Dagster UI)
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""


def default_workspace() -> Path:
    """``VUP_WORKSPACE`` if set, else the per-user data directory."""
    env = os.environ.get("VUP_WORKSPACE")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME))


@dataclass(frozen=True)
class Workspace:
    root: Path
    # the running job's lease file (stages/store/leases.py), noted by its chunk store so pruning leaves its chunks
    journal: Path | None = field(default=None, compare=False)

    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    @property
    def videos(self) -> Path:
        return self.root / "videos"

    @property
    def plans(self) -> Path:
        """Registered production plans (``plans/<key>.json``) and reframe requests (``reframes/<key>.json``)."""
        return self.root / "plans"

    @property
    def reframes(self) -> Path:
        return self.root / "reframes"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def uploads(self) -> Path:
        """Files uploaded through the page: ``uploads/<content key>/<sanitised name>``."""
        return self.root / "uploads"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def inbox(self) -> Path:
        """The watched folder (``VUP_INBOX`` if set, else ``<workspace>/inbox``); see orchestration/sensors/inbox.py."""
        env = os.environ.get("VUP_INBOX")
        return Path(env).expanduser() if env else self.root / "inbox"

    @property
    def inbox_done(self) -> Path:
        return self.inbox / "done"

    @property
    def inbox_failed(self) -> Path:
        return self.inbox / "failed"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else self.root / "dagster"

    @property
    def io_storage(self) -> Path:
        return self.root / "dagster-storage"

    @property
    def config_file(self) -> Path:
        """``<workspace>/vup.toml``: workspace settings, e.g. ``[cache] max_size = "50G"`` (docs/cache.md)."""
        return self.root / "vup.toml"

    def chunk_store(self) -> ChunkStore:
        return ChunkStore(self.chunks, journal=self.journal)

    def ensure(self) -> Workspace:
        for folder in (self.root, self.chunks, self.videos, self.outputs, self.reports, self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def prepare_dagster_home(workspace: Workspace) -> Path:
    """Point ``DAGSTER_HOME`` at the workspace's instance (unless set) and write its dagster.yaml once."""
    home = workspace.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    config = home / "dagster.yaml"
    if not config.exists():
        atomic_write_text(config, DAGSTER_YAML)
    return home


@dataclass(frozen=True)
class VideoRecord:
    """A registered source video: partition key = the first 16 hex digits of its sha256."""

    key: str
    path: str
    name: str
    size_bytes: int
    sha256: str


def register_video(workspace: Workspace, path: str | Path, sha256: str | None = None) -> VideoRecord:
    """Hash ``path`` and record it under ``<workspace>/videos/<key>.json``; returns the record.

    ``sha256``: the file's digest when the caller has just computed it (the inbox sensor), to avoid reading
    a multi-gigabyte file twice.
    """
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise InputError(f"input: {path} does not exist or is not a file; check the path")
    digest = sha256 or sha256_file(source)
    record = VideoRecord(
        key=digest[:PARTITION_KEY_LENGTH], path=str(source), name=source.name,
        size_bytes=source.stat().st_size, sha256=digest,
    )
    workspace.videos.mkdir(parents=True, exist_ok=True)
    atomic_write_text(workspace.videos / f"{record.key}.json", json.dumps(asdict(record), indent=2))
    return record


def lookup_video(workspace: Workspace, key: str) -> VideoRecord:
    """The registered video of partition ``key``.

    Raises:
        InputError: no such partition, or its file moved or changed since it was registered.
    """
    if not re.fullmatch(rf"[0-9a-f]{{{PARTITION_KEY_LENGTH}}}", key or ""):
        raise InputError(f"workspace: {key!r} is not a partition key (16 hex digits); pick a video from the list")
    manifest = workspace.videos / f"{key}.json"
    if not manifest.exists():
        raise InputError(
            f"workspace: no video is registered for partition {key} in {workspace.root}; "
            "add it with `vup enhance FILE` or drop it in the inbox"
        )
    record = VideoRecord(**json.loads(manifest.read_text(encoding="utf-8")))
    source = Path(record.path)
    if not source.is_file() or source.stat().st_size != record.size_bytes:
        raise InputError(
            f"workspace: the video of partition {key} ({record.path}) is missing or changed; register it again"
        )
    return record


_KEY_PATTERN = re.compile(rf"[0-9a-f]{{{PARTITION_KEY_LENGTH}}}")


def register_job(folder: Path, content: dict) -> str:
    """Record a job's validated, JSON-able description under ``folder/<key>.json``; the key (the partition) is
    the first 16 hex digits of the sha256 of its canonical JSON, so the same request is the same partition."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:PARTITION_KEY_LENGTH]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{key}.json", json.dumps(content, indent=2, sort_keys=True))
    return key


def lookup_job(folder: Path, key: str, what: str) -> dict:
    """The description registered by :func:`register_job` for partition ``key``.

    Raises:
        InputError: ``key`` is not a partition key, or nothing is registered under it.
    """
    if not _KEY_PATTERN.fullmatch(key or ""):
        raise InputError(f"workspace: {key!r} is not a {what} partition key (16 hex digits)")
    manifest = folder / f"{key}.json"
    if not manifest.exists():
        raise InputError(f"workspace: no {what} is registered for partition {key} in {folder}; submit it again")
    return json.loads(manifest.read_text(encoding="utf-8"))
