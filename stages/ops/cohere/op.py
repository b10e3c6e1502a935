"""The cohere op (temporal coherence against flicker, stages.ops.cohere.temporal): stateful, each chunk starts from the
previous chunk's last frames within a shot, and fresh at a shot's first chunk."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stages.media.chunkio import last_frame
from stages.ops.cohere.temporal import TemporalFilter, TemporalSettings, cohere_chunk
from stages.ops.contract import ChunkOp, ChunkTask
from stages.ops.registry import register_op
from stages.store.chunk_store import ChunkContent, ChunkRecord


@register_op
class CohereOp(ChunkOp[ChunkRecord]):
    """Run the temporal filter of ``settings`` (method resolved: ``ema`` or ``flow``) over each chunk. ``sources``
    are the low-resolution source chunks, one per input chunk, when every output frame is a source frame (no
    interpolation); None otherwise (flow then comes from downscaled output frames). ``cuts``: source frame
    indices that start a scene; the filter resets there."""

    name = "cohere"
    stateful = True

    def __init__(self, settings: TemporalSettings, sources: Sequence[ChunkRecord] | None = None,
                 cuts: Collection[int] = ()) -> None:
        self.settings, self.sources, self.cuts = settings, list(sources) if sources is not None else None, set(cuts)
        self.blended: list[float] = []

    def _source(self, position: int) -> ChunkRecord | None:
        return self.sources[position] if self.sources is not None else None

    def key_parts(self, task: ChunkTask[ChunkRecord]) -> Mapping[str, Any]:
        lr = self._source(task.position)
        return {"lr": lr.key if lr is not None else None, "settings": asdict(self.settings)}

    def manifest_params(self) -> Mapping[str, Any]:
        return {"method": self.settings.method}

    def _filter(self, task: ChunkTask[ChunkRecord]) -> TemporalFilter:
        if task.previous is None:  # the first chunk of a shot
            return TemporalFilter(self.settings)
        before = task.position - 1
        if self.sources is not None:
            return TemporalFilter.from_state(self.settings, last_frame(task.previous.path),
                                             last_frame(self.sources[before].path))
        return TemporalFilter.from_state(self.settings, last_frame(task.previous.path),
                                         prev_hr=last_frame(task.inputs[before].path))

    def produce(self, task: ChunkTask[ChunkRecord], tmp: Path) -> ChunkContent:
        up, lr = task.upstream, self._source(task.position)
        chunk_cuts = ({c - lr.start_frame for c in self.cuts if lr.start_frame <= c < lr.start_frame + lr.frame_count}
                      if lr is not None else set())
        result = cohere_chunk(up.path, lr.path if lr is not None else None, tmp, self._filter(task),
                              cuts_in_chunk=frozenset(chunk_cuts), bit_depth=up.bit_depth,
                              expected_frames=up.frame_count)
        self.blended.append(result.blended_fraction)
        return ChunkContent(result.frame_count, up.pts, result.width, result.height, result.bit_depth)

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        return (cls(TemporalSettings(method="ema", strength=0.5), clip.records, clip.cuts),
                cls(TemporalSettings(method="ema", strength=0.7), clip.records, clip.cuts))
