"""The one driver: runs any chunk op over a list of chunks through ``ChunkStore.get_or_put`` (lock, reuse the
stored chunk or make it, commit atomically), checks each chunk against what the op declared, and reports progress
once per chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from stages.errors import ChunkError
from stages.ops.contract import ChunkOp, ChunkTask
from stages.store.chunk_store import ChunkRecord, ChunkStore

# (position, total, record, reused, seconds): one call per chunk made or reused
OnChunk = Callable[[int, int, ChunkRecord, bool, float], None]


@dataclass(frozen=True)
class OpRun:
    """What :func:`run_op` did: the output records in order, and how many chunks were made and reused."""

    records: tuple[ChunkRecord, ...]
    computed: int
    reused: int


def run_op(
    store: ChunkStore,
    op: ChunkOp,
    inputs: Sequence[Any],
    *,
    shot_starts: Collection[int] = (),
    on_chunk: OnChunk | None = None,
) -> OpRun:
    """Run ``op`` over ``inputs`` (chunk records, or chunk specs for the decode op), one output chunk each.

    ``shot_starts``: chunk indices (``ChunkRecord.index``) that start a shot; a stateful op starts fresh there, so
    its chunks there do not depend on the chunk before. Chunks already stored under the same key are reused.

    Raises:
        ChunkError: a chunk the op made differs from what it declared (frame count or size); nothing is stored.
    """
    inputs = tuple(inputs)
    records: list[ChunkRecord] = []
    computed = 0
    last: ChunkRecord | None = None
    for position in range(len(inputs)):
        starts_shot = position == 0 or op.index(ChunkTask(position, inputs)) in shot_starts
        task = ChunkTask(position, inputs, previous=last if op.stateful and not starts_shot else None)
        if not op.wants(task):
            continue
        chunk_started = time.perf_counter()
        record, reused = store.get_or_put(op.name, op.chunk_key(task), partial(_produce, op, task),
                                          index=op.index(task), start_frame=op.start_frame(task),
                                          params=op.manifest_params())
        computed += not reused
        records.append(record)
        last = record
        if on_chunk is not None:
            on_chunk(position, len(inputs), record, reused, time.perf_counter() - chunk_started)
    return OpRun(tuple(records), computed, len(records) - computed)


def _produce(op: ChunkOp, task: ChunkTask, tmp: Any):
    content = op.produce(task, tmp)
    shape = op.expect(task)
    for figure, declared, made in (("frames", shape.frames, content.frame_count),
                                   ("width", shape.width, content.width), ("height", shape.height, content.height)):
        if declared is not None and declared != made:
            raise ChunkError(f"{op.name}: chunk {op.index(task)} came out with {figure} {made}, the op declared "
                             f"{declared}; this is a bug in the {op.name} op, please report it")
    return content
