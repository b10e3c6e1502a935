"""Steps shared by the asset graphs (enhance, production, reframe): upscale every chunk of a list and
interpolate every chunk of a list, each chunk cached in the chunk store under a content key and locked while it is
made, with one progress event per chunk (the callers decide the keys' inputs; these loops do the work); the RIFE
factory; and the atomic delivery of a cached file to where the user asked for it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from dagster import AssetExecutionContext, AssetObservation

from stages.chunk_store import ChunkContent, ChunkRecord, ChunkStore, content_key
from stages.chunking import ChunkSpec, extract_chunk
from stages.chunkio import first_frame
from stages.diskspace import raise_if_disk_full
from stages.fsutil import atomic_write_text, sha256_file
from stages.interpolate import CODE_VERSION as INTERPOLATE_VERSION
from stages.interpolate import Interpolator, OutputFrame, interpolate_chunk
from stages.models.catalog import DEFAULT_INTERPOLATION_MODEL
from stages.ncnn_backend import NcnnUpscaler
from stages.probe import VideoInfo, frame_timestamps
from stages.upscale import (
    ScaleStep,
    Upscaler,
    UpscaleSettings,
    describe_plan,
    upscale_chunk,
)

# Bump when the upscale loop changes the bytes it produces: its chunks are then redone.
UPSCALE_VERSION = "1"

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


def make_upscaler(selection: Any, backend: str, choice: Any, settings: UpscaleSettings,
                  ncnn_cache: Path) -> Upscaler | NcnnUpscaler:
    """The engine that runs the selected model (stages.model_selection) on ``backend`` ("torch" or "ncnn")."""
    loaded = selection.load()
    if backend == "ncnn":
        return NcnnUpscaler.from_descriptor(loaded.descriptor, ncnn_cache, tile=settings.tile,
                                           overlap=settings.tile_overlap)
    return Upscaler(loaded.descriptor, choice, tile=settings.tile, overlap=settings.tile_overlap,
                    batch=settings.batch, compile=settings.compile)


def extract_records(
    store: ChunkStore,
    source: dict[str, Any],
    info: VideoInfo,
    specs: Sequence[ChunkSpec],
    *,
    version: str,
    on_chunk: OnChunk,
    on_short: Callable[[ChunkSpec, ChunkRecord], None] | None = None,
) -> tuple[list[ChunkRecord], int]:
    """Decode each chunk of ``specs`` of the source video (``source``: its ``path`` and ``sha256``) once to a
    lossless chunk (deinterlaced when the source is interlaced); chunks already stored are reused, so the enhance
    and reframe graphs share them. ``on_short`` hears of a chunk that decoded fewer frames than planned. Returns
    the records and how many were computed."""
    records: list[ChunkRecord] = []
    computed = 0
    for spec in specs:
        key = content_key(
            "frames",
            {"source": source["sha256"], "spec": asdict(spec), "bit_depth": info.bit_depth, "version": version,
             **({"deinterlace": "bwdif"} if info.interlaced else {})},  # extract_chunk deinterlaces those
        )
        started = time.perf_counter()

        def produce(tmp: Path, spec: ChunkSpec = spec) -> ChunkContent:
            ex = extract_chunk(source["path"], info, spec, tmp)
            return ChunkContent(ex.frame_count, tuple(ex.pts), ex.width, ex.height, ex.bit_depth)

        record, reused = store.get_or_put("frames", key, produce, index=spec.index, start_frame=spec.start_frame)
        if not reused:
            computed += 1
        if record.frame_count != spec.frame_count and on_short is not None:
            on_short(spec, record)
        records.append(record)
        on_chunk(spec.index, len(specs), record, reused, time.perf_counter() - started)
    return records, computed


@dataclass
class UpscaleTally:
    """What :func:`upscale_records` did."""

    records: list[ChunkRecord] = field(default_factory=list)
    computed: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    write_wait_seconds: float = 0.0
    precision: str | None = None


def upscale_records(
    store: ChunkStore,
    inputs: Sequence[ChunkRecord],
    *,
    selection: Any,
    steps: Sequence[ScaleStep],
    choice: Any,
    backend: str,
    settings: UpscaleSettings,
    ncnn_cache: Path,
    on_chunk: OnChunk,
    stage: str = "upscaled",
    index_of: Callable[[ChunkRecord], int] | None = None,
) -> UpscaleTally:
    """Upscale every chunk of ``inputs`` with the selected model (``selection``: stages.model_selection) on the
    device ``choice`` and ``backend``, by the scale plan ``steps``; chunks already stored are reused. The network
    is loaded only when a chunk has to be computed. ``index_of`` gives a stored chunk's index (default: the
    input's own)."""
    tally = UpscaleTally()
    upscaler: Upscaler | NcnnUpscaler | None = None
    for position, upstream in enumerate(inputs):
        key = content_key(
            stage,
            {
                "upstream": upstream.key,
                "model": selection.model_id,
                "weights": selection.weights_sha256,
                "plan": describe_plan(steps),
                "tile": settings.tile,
                "overlap": settings.tile_overlap,
                "precision": choice.precision,
                "device": choice.kind,
                "backend": backend,
                "compiled": bool(settings.compile and backend == "torch"),
                "version": UPSCALE_VERSION,
            },
        )
        started = time.perf_counter()

        def produce(tmp: Path, upstream: ChunkRecord = upstream) -> ChunkContent:
            nonlocal upscaler
            if upscaler is None:  # loaded only once a chunk has to be made
                upscaler = make_upscaler(selection, backend, choice, settings, ncnn_cache)
            before = upscaler.model_calls
            result = upscale_chunk(upstream.path, tmp, upscaler, steps, expected_frames=upstream.frame_count,
                                   bit_depth=upstream.bit_depth)
            tally.model_calls += upscaler.model_calls - before
            tally.model_seconds += result.model_seconds
            tally.write_wait_seconds += result.write_wait_seconds
            return ChunkContent(result.frame_count, upstream.pts, result.width, result.height, result.bit_depth)

        record, reused = store.get_or_put(stage, key, produce,
                                          index=index_of(upstream) if index_of else upstream.index,
                                          start_frame=upstream.start_frame,
                                          params={"model": selection.model_id, "plan": describe_plan(steps)})
        if not reused:
            tally.computed += 1
        tally.records.append(record)
        on_chunk(position, len(inputs), record, reused, time.perf_counter() - started)
    tally.precision = upscaler.precision if upscaler else choice.precision
    return tally


