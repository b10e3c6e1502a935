"""Pieces shared by the asset graphs (enhance, production, reframe): one Dagster progress event per chunk, the
source decoded into chunks by the frames op, cached per-source timestamps, make-once caches for whole files, and
the atomic delivery of a cached file to where the user asked for it. The chunk loop itself is stages.ops.driver."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, AssetObservation

from orchestration.resources.workspace import Workspace
from stages.media.chunking import ChunkSpec
from stages.media.deinterlace import decoded_timestamps, describe_deinterlace, source_view
from stages.media.probe import VideoInfo, frame_timestamps
from stages.ops.driver import run_op
from stages.ops.frames import FramesOp
from stages.ops.records import RecordSet
from stages.store.chunk_store import ChunkRecord
from stages.store.diskspace import raise_if_disk_full
from stages.store.fsutil import atomic_write_text, sha256_file

OnChunk = Callable[[int, int, ChunkRecord, bool, float], None]


def report_progress(
    context: AssetExecutionContext, stage: str, index: int, total: int, frames: int, reused: bool, seconds: float
) -> None:
    """One Dagster event per chunk: the CLI and the UI read these to show progress."""
    context.log_event(
        AssetObservation(
            asset_key=context.asset_key,
            partition=context.partition_key,
            metadata={
                "stage": stage,
                "chunk": index,
                "chunks": total,
                "frames": frames,
                "reused": reused,
                "seconds": round(seconds, 3),
            },
        )
    )
    context.log.info(
        f"{stage}: chunk {index + 1}/{total} ({frames} frames) {'reused' if reused else f'done in {seconds:.1f} s'}"
    )


def progress_reporter(context: AssetExecutionContext, stage: str) -> OnChunk:
    """An ``on_chunk`` callback that reports each chunk as ``stage``."""

    def on_chunk(index: int, total: int, record: ChunkRecord, reused: bool, seconds: float) -> None:
        report_progress(context, stage, index, total, record.frame_count, reused, seconds)

    return on_chunk


def decode_chunks(context: AssetExecutionContext, ws: Workspace, source: dict[str, Any], info: VideoInfo,
                  specs: Sequence[ChunkSpec]) -> RecordSet:
    """The source's chunks ``specs`` decoded once (the frames op), with a warning for a chunk that decoded fewer
    frames than planned; shared by the enhance and reframe graphs, which reuse each other's chunks. ``info`` is the
    source's decoded view (stages.media.deinterlace.decoded_view: it says how to deinterlace), ``specs`` are on its
    timeline."""
    run = run_op(ws.chunk_store(), FramesOp(source["path"], source["sha256"], info), specs,
                 on_chunk=progress_reporter(context, "frames"))
    for spec, record in zip(specs, run.records, strict=True):
        if record.frame_count != spec.frame_count:
            context.log.warning(f"frames: chunk {spec.index} decoded {record.frame_count} frames, the plan expected "
                                f"{spec.frame_count}; the source has undecodable frames")
    context.add_output_metadata({"chunks": len(run.records), "chunks_computed": run.computed,
                                 "chunks_reused": run.reused, "frames": sum(r.frame_count for r in run.records)})
    return RecordSet(run.records, run.records, deinterlace=info.deinterlace,
                     provenance={"frames": {"chunk_seconds": [r.seconds for r in run.records],
                                            "deinterlace": info.deinterlace,
                                            "deinterlace_note": describe_deinterlace(info)}})



def deliver_file(cached: Path, target: Path) -> None:
    """Put the cached encode at ``target`` atomically (hard link where possible, else copy)."""
    if target.resolve() == cached.resolve():
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(cached, tmp)
        except OSError:
            shutil.copyfile(cached, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise_if_disk_full(exc, f"the output {target.name}", target.parent)  # a copy to another disk
        raise
    finally:
        tmp.unlink(missing_ok=True)


def cached_timestamps(cache: Path, path: str, info: VideoInfo) -> np.ndarray:
    """The source's frame pts (stages.media.probe.frame_timestamps), cached per source file under ``cache``; for a
    field-rate decoded view (stages.media.deinterlace), the pts of its fields on its doubled timeline."""
    if info.deinterlace == "field":
        return decoded_timestamps(cached_timestamps(cache, path, source_view(info)), info)
    file = cache / "timestamps.npy"
    if file.exists():
        stamps = np.load(file)
        if len(stamps) == info.frame_count:
            return stamps
    stamps = np.asarray(frame_timestamps(path, info), dtype=np.int64)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".timestamps.{os.getpid()}.npy"
    np.save(tmp, stamps)
    tmp.replace(file)
    return stamps


def cached_output(cache_dir: Path, filename: str, make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Make the file ``cache_dir / filename`` once. ``make(path)`` writes it and returns what it wrote; that result is
    kept in ``cache_dir / "result.json"`` with the file's ``sha256`` and ``cached_path``. A later call whose file still
    has that checksum returns the stored result and True (reused); otherwise the file is made again. ``cache_dir``
    is ``outputs/.cache/<content key>``, so whatever decides the bytes decides the folder."""
    cached = cache_dir / filename
    result_file = cache_dir / "result.json"
    if result_file.exists() and cached.exists():
        stored = json.loads(result_file.read_text(encoding="utf-8"))
        if stored.get("sha256") == sha256_file(cached):
            return stored, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    result = {**_jsonable(make(cached)), "cached_path": str(cached), "sha256": sha256_file(cached)}
    atomic_write_text(result_file, json.dumps(result, indent=2))
    return result, False


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, non-finite floats as None and anything else unknown as its text."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def download_logger(context: AssetExecutionContext, step: float = 0.1) -> Callable[[str, int, int | None], None]:
    """A model store ``on_download`` callback that logs a weights download in the run's log every ``step`` of
    the file (and every 8 MB when its size is unknown), so the Dagster UI and the page's log show it."""
    shown: dict[str, float] = {}

    def on_download(model_id: str, received: int, total: int | None) -> None:
        mark = received / total if total else received / (8 << 20)
        if model_id in shown and mark - shown[model_id] < (step if total else 1.0) and received != total:
            return
        shown[model_id] = mark
        size = f" of {total / 1e6:.1f} MB ({received / total:.0%})" if total else " MB"
        context.log.info(f"model: downloading {model_id}: {received / 1e6:.1f}{size}")

    return on_download