def interpolate_records(
    store: ChunkStore,
    inputs: Sequence[ChunkRecord],
    per_chunk: Sequence[Sequence[OutputFrame]],
    interpolator: Interpolator,
    start_pts: int,
    *,
    params: dict[str, Any],
    on_chunk: OnChunk,
    stage: str = "interpolated",
) -> tuple[list[ChunkRecord], int, int]:
    """Write each chunk's share ``per_chunk[i]`` of an output-frame plan (stages.interpolate) from ``inputs[i]``
    (its last pairs use the next chunk's first frame); output pts count from ``start_pts``. Returns the records,
    the chunks computed and the frames synthesized."""
    records: list[ChunkRecord] = []
    computed = synthesized = 0
    for position, upstream in enumerate(inputs):
        following = inputs[position + 1] if position + 1 < len(inputs) else None
        frames_plan = per_chunk[position]
        if not frames_plan:  # a lower output rate can leave a short chunk without an output frame
            continue
        plan_digest = hashlib.sha256(json.dumps([asdict(f) for f in frames_plan]).encode()).hexdigest()
        key = content_key(
            stage,
            {"upstream": upstream.key, "next": following.key if following else None, "plan": plan_digest,
             "interpolator": interpolator.key, "version": INTERPOLATE_VERSION},
        )
        started = time.perf_counter()

        def produce(tmp: Path, upstream: ChunkRecord = upstream, following: ChunkRecord | None = following,
                    frames_plan: Sequence[OutputFrame] = frames_plan) -> ChunkContent:
            nonlocal synthesized
            next_first = first_frame(following.path) if following is not None else None
            result = interpolate_chunk(upstream.path, tmp, frames_plan, upstream.start_frame, next_first,
                                       interpolator, bit_depth=upstream.bit_depth)
            synthesized += result.interpolated
            return ChunkContent(result.frame_count, tuple(start_pts + f.index for f in frames_plan), result.width,
                                result.height, result.bit_depth)

        record, reused = store.get_or_put(stage, key, produce, index=upstream.index,
                                          start_frame=frames_plan[0].index, params=params)
        if not reused:
            computed += 1
        records.append(record)
        on_chunk(position, len(inputs), record, reused, time.perf_counter() - started)
    return records, computed, synthesized


def rife_factory(store, device_choice) -> tuple[bool, Any]:
    """Whether RIFE weights are on this machine (never downloads here), and a factory for its interpolator."""
    entry = store.entry(DEFAULT_INTERPOLATION_MODEL)
    status = store.status(entry.id)
    present = status.available and status.source not in ("download", None)

    def factory():
        from stages.models.rife import RifeInterpolator
        from stages.models.rife.load import load_rife

        model = load_rife(store.resolve(entry.id).path, version=entry.variant)
        precision = "fp16" if device_choice.kind == "cuda" else "fp32"
        return RifeInterpolator(model, device=device_choice.device, precision=precision)

    return present, factory


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
    """The source's frame pts (stages.probe.frame_timestamps), cached per source file under ``cache``."""
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
